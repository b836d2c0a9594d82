"""docs/formats.md: the named-format table, the derived-value rules, exmy defaults, validation and name
resolution, each pinned (tests/test_formats.py checks the values against the OCP tables and ml_dtypes)."""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import fp8ref
from fp8ref.formats import Format, exmy, format

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def _table() -> list[list[str]]:
    text = DOC.read_text()
    sec = text[text.index("## Named formats"):text.index("## Research formats")]
    rows = []
    for line in sec.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 13 and re.fullmatch(r"\d/\d+/\d+", cells[1]):
            rows.append(cells)
    return rows


ROWS = _table()


def _num(s: str) -> float:
    m = re.fullmatch(r"2\^(-?\d+)", s)
    return math.ldexp(1.0, int(m.group(1))) if m else float(s)


def test_table_lists_every_named_format_in_order() -> None:
    assert [r[0] for r in ROWS] == [f.name for f in fp8ref.formats()]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r[0])
def test_named_format_row(row: list[str]) -> None:
    name, sem, bias, nan, inf, nz, mx, mn, ms, nanc, infc, maxc, mld = row
    f = format(name)
    s, e, m = (int(v) for v in sem.split("/"))
    assert (int(f.signed), f.ebits, f.mbits, f.bias, f.nan) == (s, e, m, int(bias), nan)
    assert f.has_inf == (inf == "yes") and f.has_negative_zero == (nz == "yes")
    assert (f.max, f.min_normal, f.min_subnormal) == (_num(mx), _num(mn), _num(ms))
    assert f.nan_code == (None if nanc == "-" else int(nanc, 16))
    assert f.inf_code == (None if infc == "-" else int(infc, 16))
    assert f.max_code == int(maxc, 16)
    assert (f.ml_dtype is None) == (mld == "-")
    if f.ml_dtype is not None:
        assert f.ml_dtype.name == mld
    assert getattr(fp8ref, name) is f


def _formats_zoo() -> list[Format]:
    zoo = list(fp8ref.formats())
    for e, m, nan in itertools.product((1, 2, 3, 4, 5), (0, 1, 2, 3), ("none", "all_ones", "fnuz", "ieee")):
        if e < 2 and nan in ("ieee", "all_ones"):  # no finite nonzero value left: not a useful format
            continue
        zoo.append(exmy(e, m, nan=nan, has_inf=nan == "ieee"))
    zoo.append(exmy(4, 3, has_subnormals=False))
    return zoo


@pytest.mark.parametrize("f", _formats_zoo(), ids=lambda f: f"{f.name}-{f.nan}-{f.has_subnormals}")
def test_derived_value_rules(f: Format) -> None:
    """The 'Derived values' table, recomputed from the fields."""
    assert f.bits == int(f.signed) + f.ebits + f.mbits
    assert f.sign_mask == ((1 << (f.bits - 1)) if f.signed else 0)
    assert f.emin == (1 if f.has_zero else 0) - f.bias
    reserve_top = f.nan == "ieee" or (f.nan == "all_ones" and f.mbits == 0)
    top = (1 << f.ebits) - (2 if reserve_top else 1)
    assert f.top_exp_field == top and f.emax == top - f.bias
    top_m = (1 << f.mbits) - (2 if f.nan == "all_ones" and f.mbits > 0 else 1)
    assert f.top_mantissa == top_m
    assert f.max_exact == (1 + Fraction(top_m, 1 << f.mbits)) * Fraction(2) ** f.emax
    assert f.min_normal == 2.0**f.emin and f.eps == 2.0**-f.mbits
    sub = f.has_subnormals and f.mbits > 0
    assert f.min_subnormal == (2.0 ** (f.emin - f.mbits) if sub else f.min_normal)
    assert f.max_code == (top << f.mbits) | top_m
    if f.bits <= 16:
        vals = f.values()
        fin = vals[np.isfinite(vals)]
        assert fin.max() == f.max and np.abs(fin[fin != 0]).min() == f.min_subnormal
        assert vals[f.max_code] == f.max
        assert int(np.isnan(vals).sum()) == {
            "none": 0, "fnuz": 1, "all_ones": 1 + int(f.signed),
            "ieee": (2 ** f.mbits - 1) * (1 + int(f.signed))}[f.nan]


