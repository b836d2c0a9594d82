"""The ``ml_dtypes`` backend: the peer library's casts, exactly as its users get them.

``quantize(x, fmt)`` is ``x.astype(<ml_dtypes float8 dtype>).view(np.uint8)``, nothing more:

* round to nearest even, **non-saturating** (E4M3 and the FNUZ formats overflow to NaN, E5M2 to +-Inf);
* float64 input is rounded **twice**, first to float32 and then to FP8 (ml_dtypes' NumPy cast goes through
  float32), so float64 values just beside an FP8 rounding midpoint can round the wrong way;
* the E5M2 NaN it produces is 0x7E (| sign), the reference's 0x7F.

Everything else agrees with the reference, non-saturating overflow and the decoded NaNs included.

``saturate=True`` is what an ml_dtypes user writes to get saturation: ``np.clip(x, -max, max)`` in the
input's dtype, then ``astype`` (NaN stays NaN, +-Inf and finite overflow become +-max). Only
``rounding="nearest_even"`` exists in ml_dtypes' Python API; every other mode raises ``Unsupported``.
``dequantize`` is ``codes.view(<dtype>).astype(dtype)`` (NaN codes decode to the quiet NaN with the code's
sign, as in the reference).
ml_dtypes has no scaled matmul and no amax: those raise ``Unsupported``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.backends._arrays import code_input, dequant_dtype, float_input, write_out
from fp8ref.backends.base import Backend, Capabilities

__all__ = ["MlDtypesBackend", "ML_DTYPES_FORMATS"]

#: Format.name -> ml_dtypes dtype name
ML_DTYPES_FORMATS = {
    "E4M3": "float8_e4m3fn",
    "E5M2": "float8_e5m2",
    "E4M3FNUZ": "float8_e4m3fnuz",
    "E5M2FNUZ": "float8_e5m2fnuz",
}


class MlDtypesBackend(Backend):
    """Casts through ``ml_dtypes`` ``astype`` (non-saturating, double rounding from float64)."""

    name = "ml_dtypes"

    def __init__(self) -> None:
        import ml_dtypes

        self._ml = ml_dtypes
        self.capabilities = Capabilities(
            formats=tuple(ML_DTYPES_FORMATS),
            rounding=("nearest_even",),
            saturate=(False, True),
            ops=("quantize", "dequantize"),
            device="cpu",
            deviations=(
                f"ml_dtypes {ml_dtypes.__version__}: float64 input is rounded to float32 first, then to FP8 "
                "(double rounding)",
                "E5M2 NaN is encoded 0x7E|sign (reference: 0x7F|sign)",
            ),
        )

    def _dtype(self, fmt_name: str) -> np.dtype:
        return np.dtype(getattr(self._ml, ML_DTYPES_FORMATS[fmt_name]))

    def quantize(self, x: Any, fmt: Any, *, rounding: str = "nearest_even", saturate: bool = True,
                 srbits: Any = None, srnumbits: int | None = None, seed: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        f = self.check_quantize(fmt, rounding, saturate, srbits, srnumbits, seed)
        arr = float_input(x)
        if saturate:
            arr = np.clip(arr, -f.max, f.max)  # in the input's dtype; NaN passes through
        with np.errstate(invalid="ignore", over="ignore"):
            codes = arr.astype(self._dtype(f.name)).view(np.uint8)
        return write_out(codes.reshape(arr.shape), out, f)

    def dequantize(self, codes: Any, fmt: Any, *, dtype: Any = np.float32) -> np.ndarray:
        self.check_op("dequantize")
        f = self.check_format("dequantize", fmt)
        c = code_input(codes, f)
        target = dequant_dtype(dtype)
        return c.view(self._dtype(f.name)).astype(target)
