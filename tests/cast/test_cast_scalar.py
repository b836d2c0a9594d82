"""The inlinable scalar encoder other kernels fuse with (fp8ref.cast.kernels.encode_scalar)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, prange

import fp8ref
from fp8ref.cast import philox
from fp8ref.cast.cases import boundary_values
from fp8ref.cast.kernels import encode_scalar, format_params, mode_index


@njit(parallel=True)
def _scaled_cast(x, scale, p, mode, sat, rbits, nbits, out):
    for i in prange(x.size):
        out[i] = encode_scalar(np.float64(x[i]) * scale, p, mode, sat, rbits[i], nbits)


@njit
def _one(x, p, mode, sat):
    return encode_scalar(x, p, mode, sat, 0, 0)


def test_format_params_shape() -> None:
    p = format_params(fp8ref.E4M3)
    assert p._fields[:11] == ("mbits", "emin", "bias", "max_code", "sign_mask", "nan_code", "inf_code",
                              "has_zero", "has_subnormals", "has_negative_zero", "signed")
    assert all(isinstance(v, int) for v in p)
    assert p[:4] == (3, -6, 7, 0x7E)
    with pytest.raises(ValueError, match="at most 16 bits"):
        format_params(fp8ref.FP32)
    assert [mode_index(m) for m in fp8ref.ROUNDING_MODES] == list(range(8))


@pytest.mark.parametrize("fmt", [fp8ref.E4M3, fp8ref.E5M2, fp8ref.E4M3FNUZ, fp8ref.E8M0], ids=str)
def test_fused_scale_and_cast_equals_quantize(fmt) -> None:
    x = boundary_values(fmt, np.float32)
    bias = 3
    scaled = x.astype(np.float64) * 2.0**bias  # exact
    rb = np.array([philox.random_bits(5, i, 12) for i in range(x.size)], dtype=np.int64)
    out = np.empty(x.size, np.int64)
    for rounding in fp8ref.ROUNDING_MODES:
        for sat in (True, False):
            stochastic = rounding.startswith("stochastic")
            nbits = 12 if stochastic else 0
            _scaled_cast(x, 2.0**bias, format_params(fmt), mode_index(rounding), sat, rb, nbits, out)
            kw = {"srbits": rb, "srnumbits": 12} if stochastic else {}
            assert np.array_equal(out, fp8ref.quantize(scaled, fmt, rounding=rounding, saturate=sat, **kw))


def test_float32_scalar_and_no_nan_format() -> None:
    p = format_params(fp8ref.E4M3)
    assert _one(np.float32(464.0), p, 0, False) == 0x7E
    assert _one(-431.99999999999994, p, 0, True) == 0xFD
    assert _one(np.nan, format_params(fp8ref.E2M1), 0, True) == -1
