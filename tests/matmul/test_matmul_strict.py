"""strict_torch=True: torch._scaled_mm's (CUDA) restrictions and messages; the default accepts them all."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fp8ref

A = np.full((32, 32), 0x38, np.uint8)
B = np.full((32, 48), 0x38, np.uint8)
ROW_A, ROW_B = np.ones((32, 1), np.float32), np.ones((1, 48), np.float32)
BF = np.zeros(48, ml_dtypes.bfloat16)
HALF = np.zeros(48, np.float16)

REJECTED = [
    (dict(a_format=fp8ref.E5M2, b_format=fp8ref.E5M2),
     "Multiplication of two Float8_e5m2 matrices is not supported"),
    (dict(bias=BF), "Bias is not supported when out_dtype is set to Float32"),
    (dict(bias=np.zeros(48, np.float32), out_dtype=np.float16),
     "Bias must be BFloat16 or Half, but got Float"),
    (dict(bias=HALF, out_dtype=ml_dtypes.bfloat16),
     "Bias must be BFloat16 to compute BFloat16 output, but got Half"),
    (dict(bias=BF, out_dtype=np.float16), "Bias must be Float16 to compute Half output, but got BFloat16"),
    (dict(bias=np.zeros(47, ml_dtypes.bfloat16), out_dtype=np.float16), "Bias must be size 48 but got 47"),
    (dict(scale_a=ROW_A, scale_b=ROW_B, out_dtype=fp8ref.E4M3),
     "Only bf16, fp16, and fp32 high precision output types are supported for row-wise scaling."),
    (dict(scale_a=ROW_A, scale_b=1.0), "Invalid scaling configuration."),
    (dict(a_format=fp8ref.E2M1), "Expected mat1 to be Float8 or Float4_x2 matrix got E2M1"),
    (dict(out_dtype=fp8ref.E4M3, scale_result=np.ones(2, np.float32)), "scale_result must be a float scalar"),
]


@pytest.mark.parametrize("kwargs,message", REJECTED)
def test_torch_rejections(kwargs, message) -> None:
    kw = dict(kwargs)
    a = A if kw.get("a_format") != fp8ref.E2M1 else np.zeros((32, 32), np.uint8)
    sa, sb = kw.pop("scale_a", 1.0), kw.pop("scale_b", 1.0)
    with pytest.raises(ValueError) as info:
        fp8ref.scaled_mm(a, B, sa, sb, strict_torch=True, **kw)
    assert str(info.value).startswith(message)
    if message.startswith(("Bias must be size", "scale_result must", "Invalid")):
        return
    fp8ref.scaled_mm(a, B, sa, sb, strict_torch=False, **kw)  # the reference itself accepts them


def test_size_rules() -> None:
    with pytest.raises(ValueError, match=r"Expected trailing dimension of mat1 to be divisible by 16 but got "
                                         r"mat1 shape: \(32x24\)\."):
        fp8ref.scaled_mm(A[:, :24], B[:24], strict_torch=True)
    with pytest.raises(ValueError, match=r"mat2 shape \(32x40\) must be divisible by 16"):
        fp8ref.scaled_mm(A, B[:, :40], strict_torch=True)
    with pytest.raises(ValueError, match=r"mat1 and mat2 shapes cannot be multiplied \(32x32 and 16x48\)"):
        fp8ref.scaled_mm(A, B[:16], strict_torch=True)
    fp8ref.scaled_mm(A[:, :24], B[:24])


def test_accepted_combinations() -> None:
    ok = [dict(), dict(a_format=fp8ref.E5M2), dict(b_format=fp8ref.E5M2),
          dict(scale_a=ROW_A, scale_b=ROW_B, out_dtype=ml_dtypes.bfloat16, bias=BF),
          dict(bias=HALF, out_dtype=np.float16), dict(bias=BF, out_dtype=fp8ref.E4M3),
          dict(out_dtype=fp8ref.E5M2, scale_result=np.float32(2.0))]
    for kw in ok:
        kw = dict(kw)
        sa, sb = kw.pop("scale_a", 1.0), kw.pop("scale_b", 1.0)
        fp8ref.scaled_mm(A, B, sa, sb, strict_torch=True, **kw)


def test_block_pairs() -> None:
    a = np.full((256, 256), 0x38, np.uint8)
    b = np.full((256, 256), 0x38, np.uint8)
    s1x128_a, s128_a = np.ones((256, 2), np.float32), np.ones((2, 2), np.float32)
    s1x128_b, s128_b = np.ones((2, 256), np.float32), np.ones((2, 2), np.float32)
    for sa, sb in ((s128_a, s1x128_b), (s1x128_a, s128_b), (s1x128_a, s1x128_b)):
        fp8ref.scaled_mm(a, b, sa, sb, strict_torch=True, out_dtype=ml_dtypes.bfloat16)
    with pytest.raises(ValueError, match="Invalid scaling configuration"):
        fp8ref.scaled_mm(a, b, s128_a, s128_b, strict_torch=True)
    fp8ref.scaled_mm(a, b, s128_a, s128_b)  # 128x128 x 128x128: cuBLASLt has no such pair; fp8ref does


def test_scale_result_ignored_for_wide_outputs_like_torch() -> None:
    r = fp8ref.scaled_mm(A, B, strict_torch=True, scale_result=np.float32(4.0))
    np.testing.assert_array_equal(r, fp8ref.scaled_mm(A, B))
