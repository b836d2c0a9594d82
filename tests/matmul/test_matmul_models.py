"""The epilogue of the accumulation models (docs/matmul.md, "Epilogue of the accumulation models"),
checked against a Fraction transcription of each rule on the model's accumulator values."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8ref
from fp8ref.matmul.models import fma32
from fp8ref.matmul.oracle import round_exact
from tests.matmul.helpers import expand

FP32 = fp8ref.FP32
RNG = np.random.default_rng(5)


def rn(x, fmt=FP32) -> float:
    """One IEEE RNE rounding of an exact value (Fraction) or a special float."""
    if isinstance(x, float) and not math.isfinite(x):
        return x if fmt.has_inf or math.isnan(x) else math.nan
    return round_exact(Fraction(x), fmt)


def mul(x: float, y: float) -> float:
    if not (math.isfinite(x) and math.isfinite(y)):
        return float(np.float32(x) * np.float32(y))
    return rn(Fraction(x) * Fraction(y))


def add(x: float, y: float) -> float:
    if not (math.isfinite(x) and math.isfinite(y)):
        return float(np.float32(x) + np.float32(y))
    s = Fraction(x) + Fraction(y)
    if s == 0:  # IEEE: exact zero sum is +0 unless both are -0
        return -0.0 if (math.copysign(1, x) < 0 and math.copysign(1, y) < 0) else 0.0
    return rn(s)


def _codes(shape, fmt=fp8ref.E4M3):
    x = (RNG.standard_normal(shape) * 4).astype(np.float32)
    return x.astype(fmt.ml_dtype).view(np.uint8)


def _model(name, fa=fp8ref.E4M3, fb=fp8ref.E4M3):
    return fp8ref.accum.resolve(name).for_inputs(fa, fb)


@pytest.mark.parametrize("acc", ["fp32", "fp16", "bf16", "h100-fp8", "h100-fp8-fastaccum"])
@pytest.mark.parametrize("out", [fp8ref.FP32, fp8ref.BF16, fp8ref.FP16, fp8ref.E4M3])
def test_tensorwise_epilogue(acc, out) -> None:
    a, b = _codes((3, 64)), _codes((64, 4))
    sa, sb = np.float32(0.0371), np.float32(1.37)
    bias = (RNG.standard_normal(4) * 3).astype(ml_dtypes.bfloat16) if out != fp8ref.FP32 else None
    sr = 0.3 if out.bits == 8 else None
    got = fp8ref.scaled_mm(a, b, sa, sb, accumulate=acc, out_dtype=out, bias=bias, scale_result=sr)
    A, B = fp8ref.E4M3.values()[a], fp8ref.E4M3.values()[b]
    accv = _model(acc).gemm(A, B)
    alpha = mul(float(sa), float(sb))
    for i in range(3):
        for j in range(4):
            t = mul(float(accv[i, j]), alpha)
            if bias is not None:
                t = add(t, float(bias[j]))
            if sr is not None:
                t = mul(t, rn(Fraction(1) / Fraction(float(np.float32(sr)))))
            assert float(got[i, j]) == rn(Fraction(t), out) or (math.isnan(got[i, j]) and math.isnan(t))


@pytest.mark.parametrize("acc", ["fp32", "h100-fp8"])
def test_rowwise_epilogue_is_cutlass_order(acc) -> None:
    a, b = _codes((3, 64)), _codes((64, 4))
    sa = (RNG.random((3, 1)) + 0.1).astype(np.float32)
    sb = (RNG.random((1, 4)) + 0.1).astype(np.float32)
    bias = (RNG.standard_normal(4)).astype(np.float16)
    got = fp8ref.scaled_mm(a, b, sa, sb, accumulate=acc, out_dtype=np.float16, bias=bias)
    accv = _model(acc).gemm(fp8ref.E4M3.values()[a], fp8ref.E4M3.values()[b])
    for i in range(3):
        for j in range(4):
            t = mul(float(sa[i, 0]), mul(float(sb[0, j]), float(accv[i, j])))
            t = add(t, float(bias[j]))
            assert float(got[i, j]) == rn(Fraction(t), fp8ref.FP16)


@pytest.mark.parametrize("acc", ["fp32", "h100-fp8", "h100-fp8-fastaccum"])
def test_block_scales_promote_per_block_with_an_ffma(acc) -> None:
    m, k, n = 2, 300, 3
    a, b = _codes((m, k)), _codes((k, n))
    sa = (RNG.random((m, 3)) + 0.1).astype(np.float32)  # 1x128
    sb = (RNG.random((3, 1)) + 0.1).astype(np.float32)  # 128x128
    got = fp8ref.scaled_mm(a, b, sa, sb, accumulate=acc)
    A, B = fp8ref.E4M3.values()[a], fp8ref.E4M3.values()[b]
    model = _model(acc)
    want = np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            main = 0.0
            for s, (lo, hi) in enumerate(((0, 128), (128, 256), (256, 300))):
                part = float(model.gemm(A[i:i + 1, lo:hi], B[lo:hi, j:j + 1])[0, 0])
                c = mul(float(sa[i, s]), float(sb[s, 0]))
                main = rn(Fraction(main) + Fraction(part) * Fraction(c))
            want[i, j] = main
    np.testing.assert_array_equal(got, want)
    # with block scales the K range is cut at the block boundaries: the model sees each block from zero
    sa1 = expand(sa, (1, 128), (m, k))
    assert sa1.shape == (m, k)


f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(f32, f32, f32)
def test_fma32_is_one_rounding(x, y, z) -> None:
    got = float(fma32(np.float32(x), np.float32(y), np.float32(z)))
    exact = Fraction(x) * Fraction(y) + Fraction(z)
    if exact == 0:
        assert got == 0
    else:
        assert got == rn(exact)


def test_fma32_special_values() -> None:
    r = fma32(np.array([np.inf, 0.0, np.nan, 1e30]), np.array([1.0, np.inf, 1.0, 1e30]),
              np.array([-np.inf, 1.0, 0.0, 0.0]))
    assert np.isnan(r[0]) and np.isnan(r[1]) and np.isnan(r[2]) and r[3] == np.inf


def test_nan_inputs_reach_the_model() -> None:
    a, b = _codes((2, 32)), _codes((32, 2))
    a[0, 3] = 0x7F  # NaN
    r = fp8ref.scaled_mm(a, b, accumulate="fp32")
    assert np.isnan(r[0]).all() and np.isfinite(r[1]).all()


def test_model_objects_and_formats() -> None:
    a, b = _codes((2, 64)), _codes((64, 2), fp8ref.E5M2)
    model = fp8ref.accum.Sequential(acc_format="fp32")
    r1 = fp8ref.scaled_mm(a, b, b_format=fp8ref.E5M2, accumulate=model)
    r2 = fp8ref.scaled_mm(a, b, b_format=fp8ref.E5M2, accumulate="fp32")
    np.testing.assert_array_equal(r1, r2)
