"""Formats as data: derived values against the spec tables and against ml_dtypes, code by code."""

from __future__ import annotations

import fractions
import math

import ml_dtypes
import numpy as np
import pytest

import fp8ref
from fp8ref.formats import Format, exmy, format, to_float

SPEC = {
    # name: (max, min_normal, min_subnormal, code of 1.0, nan_code, inf_code)
    "E4M3": (448.0, 2**-6, 2**-9, 0x38, 0x7F, None),
    "E5M2": (57344.0, 2**-14, 2**-16, 0x3C, 0x7F, 0x7C),
    "E4M3FNUZ": (240.0, 2**-7, 2**-10, 0x40, 0x80, None),
    "E5M2FNUZ": (57344.0, 2**-15, 2**-17, 0x40, 0x80, None),
}


@pytest.mark.parametrize("name", sorted(SPEC))
def test_spec_table(name: str) -> None:
    f = format(name)
    mx, mn, ms, one, nan, inf = SPEC[name]
    assert (f.max, f.min_normal, f.min_subnormal, f.nan_code, f.inf_code) == (mx, mn, ms, nan, inf)
    assert f.decode(one) == 1.0
    assert f.decode(f.max_code) == mx


@pytest.mark.parametrize("fmt", [fp8ref.E4M3, fp8ref.E5M2, fp8ref.E4M3FNUZ, fp8ref.E5M2FNUZ, fp8ref.E8M0,
                                 fp8ref.E2M1, fp8ref.E2M3, fp8ref.E3M2], ids=str)
def test_every_code_matches_ml_dtypes(fmt: Format) -> None:
    dt = fmt.ml_dtype
    codes = np.arange(fmt.n_codes, dtype=np.uint8)
    ref = codes.view(dt).astype(np.float64) if fmt.bits == 8 else _ml_low_bits(codes, dt)
    ours = fmt.values()
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.array_equal(ours[ok], ref[ok])
    assert np.array_equal(np.signbit(ours[ok]), np.signbit(ref[ok]))
    for c in range(fmt.n_codes):
        assert (fmt.classify(c) == "nan") == math.isnan(ref[c])


def _ml_low_bits(codes: np.ndarray, dt: np.dtype) -> np.ndarray:
    # ml_dtypes stores sub-byte formats one per byte, in the low bits
    n = 1 << ml_dtypes.finfo(dt).bits
    return codes[:n].view(dt).astype(np.float64)


@pytest.mark.parametrize("fmt", [fp8ref.FP16, fp8ref.BF16, fp8ref.FP32, fp8ref.FP64], ids=str)
def test_wide_formats_match_numpy_finfo(fmt: Format) -> None:
    fi = np.finfo(fmt.ml_dtype) if fmt.name != "BF16" else ml_dtypes.finfo(ml_dtypes.bfloat16)
    assert fmt.max == float(fi.max)
    assert fmt.min_normal == float(fi.smallest_normal)
    assert fmt.min_subnormal == float(fi.smallest_subnormal)
    assert fmt.eps == float(fi.eps)


def test_tf32() -> None:
    assert fp8ref.TF32.bits == 19 and fp8ref.TF32.eps == 2**-10 and fp8ref.TF32.min_normal == 2**-126


def test_fp16_all_codes_match_numpy() -> None:
    codes = np.arange(1 << 16, dtype=np.uint16)
    ref = codes.view(np.float16).astype(np.float64)
    ours = fp8ref.FP16.values()
    ok = ~np.isnan(ref)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    assert np.array_equal(ours[ok], ref[ok]) and np.array_equal(np.signbit(ours[ok]), np.signbit(ref[ok]))


def test_e8m0_is_a_power_of_two_scale_format() -> None:
    f = fp8ref.E8M0
    assert f.decode(0) == 2.0**-127 and f.decode(127) == 1.0 and f.decode(254) == 2.0**127
    assert math.isnan(f.decode(255)) and f.classify(0) == "normal"


@pytest.mark.parametrize("alias,name", [("float8_e4m3fn", "E4M3"), ("e4m3fn", "E4M3"), ("e4m3", "E4M3"),
                                        ("E5M2", "E5M2"), ("float8_e5m2fnuz", "E5M2FNUZ"),
                                        ("float8_e4m3fnuz", "E4M3FNUZ"), ("bfloat16", "BF16"),
                                        ("float32", "FP32"), ("F8_E4M3", "E4M3")])
