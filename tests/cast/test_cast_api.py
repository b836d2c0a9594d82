"""The public contract of quantize / dequantize / as_ml_dtypes: inputs, outputs, errors."""

from __future__ import annotations

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import fp8ref
from fp8ref.cast import ROUNDING_MODES, as_ml_dtypes, dequantize, quantize

X = np.array([[0.5, -3.0, 448.0], [1e-3, -0.0, 300.0]], dtype=np.float32)


def test_rounding_modes_tuple() -> None:
    assert fp8ref.ROUNDING_MODES == ROUNDING_MODES == (
        "nearest_even", "nearest_away", "toward_zero", "toward_positive", "toward_negative",
        "stochastic", "stochastic_fast", "stochastic_fastest")


def test_import_is_light() -> None:
    code = ("import sys, fp8ref, fp8ref.cast; fp8ref.quantize; "
            "assert 'numba' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("fmt", [fp8ref.E4M3, "E4M3", "e4m3fn", "float8_e4m3fn", ml_dtypes.float8_e4m3fn,
                                 np.dtype(ml_dtypes.float8_e4m3fn)])
def test_fmt_accepts_names_and_dtypes(fmt) -> None:
    assert np.array_equal(quantize(X, fmt), quantize(X, fp8ref.E4M3))


def test_fmt_errors() -> None:
    with pytest.raises(ValueError, match="fmt: unknown format"):
        quantize(X, "e4m3xx")
    with pytest.raises(ValueError, match="fmt: FP32 has 32-bit codes"):
        quantize(X, "fp32")
    with pytest.raises(TypeError, match="fmt"):
        quantize(X, 3.5)


def test_shapes_and_layouts() -> None:
    ref = quantize(X, "E4M3")
    assert ref.shape == X.shape and ref.dtype == np.uint8
    assert np.array_equal(quantize(np.asfortranarray(X), "E4M3"), ref)
    assert np.array_equal(quantize(X.T, "E4M3"), ref.T)
    big = X.astype(">f4")
    assert np.array_equal(quantize(big, "E4M3"), ref)
    assert np.array_equal(quantize(X.astype(">f8"), "E4M3"), ref)
    z = quantize(np.float32(2.0), "E4M3")
    assert isinstance(z, np.ndarray) and z.shape == () and z.dtype == np.uint8 and int(z) == 0x40
    assert int(quantize(2.0, "E4M3")) == 0x40
    assert int(quantize(np.array(-2.0), "E4M3")) == 0xC0
    e = quantize(np.empty((0, 3), np.float32), "E4M3")
    assert e.shape == (0, 3) and e.dtype == np.uint8
    assert quantize([1.0, 2.0], "E4M3").tolist() == [0x38, 0x40]
    wide = np.arange(24, dtype=np.float64).reshape(2, 3, 4)[:, ::2, 1::2]
    assert np.array_equal(quantize(wide, "E5M2"), quantize(np.ascontiguousarray(wide), "E5M2"))


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e5m2])
def test_narrow_float_inputs_are_exact(dtype) -> None:
    x = X.astype(dtype)
    assert np.array_equal(quantize(x, "E4M3"), quantize(x.astype(np.float64), "E4M3"))


@pytest.mark.parametrize("bad", [1, np.int32(3), True, np.array([1, 2]), np.array([1 + 2j]), 2j,
                                 np.array([True]), np.array(["a"]), np.array([1.0], dtype=object)])
def test_non_float_input_is_a_type_error(bad) -> None:
    with pytest.raises(TypeError, match="x"):
        quantize(bad, "E4M3")


def test_longdouble_is_rejected() -> None:
    if np.dtype(np.longdouble).itemsize == 8:
        pytest.skip("longdouble is float64 here")
    with pytest.raises(TypeError, match="longdouble|float128|float96"):
        quantize(np.ones(2, np.longdouble), "E4M3")


def test_rounding_and_saturate_arguments() -> None:
    with pytest.raises(ValueError, match="rounding must be one of"):
        quantize(X, "E4M3", rounding="nearest")
    with pytest.raises(TypeError, match="saturate"):
        quantize(X, "E4M3", saturate="yes")