def test_decoding_rule_without_subnormals() -> None:
    f = exmy(4, 3, has_subnormals=False)
    assert [f.classify(c) for c in (0, 1, 7, 8)] == ["zero", "zero", "zero", "normal"]
    assert f.decode(0x85) == -0.0 and math.copysign(1, f.decode(0x85)) == -1


def test_exmy_defaults() -> None:
    assert exmy(3, 4).bias == 3 and exmy(3, 4, nan="fnuz").bias == 4
    assert exmy(3, 4).has_negative_zero and not exmy(3, 4, nan="fnuz").has_negative_zero
    assert [exmy(3, 4, nan=n).name for n in ("none", "ieee", "all_ones", "fnuz")] == [
        "E3M4", "E3M4", "E3M4FN", "E3M4FNUZ"]
    assert exmy(2, 1) == fp8ref.E2M1 and exmy(4, 3, nan="fnuz") == fp8ref.E4M3FNUZ
    e4m3fn = exmy(4, 3, nan="all_ones")
    assert e4m3fn != fp8ref.E4M3 and np.array_equal(e4m3fn.values(), fp8ref.E4M3.values(), equal_nan=True)
    assert np.array_equal(exmy(5, 2, nan="ieee", has_inf=True).values(), fp8ref.E5M2.values(), equal_nan=True)
    assert exmy(3, 4, bias=5, name="mine").name == "mine"


@pytest.mark.parametrize("kw", [
    {"ebits": 0, "mbits": 3}, {"ebits": 4, "mbits": -1}, {"ebits": 11, "mbits": 60},
    {"ebits": 4, "mbits": 3, "nan": "weird"}, {"ebits": 4, "mbits": 3, "nan": "all_ones", "has_inf": True},
    {"ebits": 4, "mbits": 3, "nan": "fnuz", "has_negative_zero": True},
    {"ebits": 4, "mbits": 3, "nan": "fnuz", "has_negative_zero": False, "signed": False},
    {"ebits": 4, "mbits": 3, "has_negative_zero": True, "signed": False},
    {"ebits": 8, "mbits": 0, "has_negative_zero": False, "has_zero": False, "has_subnormals": True},
])
def test_invalid_definitions(kw: dict) -> None:
    base = {"name": "X", "bias": 7, "has_inf": False, "nan": "none", "has_negative_zero": False}
    with pytest.raises(ValueError):
        Format(**{**base, **kw})


def test_name_resolution_rules() -> None:
    assert format(fp8ref.E5M2) is fp8ref.E5M2  # 1
    assert format(ml_dtypes.float8_e4m3fnuz) is fp8ref.E4M3FNUZ  # 2
    assert format(np.dtype(np.float16)) is fp8ref.FP16 and format(ml_dtypes.bfloat16) is fp8ref.BF16
    with pytest.raises(TypeError, match="format must be a name"):
        format(object())
    for alias in ("  E4M3 ", "e4m3", "E4M3FN", "float8_e4m3fn", "F8_E4M3", "f8e4m3fn", "fp8_e4m3"):  # 3
        assert format(alias) is fp8ref.E4M3
    assert format("float8_143") is fp8ref.E4M3FNUZ and format("float8_152") is fp8ref.E5M2FNUZ
    assert format("half") is fp8ref.FP16 and format("double") is fp8ref.FP64
    assert format("e3m4") == exmy(3, 4)  # 4
    assert format("E3M4FN") == exmy(3, 4, nan="all_ones") and format("e6m1fnuz") == exmy(6, 1, nan="fnuz")
    assert format("e11m52") == exmy(11, 52)
    for bad in ("e12m3", "e0m3", "e4m53", "float8_e4m3", "e4m3b11fnuz", ""):  # 5
        with pytest.raises(ValueError, match="valid formats"):
            format(bad)
    with pytest.raises(ValueError, match="valid formats"):
        format(ml_dtypes.float8_e4m3)  # ml_dtypes' IEEE-style e4m3 is not OCP E4M3