def test_aliases(alias: str, name: str) -> None:
    assert format(alias).name == name


def test_dtype_resolution() -> None:
    assert format(ml_dtypes.float8_e4m3fn) is fp8ref.E4M3
    assert format(np.dtype(ml_dtypes.float8_e5m2)) is fp8ref.E5M2
    assert format(np.float32) is fp8ref.FP32


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="valid formats: .*E4M3"):
        format("e4m9x")


def test_generic_exmy() -> None:
    e3m4 = format("e3m4")
    assert (e3m4.ebits, e3m4.mbits, e3m4.bias, e3m4.max) == (3, 4, 3, 31.0)
    assert exmy(2, 1) == fp8ref.E2M1
    fnuz = exmy(4, 3, nan="fnuz")
    assert fnuz.max == 240.0 and fnuz.nan_code == 0x80
    assert exmy(5, 2, nan="ieee", has_inf=True).max == 57344.0


def test_invalid_definitions_rejected() -> None:
    with pytest.raises(ValueError):
        Format("bad", 4, 3, 7, True, "all_ones", True)
    with pytest.raises(ValueError):
        Format("bad", 4, 3, 8, False, "fnuz", True)


def test_is_representable() -> None:
    f = fp8ref.E4M3
    assert f.is_representable(448.0) and f.is_representable(2**-9) and f.is_representable(-0.0)
    assert not f.is_representable(464.0) and not f.is_representable(2**-10) and not f.is_representable(1.0625)
    assert not f.is_representable(math.inf) and f.is_representable(math.nan)


