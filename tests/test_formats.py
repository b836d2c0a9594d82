"""Formats as data: derived values against the spec tables and against ml_dtypes, code by code."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import fp8ref
from fp8ref.formats import Format, exmy, format

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
