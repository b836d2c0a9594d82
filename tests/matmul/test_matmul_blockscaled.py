"""``scaled_mm`` with MX / NVFP4 ScaledTensor operands: the block-scaled accumulation models and presets,
the per-tensor (global) scale applied in the epilogue like cuBLASLt's alpha, and in the exact path."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import fp8ref
from fp8ref import accum
from fp8ref.accum.exact import round_to
from fp8ref.formats import E2M1, E4M3, E8M0, FP32
from fp8ref.scaling import ScaledTensor


def _nvfp4(rng: np.random.Generator, shape: tuple[int, int], along_rows: bool, g: float | None
           ) -> ScaledTensor:
    """An NVFP4-like ScaledTensor: E2M1 codes, E4M3 block scales per 16 along K, a float32 global scale."""
    codes = rng.integers(0, 16, size=shape).astype(np.uint8)
    block = (16, 1) if along_rows else (1, 16)
    grid = (-(-shape[0] // 16), shape[1]) if along_rows else (shape[0], -(-shape[1] // 16))
    scodes = rng.integers(0x08, 0x70, size=grid).astype(np.uint8)  # positive normal E4M3 scales
    scale = fp8ref.dequantize(scodes, E4M3, dtype=np.float32)
    return ScaledTensor(codes, E2M1, scale, block=block, granularity="block", scale_codes=scodes,
                        global_scale=None if g is None else np.float32(g))


def _mx(rng: np.random.Generator, shape: tuple[int, int], along_rows: bool, fmt=E4M3) -> ScaledTensor:
    codes = rng.integers(0, 16 if fmt == E2M1 else 0x7E, size=shape).astype(np.uint8)
    block = (32, 1) if along_rows else (1, 32)
    grid = (-(-shape[0] // 32), shape[1]) if along_rows else (shape[0], -(-shape[1] // 32))
    scodes = rng.integers(120, 135, size=grid).astype(np.uint8)
    scale = fp8ref.dequantize(scodes, E8M0, dtype=np.float32)
    return ScaledTensor(codes, fmt, scale, block=block, granularity="mx", scale_codes=scodes)


def _exact_value(a: ScaledTensor, b: ScaledTensor, i: int, j: int) -> Fraction:
    av, bv = a.dequantize(np.float64), b.dequantize(np.float64)  # exact: E2M1 x E4M3 x float32 in float64
    return sum((Fraction(float(av[i, k])) * Fraction(float(bv[k, j])) for k in range(av.shape[1])),
               Fraction(0))


@pytest.mark.parametrize("ga,gb", [(None, None), (0.375, None), (1e-3, 3.0e2), (np.float32(1 / 3), 7.0),
                                   (np.float32(1 / 3), np.float32(3.0000002))])
def test_exact_applies_the_global_scale_with_one_rounding(ga, gb):
    rng = np.random.default_rng(3)
    a = _nvfp4(rng, (5, 48), False, ga)
    b = _nvfp4(rng, (48, 4), True, gb)
    bias = np.array([0.5, -0.25, 1e-3, 0.0], dtype=np.float32)
    out = fp8ref.scaled_mm(a, b, out_dtype=np.float32, accumulate="exact")
    outb = fp8ref.scaled_mm(a, b, bias=bias, out_dtype=np.float32, accumulate="exact")
    for i in range(5):
        for j in range(4):
            x = _exact_value(a, b, i, j)
            assert out[i, j] == round_to(x, FP32), (i, j)
            assert outb[i, j] == round_to(x + Fraction(float(bias[j])), FP32), (i, j)


def test_nvfp4_preset_epilogue_order():
    rng = np.random.default_rng(5)
    a = _nvfp4(rng, (4, 64), False, 0.5)
    b = _nvfp4(rng, (64, 3), True, np.float32(1 / 3))
    bias = np.array([0.25, -1.0, 3.0], dtype=np.float32)
    for name in ("b200-nvfp4", "rtx5090-nvfp4"):
        model = accum.get(name)
        out = fp8ref.scaled_mm(a, b, bias=bias, accumulate=name)
        A = fp8ref.dequantize(a.codes, E2M1, dtype=np.float64)
        B = fp8ref.dequantize(b.codes, E2M1, dtype=np.float64)
        acc = model.gemm(A, B, scale_a=a.scale, scale_b=b.scale).astype(np.float32)
        alpha = np.float32(a.global_scale) * np.float32(b.global_scale)
        want = (acc * alpha) + bias[None, :]
        np.testing.assert_array_equal(out, want)


def test_mx_presets_take_mx_operands():
    rng = np.random.default_rng(6)
    a, b = _mx(rng, (3, 64), False), _mx(rng, (64, 2), True)
    out = fp8ref.scaled_mm(a, b, accumulate="b200-mxfp8")
    A = fp8ref.dequantize(a.codes, E4M3, dtype=np.float64)
    B = fp8ref.dequantize(b.codes, E4M3, dtype=np.float64)
    want = accum.get("b200-mxfp8").gemm(A, B, scale_a=a.scale, scale_b=b.scale).astype(np.float32)
    np.testing.assert_array_equal(out, want)
    ex = fp8ref.scaled_mm(a, b, accumulate="exact")
    assert np.all(np.abs(out - ex) <= 1e-5 * np.abs(ex) + 1e-30)
    a4, b4 = _mx(rng, (2, 64), False, E2M1), _mx(rng, (64, 2), True, E2M1)
    out4 = fp8ref.scaled_mm(a4, b4, accumulate="b200-mxfp4")
    assert np.array_equal(out4, fp8ref.scaled_mm(a4, b4, accumulate="exact"))  # small exact sums


def test_block_scaled_models_refuse_other_scales():
    rng = np.random.default_rng(7)
    a, b = _mx(rng, (2, 32), False), _mx(rng, (32, 2), True)
    with pytest.raises(ValueError, match="b200-nvfp4.*cannot take E4M3"):
        fp8ref.scaled_mm(a, b, accumulate="b200-nvfp4")
    codes = np.full((2, 32), 0x38, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"takes block scales of 1x32 along K for a .*got tensor"):
        fp8ref.scaled_mm(codes, codes.T.copy(), accumulate="b200-mxfp8")
    na, nb = _nvfp4(rng, (2, 32), False, None), _nvfp4(rng, (32, 2), True, None)
    with pytest.raises(ValueError, match="takes block scales of 1x32"):
        fp8ref.scaled_mm(na, nb, accumulate="b200-mxfp4")
    assert math.isfinite(float(fp8ref.scaled_mm(na, nb, accumulate="b200-nvfp4")[0, 0]))
