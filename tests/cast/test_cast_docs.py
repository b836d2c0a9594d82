"""docs/casts.md is the specification: every worked example in its table is checked here, through the
kernels and through the oracle, and the rules stated in prose are pinned one by one."""

from __future__ import annotations

import math
import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import fp8ref
from fp8ref.cast.oracle import round_exact

DOC = Path(__file__).resolve().parents[2] / "docs" / "casts.md"
DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def _rows() -> list[list[str]]:
    text = DOC.read_text()
    section = text[text.index("## 8. Worked examples"):text.index("## 9.")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and re.match(r"^-?[0-9.ena]", cells[0]) and cells[0] != "x":
            rows.append(cells)
    return rows


ROWS = _rows()


def test_table_is_found() -> None:
    assert len(ROWS) >= 40


@pytest.mark.parametrize("row", ROWS, ids=lambda r: "|".join(r[:5]))
def test_worked_example(row: list[str]) -> None:
    xs, dtype, fmt_name, rounding, sat, bits, code, value = row
    v = math.copysign(float(xs), -1.0 if xs.startswith("-") else 1.0)
    x = np.array(v, dtype=np.float64).astype(DTYPES[dtype])
    fmt = fp8ref.format(fmt_name)
    kw = {}
    R, r = 0, 0
    if bits != "-":
        R, r = (int(v) for v in bits.split("/"))
        kw = {"srbits": np.int64(R), "srnumbits": r}
    saturate = sat == "True"
    got = int(fp8ref.quantize(x, fmt, rounding=rounding, saturate=saturate, **kw))
    assert got == int(code, 16)
    assert round_exact(float(x), fmt, rounding, saturate, R, r) == int(code, 16)
    dec = float(fp8ref.dequantize(np.array(got), fmt, dtype=np.float64))
    want = float(value)
    if math.isnan(want):
        assert math.isnan(dec)
    else:
        assert dec == want and math.copysign(1, dec) == math.copysign(1, want)


def test_rule_float16_and_bfloat16_inputs_are_exact() -> None:
    """Section 1: narrow inputs are widened exactly, so the result is that of their exact value."""
    x = np.array([0.0999755859375, -1.0078125], dtype=np.float16)
    assert np.array_equal(fp8ref.quantize(x, "E4M3", rounding="toward_zero"),
                          fp8ref.quantize(x.astype(np.float64), "E4M3", rounding="toward_zero"))
    b = np.array([3.3895313892515355e38, 1.0078125], dtype=ml_dtypes.bfloat16)
    assert fp8ref.quantize(b, "E5M2", saturate=False).tolist() == [0x7C, 0x3C]


def test_rule_directed_modes_bound_only_finite_inputs() -> None:
    """Section 3: toward_zero never overflows a finite input; Inf is not bounded."""
    big = np.array([1e300, -1e300, 3.0e38], dtype=np.float64)
    for fmt in fp8ref.FP8_FORMATS:
        codes = fp8ref.quantize(big, fmt, rounding="toward_zero", saturate=False)
        assert [fmt.decode(int(c)) for c in codes] == [fmt.max, -fmt.max, fmt.max]
    assert fp8ref.quantize(np.array([np.inf]), "E5M2", rounding="toward_zero", saturate=False)[0] == 0x7C
    assert fp8ref.quantize(np.array([-1e9]), "E4M3", rounding="toward_positive", saturate=False)[0] == 0xFE
    assert fp8ref.quantize(np.array([1e9]), "E4M3", rounding="toward_negative", saturate=False)[0] == 0x7E
    assert fp8ref.quantize(np.array([-1e9]), "E4M3", rounding="toward_negative", saturate=False)[0] == 0xFF


def test_rule_overflow_thresholds() -> None:
    """Section 3 table: the nearest-even thresholds of the four FP8 formats."""
    cases = {"E4M3": (464.0, 0x7E, 0x7F), "E5M2": (61440.0, None, 0x7C), "E4M3FNUZ": (248.0, None, 0x80),
             "E5M2FNUZ": (61440.0, None, 0x80)}
    for name, (t, at, over) in cases.items():
        fmt = fp8ref.format(name)
        below = np.nextafter(t, 0)
        assert fp8ref.quantize(np.array([below]), fmt, saturate=False)[0] == fmt.max_code
        assert fp8ref.quantize(np.array([t]), fmt, saturate=False)[0] == (over if at is None else at)
        assert fp8ref.quantize(np.array([np.nextafter(t, np.inf)]), fmt, saturate=False)[0] == over
        assert fp8ref.quantize(np.array([t]), fmt, rounding="nearest_away", saturate=False)[0] == over


def test_rule_nan_codes_and_decoding() -> None:
    """Section 5."""
    for fmt, pos, neg in ((fp8ref.E4M3, 0x7F, 0xFF), (fp8ref.E5M2, 0x7F, 0xFF), (fp8ref.E4M3FNUZ, 0x80, 0x80),
                          (fp8ref.E5M2FNUZ, 0x80, 0x80), (fp8ref.E8M0, 0xFF, 0xFF)):
        for rounding in fp8ref.ROUNDING_MODES:
            kw = {"seed": 1} if rounding.startswith("stochastic") else {}
            for saturate in (True, False):
                c = fp8ref.quantize(np.array([np.nan, -np.nan], np.float32), fmt, rounding=rounding,
                                    saturate=saturate, **kw)
                assert c.tolist() == [pos, neg]
    d = fp8ref.dequantize(np.array([0x7D, 0xFE, 0x80], np.uint8), "E5M2")
    assert np.isnan(d[0]) and np.isnan(d[1]) and d.view(np.uint32).tolist()[:2] == [0x7FC00000, 0xFFC00000]
    assert fp8ref.dequantize(np.array([0x80], np.uint8), "E4M3FNUZ", dtype=np.float64).view(np.uint64)[0] \
        == 0xFFF8000000000000


def test_rule_stochastic_exact_inputs_unchanged() -> None:
    """Section 2: delta == 0 is never rounded by any mode, whatever the bits."""
    vals = fp8ref.E4M3.values()
    x = vals[np.isfinite(vals)]
    for rounding in ("stochastic", "stochastic_fast", "stochastic_fastest"):
        for R in (0, 7, 15):
            c = fp8ref.quantize(x, "E4M3", rounding=rounding, srbits=np.int64(R), srnumbits=4)
            assert np.array_equal(fp8ref.dequantize(c, "E4M3", dtype=np.float64), x)


def test_rule_no_subnormals_ties_go_to_zero() -> None:
    """Section 2, step 1: without subnormals the neighbours below 2**emin are 0 and 2**emin."""
    f = fp8ref.exmy(4, 3, has_subnormals=False)
    mn = f.min_normal
    c = fp8ref.quantize(np.array([mn / 2, np.nextafter(mn / 2, 1), mn / 4, -mn * 0.75]), f)
    assert c.tolist() == [0x00, 0x08, 0x00, 0x88]
