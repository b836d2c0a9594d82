"""Every code of every format decodes and re-encodes to itself, in every mode, through every input dtype."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fp8ref
from fp8ref.cast.oracle import ROUNDING_MODES, decode_exact, round_exact
from fp8ref.formats import Format

FORMATS = [fp8ref.E4M3, fp8ref.E5M2, fp8ref.E4M3FNUZ, fp8ref.E5M2FNUZ, fp8ref.E8M0, fp8ref.E2M1, fp8ref.E2M3,
           fp8ref.E3M2, fp8ref.exmy(3, 4), fp8ref.exmy(2, 5), fp8ref.exmy(5, 2, nan="fnuz"),
           fp8ref.exmy(4, 3, has_subnormals=False, name="E4M3NOSUB"), fp8ref.exmy(3, 0), fp8ref.exmy(7, 0)]


def _canonical(fmt: Format) -> np.ndarray:
    """Codes whose decoded value encodes back to the same code: all but the NaN payloads other than
    ``nan_code | sign`` and, without subnormals, the zero-exponent patterns that decode to zero."""
    codes = np.arange(fmt.n_codes)
    keep = [c for c in codes
            if not (fmt.classify(c) == "nan" and c != (fmt.nan_code | (c & fmt.sign_mask)))
            and not (fmt.classify(c) == "zero" and c & ~fmt.sign_mask)]
    return np.array(keep, dtype=np.int64)


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, ml_dtypes.bfloat16],
                         ids=["f64", "f32", "f16", "bf16"])
def test_every_code_round_trips(fmt: Format, dtype) -> None:
    codes = _canonical(fmt)
    vals = fp8ref.dequantize(codes, fmt, dtype=np.float64)
    with np.errstate(over="ignore"):
        x = vals.astype(dtype)
    exact = x.astype(np.float64)
    same = (exact == vals) | (np.isnan(exact) & np.isnan(vals)) | (np.isinf(vals) & (exact == vals))
    x, codes = x[same], codes[same]  # values the input dtype can hold exactly
    for rounding in ROUNDING_MODES:
        kw = {"srbits": (np.arange(codes.size) * 2654435761) % 2**32, "srnumbits": 32} \
            if rounding.startswith("stochastic") else {}
        for saturate in (True, False):
            got = fp8ref.quantize(x, fmt, rounding=rounding, saturate=saturate, **kw)
            want = codes.copy()
            if saturate and fmt.has_inf:  # saturation sends +-Inf to +-max
                inf = np.isinf(x.astype(np.float64))
                want[inf] = fmt.max_code | (want[inf] & fmt.sign_mask)
            assert got.dtype == np.uint8
            assert np.array_equal(got, want.astype(np.uint8)), (rounding, saturate)


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_oracle_round_trips(fmt: Format) -> None:
    for c in _canonical(fmt):
        assert round_exact(decode_exact(int(c), fmt), fmt, saturate=False) == c