def test_cli_tables(capsys: pytest.CaptureFixture[str]) -> None:
    from fp8ref.cli import main

    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    assert "E4M3" in out and "448" in out and "57344" in out
    assert main(["codes", "E4M3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 + 256
    assert out[2 + 0x7E].split() == ["0x7e", "0.1111.110", "normal", "448.0"]
    assert main(["codes", "nope"]) == 2


def test_degenerate_format_rejected() -> None:
    # one exponent bit, no mantissa, all-ones NaN: the only non-NaN code is zero
    with pytest.raises(ValueError, match="no finite nonzero value"):
        exmy(1, 0, nan="all_ones")


# ---- validation of the fields (docs/formats.md "Accepted values") ----------------------------------
def _fields(**kw: object) -> dict:
    base = {"name": "x", "ebits": 4, "mbits": 3, "bias": 7, "has_inf": False, "nan": "all_ones",
            "has_negative_zero": True}
    return {**base, **kw}


@pytest.mark.parametrize(("kw", "field"), [
    ({"ebits": 4.0}, "ebits"), ({"ebits": "4"}, "ebits"), ({"ebits": True}, "ebits"),
    ({"mbits": 3.0}, "mbits"), ({"bias": 7.5}, "bias"), ({"bias": "7"}, "bias"), ({"bias": None}, "bias"),
    ({"has_inf": "no"}, "has_inf"), ({"has_negative_zero": 1}, "has_negative_zero"),
    ({"signed": None}, "signed"), ({"has_zero": "yes"}, "has_zero"),
    ({"has_subnormals": 0}, "has_subnormals"),
    ({"name": None}, "name"), ({"name": ""}, "name"), ({"aliases": ["a"]}, "aliases"),
])
def test_field_types_are_checked(kw: dict, field: str) -> None:
    with pytest.raises(TypeError, match=rf"Format\.{field} must be"):
        Format(**_fields(**kw))


@pytest.mark.parametrize(("kw", "match"), [
    ({"ebits": 0}, r"Format\.ebits must lie in \[1, 16\], got 0"),
    ({"ebits": 17, "mbits": 0}, r"Format\.ebits must lie in \[1, 16\], got 17"),
    ({"mbits": -1}, r"Format\.mbits must lie in \[0, 63\]"),
    ({"bias": 10**30}, r"Format\.bias must lie in \[-65536, 65536\]"),
    ({"bias": -(2**16) - 1}, r"Format\.bias must lie in"),
    ({"ebits": 11, "mbits": 53, "nan": "ieee", "has_inf": True}, r"wider than 64 bits"),
    ({"nan": "ieee754"}, r"Format\.nan must be one of"),
    ({"nan": None}, r"Format\.nan must be one of"),
])
def test_field_ranges_are_checked(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Format(**_fields(**kw))


def test_exmy_checks_before_deriving_defaults() -> None:
    with pytest.raises(ValueError, match=r"Format\.ebits must lie in \[1, 16\], got 0"):
        exmy(0, 3)
    with pytest.raises(TypeError, match=r"Format\.ebits must be an int, got float"):
        exmy(4.0, 3)
    with pytest.raises(TypeError, match=r"Format\.mbits must be an int"):
        exmy(4, "3")
    with pytest.raises(ValueError, match=r"Format\.nan must be one of"):
        exmy(4, 3, nan="bogus")
    with pytest.raises(ValueError, match=r"Format\.bias must lie in"):
        exmy(4, 3, bias=10**30)


def test_numpy_integers_and_bools_are_normalised() -> None:
    f = Format("E4M3", np.int64(4), np.uint8(3), np.int32(7), np.False_, "all_ones", np.True_)
    assert f == fp8ref.E4M3 and hash(f) == hash(fp8ref.E4M3)
    assert type(f.ebits) is int and type(f.bias) is int and type(f.has_inf) is bool


def test_format_none_is_refused() -> None:
    with pytest.raises(TypeError, match="got None"):
        format(None)
    with pytest.raises(TypeError, match="fmt: .*got None"):
        fp8ref.quantize(1.0, None)
    with pytest.raises(TypeError, match="fmt: .*got None"):
        fp8ref.dequantize(np.zeros(2, np.uint8), None)
    with pytest.raises((TypeError, ValueError), match="fmt: .*got None"):
        fp8ref.scale_bias(3.5, None)


def _limit_formats() -> list[Format]:
    fs = [format("e11m52"), exmy(11, 4), exmy(16, 0, nan="all_ones"), exmy(16, 47, nan="ieee", has_inf=True)]
    for bias in (-(2**16), -1100, 1100, 2**16):
        fs += [exmy(4, 3, bias=bias, nan="all_ones"), exmy(2, 1, bias=bias), exmy(15, 0, bias=bias)]
    return fs


@pytest.mark.parametrize("f", _limit_formats(), ids=lambda f: f"{f.name}-b{f.bias}")
def test_every_derived_value_is_computable(f: Format) -> None:
    """Formats at the edges of the accepted ranges: exact values are Fractions, float values round to
    nearest even with inf / 0.0 beyond float64's range."""
    for name in ("bits", "sign_mask", "precision", "emin", "emax", "top_exp_field", "top_mantissa",
                 "max_code", "n_codes", "nan_code", "inf_code", "max_exact", "max", "min_normal",
                 "min_subnormal", "eps"):
        getattr(f, name)
    assert f.max == to_float(f.max_exact)
    big = f.max_exact >= 2**1024 - 2**970
    assert (f.max == math.inf) == big
    assert f.decode(f.max_code) == f.max
    if f.signed:
        assert f.decode(f.max_code | f.sign_mask) == -f.max
    tiny = f.min_subnormal_exact <= fractions.Fraction(1, 2**1075)
    assert (f.min_subnormal == 0.0) == tiny
    if f.bits <= 16 and f.ebits <= 11:  # (16-bit formats with 15 exponent bits take seconds)
        v = f.values()
        assert v.shape == (f.n_codes,)


def test_e11m52_max_is_inf_in_float64_and_exact_as_a_fraction() -> None:
    f = format("e11m52")
    assert f.max == math.inf
    assert f.max_exact == (2 - fractions.Fraction(1, 2**52)) * fractions.Fraction(2) ** 1024
    assert f.decode(f.max_code - 1) == math.inf  # (2 - 2**-51) * 2**1024 also lies beyond float64
    assert f.decode((2046 << 52) | ((1 << 52) - 1)) == float.fromhex("0x1.fffffffffffffp+1023")


def test_to_float_rounds_at_the_ieee_overflow_threshold() -> None:
    dbl_max = float.fromhex("0x1.fffffffffffffp+1023")
    assert to_float(fractions.Fraction(2**1024 - 2**970 - 1)) == dbl_max
    assert to_float(fractions.Fraction(2**1024 - 2**970)) == math.inf
    assert to_float(-fractions.Fraction(2**1024)) == -math.inf
    assert to_float(fractions.Fraction(1, 2**1075)) == 0.0
    assert math.copysign(1.0, to_float(fractions.Fraction(-1, 2**1100))) == -1.0
