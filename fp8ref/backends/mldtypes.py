"""The ``ml_dtypes`` backend: the peer library's casts, exactly as its users get them.

``quantize(x, fmt, saturate=False)`` is ``x.astype(<ml_dtypes float8 dtype>).view(np.uint8)``, nothing more,
with ``x`` in its own dtype; ``saturate=True`` is what an ml_dtypes user writes to get saturation:
``np.clip(x, -max, max)`` in the input's dtype, then ``astype`` (NaN stays NaN, +-Inf and finite overflow
become +-max). Only ``rounding="nearest_even"`` exists in ml_dtypes' Python API; every other mode raises
``Unsupported``. ``dequantize`` is ``codes.view(<dtype>).astype(dtype)``. ml_dtypes has no scaled matmul
and no amax: those raise ``Unsupported``.

What ``astype`` does differs between ml_dtypes releases (0.6 rounds float64 input to float32 first, 0.7
rounds it once), so nothing about it is assumed here: :func:`measured` runs the conversion on decisive
inputs once per process and compares it with the exact reference (:mod:`fp8ref.backends.peer_probe`);
``capabilities.deviations`` are the differences it found, ``backend.measured`` the whole measurement.
docs/backends.md gives the results per version.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from fp8ref.backends._arrays import code_input, dequant_dtype, float_input, write_out
from fp8ref.backends.base import Backend, Capabilities
from fp8ref.backends.peer_probe import PeerProbe, probe_peer
from fp8ref.formats import FP8_FORMATS, Format

__all__ = ["MlDtypesBackend", "ML_DTYPES_FORMATS", "measured"]

#: Format.name -> ml_dtypes dtype name
ML_DTYPES_FORMATS = {
    "E4M3": "float8_e4m3fn",
    "E5M2": "float8_e5m2",
    "E4M3FNUZ": "float8_e4m3fnuz",
    "E5M2FNUZ": "float8_e5m2fnuz",
}


def _dtype(fmt: Format) -> np.dtype:
    import ml_dtypes

    return np.dtype(getattr(ml_dtypes, ML_DTYPES_FORMATS[fmt.name]))


def _astype(x: np.ndarray, fmt: Format) -> np.ndarray:
    """ml_dtypes' own conversion: ``x.astype(<dtype>)`` as uint8 codes (round to nearest even, whatever
    ml_dtypes does beyond that)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(_dtype(fmt)).view(np.uint8)


def _decode(codes: np.ndarray, fmt: Format, dtype: Any) -> np.ndarray:
    return codes.view(_dtype(fmt)).astype(dtype)


@cache
def measured() -> PeerProbe:
    """The installed ml_dtypes' casts measured against the exact reference (once per process)."""
    import ml_dtypes

    return probe_peer(f"ml_dtypes {ml_dtypes.__version__}", FP8_FORMATS, _astype, _decode)


class MlDtypesBackend(Backend):
    """Casts through ``ml_dtypes`` ``astype`` (non-saturating; ``saturate=True`` clamps first)."""

    name = "ml_dtypes"

    def __init__(self) -> None:
        import ml_dtypes  # noqa: F401 - without it: ImportError, and the backend is listed as unavailable

        self.measured = measured()
        self.capabilities = Capabilities(
            formats=tuple(ML_DTYPES_FORMATS),
            rounding=("nearest_even",),
            saturate=(False, True),
            ops=("quantize", "dequantize"),
            device="cpu",
            deviations=self.measured.deviations(),
        )

    def quantize(self, x: Any, fmt: Any, *, rounding: str = "nearest_even", saturate: bool = True,
                 srbits: Any = None, srnumbits: int | None = None, seed: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        f = self.check_quantize(fmt, rounding, saturate, srbits, srnumbits, seed)
        arr = float_input(x)
        if saturate:
            arr = np.clip(arr, -f.max, f.max)  # in the input's dtype; NaN passes through
        codes = _astype(arr, f)
        return write_out(codes.reshape(arr.shape), out, f)

    def dequantize(self, codes: Any, fmt: Any, *, dtype: Any = np.float32) -> np.ndarray:
        self.check_op("dequantize")
        f = self.check_format("dequantize", fmt)
        c = code_input(codes, f)
        return _decode(c, f, dequant_dtype(dtype))