def test_out_argument() -> None:
    ref = quantize(X, "E4M3")
    out = np.zeros(X.shape, np.uint8)
    assert quantize(X, "E4M3", out=out) is out and np.array_equal(out, ref)
    out8 = np.zeros(X.shape, ml_dtypes.float8_e4m3fn)
    assert quantize(X, "E4M3", out=out8) is out8 and np.array_equal(out8.view(np.uint8), ref)
    outf = np.zeros((3, 2), np.uint8).T  # not contiguous
    quantize(X, "E4M3", out=outf)
    assert np.array_equal(outf, ref)
    with pytest.raises(ValueError, match="shape"):
        quantize(X, "E4M3", out=np.zeros(6, np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        quantize(X, "E4M3", out=np.zeros(X.shape, np.int8))
    with pytest.raises(TypeError, match="dtype"):
        quantize(X, "E4M3", out=np.zeros(X.shape, ml_dtypes.float8_e5m2))
    ro = np.zeros(X.shape, np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        quantize(X, "E4M3", out=ro)


@pytest.mark.parametrize("n", [64, 1 << 18])
@pytest.mark.parametrize("rounding", ["nearest_even", "toward_zero", "stochastic"])
def test_out_overlapping_the_input(n: int, rounding: str) -> None:
    """``out`` a view of the input's own bytes: the codes equal those of a separate ``out`` (the direct
    write gave 12 wrong codes of 64 and 32,764 of 2**18)."""
    rng = np.random.default_rng(n)
    kw = {"seed": 3} if rounding == "stochastic" else {}
    for dtype in (np.float32, np.float64):
        size = np.dtype(dtype).itemsize
        for start in (0, (size - 1) * n, size * n // 2):
            buf = (rng.standard_normal(n) * 100).astype(dtype)
            ref = quantize(buf.copy(), "E4M3", rounding=rounding, **kw)
            out = buf.view(np.uint8)[start:start + n]
            assert quantize(buf, "E4M3", rounding=rounding, out=out, **kw) is out
            assert np.array_equal(out, ref), (dtype, start)


def test_out_overlapping_srbits() -> None:
    x = np.linspace(1, 2, 64)
    bits = (np.arange(64, dtype=np.int64) * 5) % 16
    ref = quantize(x, "E4M3", rounding="stochastic", srbits=bits, srnumbits=4)
    out = bits.view(np.uint8)[8:72]  # the codes land on bits not yet read
    quantize(x, "E4M3", rounding="stochastic", srbits=bits, srnumbits=4, out=out)
    assert np.array_equal(out, ref)


def test_overlap_test_is_exact() -> None:
    """Interleaved views of one buffer share no byte although their bounds overlap."""
    from fp8ref.cast import api

    buf = np.zeros((64, 8), np.uint8)
    x, out = buf[:, :4], buf[:, 4]
    assert np.may_share_memory(x, out) and not api._overlaps(out, x)
    assert api._overlaps(buf[:, 3], x) and api._overlaps(out, None, buf)
    assert not api._overlaps(out, None, np.zeros(3))


def test_errors_lose_nothing() -> None:
    """A failing call leaves ``out`` untouched."""
    out = np.full(3, 7, np.uint8)
    with pytest.raises(ValueError, match="no encoding"):
        quantize(np.array([1.0, np.nan, 2.0]), "E2M1", out=out)
    assert out.tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match="srbits"):
        quantize(np.ones(3), "E4M3", rounding="stochastic", srbits=np.array([0, 1, 99]), srnumbits=4, out=out)
    assert out.tolist() == [7, 7, 7]


def test_formats_without_nan_raise_on_nan_and_non_saturating_overflow() -> None:
    with pytest.raises(ValueError, match="E2M1, which has no NaN"):
        quantize(np.array([np.nan]), "E2M1")
    with pytest.raises(ValueError, match="no encoding"):
        quantize(np.array([7.0]), "E2M1", saturate=False)
    assert quantize(np.array([7.0, -np.inf]), "E2M1").tolist() == [0x7, 0xF]
    assert quantize(np.array([7.0]), "E2M1", rounding="toward_zero", saturate=False).tolist() == [0x7]


def test_wide_targets_return_uint16() -> None:
    c = quantize(np.array([1.0, -2.5]), "FP16")
    assert c.dtype == np.uint16 and c.tolist() == [0x3C00, 0xC100]
    assert quantize(np.array([1.0]), "BF16").tolist() == [0x3F80]
    assert dequantize(c, "FP16").tolist() == [1.0, -2.5]


# ---- dequantize -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [fp8ref.E4M3, fp8ref.E5M2, fp8ref.E4M3FNUZ, fp8ref.E5M2FNUZ, fp8ref.E8M0])
def test_dequantize_every_code(fmt) -> None:
    codes = np.arange(256, dtype=np.uint8)
    ref = codes.view(fmt.ml_dtype).astype(np.float64)
    for dtype in (np.float32, np.float64):
        got = dequantize(codes, fmt, dtype=dtype)
        assert got.dtype == dtype
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        ok = ~np.isnan(ref)
        assert np.array_equal(got[ok], ref[ok]) and np.array_equal(np.signbit(got[ok]), np.signbit(ref[ok]))
        # NaN codes give a quiet NaN with the sign bit of the code
        nan = np.isnan(got)
        assert np.array_equal(np.signbit(got[nan]), (codes[nan] & fmt.sign_mask) != 0)
        bits = got[nan].view(np.uint32 if dtype == np.float32 else np.uint64)
        quiet = 1 << (22 if dtype == np.float32 else 51)
        assert np.all(bits & quiet)


def test_dequantize_inputs() -> None:
    codes = np.array([[0x38, 0xC0], [0x7E, 0x01]], np.uint8)
    want = dequantize(codes, "E4M3")
    assert want.tolist() == [[1.0, -2.0], [448.0, 2.0**-9]]
    assert np.array_equal(dequantize(codes.view(ml_dtypes.float8_e4m3fn), "E4M3"), want)
    assert np.array_equal(dequantize(codes.astype(np.int64), "E4M3"), want)
    assert np.array_equal(dequantize(codes.T, "E4M3"), want.T)
    assert dequantize(np.uint8(0x38), "E4M3").shape == ()
    assert dequantize(np.zeros(0, np.uint8), "E4M3").shape == (0,)
    assert dequantize([0x38], "e4m3").tolist() == [1.0]
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 256\)"):
        dequantize(np.array([256]), "E4M3")
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\)"):
        dequantize(np.array([16], np.uint8), "E2M1")
    with pytest.raises(TypeError, match="codes must be an integer array"):
        dequantize(np.array([1.0]), "E4M3")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        dequantize(codes, "E4M3", dtype=np.float16)


def test_dequantize_out_argument() -> None:
    codes = np.array([[0x38, 0xC0, 0x7F], [0x7E, 0x01, 0x80]], np.uint8)
    for dtype in (np.float32, np.float64):
        ref = dequantize(codes, "E4M3", dtype=dtype)
        out = np.full(codes.shape, 5, dtype)
        assert dequantize(codes, "E4M3", dtype=dtype, out=out) is out
        assert np.array_equal(out, ref, equal_nan=True) and np.signbit(out[1, 2])
        outf = np.zeros((3, 2), dtype).T  # not contiguous
        assert dequantize(codes, "E4M3", dtype=dtype, out=outf) is outf
        assert np.array_equal(outf, ref, equal_nan=True)
    out0 = np.zeros((), np.float32)
    assert dequantize(np.uint8(0x38), "E4M3", out=out0) is out0 and out0[()] == 1.0
    dequantize(np.zeros(0, np.uint8), "E4M3", out=np.zeros(0, np.float32))


@pytest.mark.parametrize(("out", "err", "match"), [
    (np.zeros(6, np.float32), ValueError, r"out has shape \(6,\), codes has shape \(2, 3\)"),
    (np.zeros((2, 3), np.float16), TypeError, "out must have dtype float32, got float16"),
    (np.zeros((2, 3), np.float64), TypeError, "out has dtype float64 but dtype is float32"),
    (np.zeros((2, 3), ">f4"), TypeError, "out must have dtype float32"),
    ([[0.0] * 3] * 2, TypeError, "out must be a numpy array"),
])
def test_dequantize_out_errors(out, err, match: str) -> None:
    with pytest.raises(err, match=match):
        dequantize(np.zeros((2, 3), np.uint8), "E4M3", out=out)


def test_dequantize_out_read_only_and_bad_codes_leave_out_unchanged() -> None:
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        dequantize(np.zeros(3, np.uint8), "E4M3", out=ro)
    out = np.full(3, 7.0, np.float32)
    with pytest.raises(ValueError, match="codes must lie in"):
        dequantize(np.array([1, 2, 300]), "E4M3", out=out)
    with pytest.raises(ValueError, match="codes must lie in"):
        dequantize(np.array([1, 2, 17], np.uint8), "E2M1", out=out)
    assert out.tolist() == [7.0, 7.0, 7.0]


@pytest.mark.parametrize("n", [64, 1 << 18])
def test_dequantize_out_overlapping_the_codes(n: int) -> None:
    codes = np.random.default_rng(n).integers(0, 256, n).astype(np.uint8)
    for dtype in (np.float32, np.float64):
        ref = dequantize(codes, "E5M2", dtype=dtype)
        size = np.dtype(dtype).itemsize
        for start in (0, (size - 1) * n, n // 2):
            buf = np.zeros(n, dtype)
            c = buf.view(np.uint8)[start:start + n]
            c[:] = codes
            assert dequantize(c, "E5M2", dtype=dtype, out=buf) is buf
            assert np.array_equal(buf, ref, equal_nan=True), (dtype, start)


def test_quantize_dequantize_round_trip_on_values() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(1000) * 100).astype(np.float32)
    y = dequantize(quantize(x, "E4M3"), "E4M3")
    assert np.array_equal(quantize(y, "E4M3"), quantize(x, "E4M3"))


# ---- as_ml_dtypes ---------------------------------------------------------------------------------
def test_as_ml_dtypes_is_a_zero_copy_view() -> None:
    codes = quantize(X, "E5M2")
    v = as_ml_dtypes(codes, "E5M2")
    assert v.dtype == ml_dtypes.float8_e5m2 and np.shares_memory(v, codes)
    assert np.array_equal(v.astype(np.float32), dequantize(codes, "E5M2"))
    assert as_ml_dtypes(v, "E5M2") is v
    with pytest.raises(TypeError, match="uint8"):
        as_ml_dtypes(codes.astype(np.int16), "E5M2")
    with pytest.raises(TypeError, match="numpy array"):
        as_ml_dtypes([1, 2], "E5M2")
    with pytest.raises(ValueError, match="no ml_dtypes dtype"):
        as_ml_dtypes(codes, fp8ref.exmy(3, 4, name="R34"))
    fp4 = as_ml_dtypes(np.array([1, 15], np.uint8), "E2M1")
    assert fp4.astype(np.float32).tolist() == [0.5, -6.0]
