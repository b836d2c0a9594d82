"""Input rules of scaled_mm: operand kinds, scale granularities by shape, bias, out_dtype, bad input."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fp8ref
from fp8ref.matmul import inputs as inp
from fp8ref.matmul.oracle import scaled_mm_oracle
from fp8ref.scaling import MX, Current, JustInTime, ScaledTensor, quantize_scaled
from tests.matmul.helpers import expand

RNG = np.random.default_rng(11)


def _finite_codes(shape, fmt=fp8ref.E4M3):
    c = RNG.integers(0, 256, shape, dtype=np.uint8)
    c[~np.isfinite(fmt.values())[c]] = 0
    return c


@pytest.mark.parametrize("m,k", [(5, 300), (130, 40), (1, 1), (3, 32)])
def test_a_scale_granularity_from_shape(m, k) -> None:
    c = -(-k // 128)
    assert inp.a_scales(2.0, m, k).granularity == "tensor"
    assert inp.a_scales(np.ones((m, 1), np.float32), m, k).block == (1, max(k, 1))
    cases = {(m, c): (1, 128), (-(-m // 128), c): (128, 128), (m, -(-k // 32)): (1, 32)}
    for shape, block in cases.items():
        s = inp.a_scales(np.ones(shape, np.float32), m, k)
        # where two rules give the same shape they give the same scale per element
        g = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
        s = inp.a_scales(g.astype(np.float32), m, k)
        np.testing.assert_array_equal(expand(s.grid, s.block, (m, k)), expand(g, block, (m, k)))


def test_b_scale_granularity_from_shape() -> None:
    k, n = 300, 5
    assert inp.b_scales(np.ones((1, n), np.float32), k, n).granularity == "column"
    assert inp.b_scales(np.ones((3, n), np.float32), k, n).block == (128, 1)
    assert inp.b_scales(np.ones((3, 1), np.float32), k, n).block == (128, 128)
    assert inp.b_scales(np.ones((10, n), np.float32), k, n).block == (32, 1)


def test_bad_scale_shapes_name_the_rule() -> None:
    a, b = _finite_codes((4, 64)), _finite_codes((64, 8))
    with pytest.raises(ValueError, match=r"scale_a has shape \(3, 1\).*\(4, 1\) \(rowwise\)"):
        fp8ref.scaled_mm(a, b, np.ones((3, 1), np.float32), 1.0)
    with pytest.raises(ValueError, match=r"scale_b has shape \(8, 1\).*\(1, 8\)"):
        fp8ref.scaled_mm(a, b, 1.0, np.ones((8, 1), np.float32))


def test_bad_operands() -> None:
    a, b = _finite_codes((4, 64)), _finite_codes((64, 8))
    with pytest.raises(ValueError, match=r"a is \(4, 64\), b is \(63, 8\)"):
        fp8ref.scaled_mm(a, b[:63])
    with pytest.raises(ValueError, match="a must hold uint8 codes"):
        fp8ref.scaled_mm(a.astype(np.float32), b)
    with pytest.raises(ValueError, match="b must be 2-D"):
        fp8ref.scaled_mm(a, b[:, 0])
    with pytest.raises(ValueError, match="a must be a NumPy array"):
        fp8ref.scaled_mm(a.tolist(), b)
    with pytest.raises(ValueError, match="not a valid E2M1 code"):
        fp8ref.scaled_mm(a, b, a_format=fp8ref.E2M1)
    with pytest.raises(ValueError, match="a_format"):
        fp8ref.scaled_mm(a, b, a_format="nope")
    with pytest.raises(ValueError, match="at most 8 bits"):
        fp8ref.scaled_mm(a, b, a_format=fp8ref.FP16)
    e5 = a.view(ml_dtypes.float8_e5m2)
    with pytest.raises(ValueError, match="format E5M2.*a_format=E4M3FNUZ"):
        fp8ref.scaled_mm(e5, b, a_format=fp8ref.E4M3FNUZ)


def test_bad_bias_out_and_scale_result() -> None:
    a, b = _finite_codes((4, 64)), _finite_codes((64, 8))
    with pytest.raises(ValueError, match=r"bias must have shape \(8,\)"):
        fp8ref.scaled_mm(a, b, bias=np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="bias must be a float array"):
        fp8ref.scaled_mm(a, b, bias=np.zeros(8, np.int32))
    with pytest.raises(ValueError, match="out_dtype=FP64 is not supported"):
        fp8ref.scaled_mm(a, b, out_dtype=np.float64)
    with pytest.raises(ValueError, match="out_dtype"):
        fp8ref.scaled_mm(a, b, out_dtype="float128x")
    with pytest.raises(ValueError, match="scale_result divides the result before an FP8 cast"):
        fp8ref.scaled_mm(a, b, scale_result=2.0)
    with pytest.raises(ValueError, match="scale_result must be a float scalar"):
        fp8ref.scaled_mm(a, b, out_dtype=fp8ref.E4M3, scale_result=np.ones(2))
    with pytest.raises(ValueError, match="accumulate"):
        fp8ref.scaled_mm(a, b, accumulate="no-such-model")


def test_ml_dtypes_operands_take_their_format() -> None:
    a, b = _finite_codes((3, 40), fp8ref.E5M2), _finite_codes((40, 2), fp8ref.E4M3FNUZ)
    got = fp8ref.scaled_mm(a.view(ml_dtypes.float8_e5m2), b.view(ml_dtypes.float8_e4m3fnuz))
    want = fp8ref.scaled_mm(a, b, a_format=fp8ref.E5M2, b_format=fp8ref.E4M3FNUZ)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("out", [np.float32, np.float16, ml_dtypes.bfloat16, fp8ref.E4M3, fp8ref.E5M2,
                                 ml_dtypes.float8_e4m3fnuz, "e5m2fnuz"])
def test_output_dtypes(out) -> None:
    a, b = _finite_codes((3, 40)), _finite_codes((40, 2))
    r = fp8ref.scaled_mm(a, b, 2.0**-6, 2.0**-6, out_dtype=out)
    assert r.dtype == fp8ref.format(out).ml_dtype
    assert r.shape == (3, 2)


def test_empty_shapes() -> None:
    assert fp8ref.scaled_mm(np.zeros((0, 16), np.uint8), np.zeros((16, 3), np.uint8)).shape == (0, 3)
    z = fp8ref.scaled_mm(np.zeros((2, 0), np.uint8), np.zeros((0, 3), np.uint8),
                         bias=np.array([1.5, -2.0, 0.0], np.float32))
    np.testing.assert_array_equal(z, [[1.5, -2.0, 0.0]] * 2)


def test_float64_scales_are_rounded_to_float32_first() -> None:
    a = np.array([[0x38]], np.uint8)
    r = fp8ref.scaled_mm(a, a, 0.1, 1.0, out_dtype=fp8ref.FP32)
    assert r[0, 0] == np.float32(0.1)
    r64 = fp8ref.scaled_mm(a, a, np.float64(0.1), np.float64(3.0), out_dtype=fp8ref.FP32)
    assert r64[0, 0] == np.float32(float(np.float32(0.1)) * 3.0)


def _st_check(sta, stb, out=fp8ref.FP32) -> None:
    got = fp8ref.scaled_mm(sta, stb, out_dtype=out)
    m, k = sta.codes.shape
    n = stb.codes.shape[1]
    want = scaled_mm_oracle(sta.codes, sta.fmt, stb.codes, stb.fmt, sta.expand().astype(np.float64),
                            stb.expand().astype(np.float64), None, None, out)
    np.testing.assert_array_equal(got.astype(np.float64), want)
    assert got.shape == (m, n)


def test_scaled_tensor_operands() -> None:
    x = RNG.standard_normal((6, 64)).astype(np.float32)
    w = RNG.standard_normal((64, 5)).astype(np.float32) * 100
    _st_check(quantize_scaled(x, fp8ref.E4M3, JustInTime()), quantize_scaled(w, fp8ref.E5M2, JustInTime()))
    _st_check(quantize_scaled(x, fp8ref.E4M3, Current(granularity="row")),
              quantize_scaled(w, fp8ref.E4M3, Current(granularity="column")))
    _st_check(quantize_scaled(x, fp8ref.E4M3, MX()), quantize_scaled(w, fp8ref.E4M3, MX(axis=0)), fp8ref.BF16)
    _st_check(quantize_scaled(x, fp8ref.E4M3, Current(granularity=(1, 16))),
              quantize_scaled(w, fp8ref.E4M3, Current(granularity=(16, 5))))
    st = quantize_scaled(x, fp8ref.E4M3, JustInTime())
    with pytest.raises(ValueError, match="leave scale_a at its default"):
        fp8ref.scaled_mm(st, quantize_scaled(w, fp8ref.E4M3, JustInTime()), 2.0)
    assert isinstance(st, ScaledTensor)


def test_mx_e8m0_scales() -> None:
    a, b = _finite_codes((2, 64)), _finite_codes((64, 3))
    sa_codes = np.array([[120, 127], [130, 255]], np.uint8)  # 2^-7, 1, 2^3, NaN
    got = fp8ref.scaled_mm(a, b, sa_codes.view(ml_dtypes.float8_e8m0fnu), 1.0)
    sa = fp8ref.E8M0.values()[sa_codes]
    want = scaled_mm_oracle(a, fp8ref.E4M3, b, fp8ref.E4M3, expand(sa, (1, 32), (2, 64)), np.ones((64, 3)),
                            None, None, fp8ref.FP32)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[1]).all()
