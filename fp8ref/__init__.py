"""fp8ref: a bit-exact FP8 emulation and reference library.

Importing ``fp8ref`` is light: formats are plain data, and every other public name is resolved lazily
on first use (no Numba compilation, no torch import at import time).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fp8ref.formats import (
    BF16,
    E2M1,
    E2M3,
    E3M2,
    E4M3,
    E4M3FNUZ,
    E5M2,
    E5M2FNUZ,
    E8M0,
    FP8_FORMATS,
    FP16,
    FP32,
    FP64,
    TF32,
    Format,
    exmy,
    format,
    formats,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported on first attribute access)
_LAZY: dict[str, str] = {
    "quantize": "fp8ref.cast",
    "dequantize": "fp8ref.cast",
    "as_ml_dtypes": "fp8ref.cast",
    "ROUNDING_MODES": "fp8ref.cast",
    "pack_fp4": "fp8ref.cast",
    "unpack_fp4": "fp8ref.cast",
    "amax": "fp8ref.scaling",
    "scale_bias": "fp8ref.scaling",
    "quantize_scaled": "fp8ref.scaling",
    "ScaledTensor": "fp8ref.scaling",
    "JustInTime": "fp8ref.scaling",
    "Constant": "fp8ref.scaling",
    "Delayed": "fp8ref.scaling",
    "Current": "fp8ref.scaling",
    "MX": "fp8ref.scaling",
    "MSAMP": "fp8ref.scaling",
    "DelayedState": "fp8ref.scaling",
    "NVFP4": "fp8ref.scaling",
    "DeepGEMM": "fp8ref.scaling",
    "scaled_mm": "fp8ref.matmul",
}
_SUBMODULES = ("accum", "backends", "cast", "conform", "golden", "matmul", "nn", "scaling")

__all__ = [
    "BF16", "E2M1", "E2M3", "E3M2", "E4M3", "E4M3FNUZ", "E5M2", "E5M2FNUZ", "E8M0", "FP8_FORMATS",
    "FP16", "FP32", "FP64", "TF32", "Format", "exmy", "format", "formats", "__version__", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"fp8ref.{name}")
    raise AttributeError(f"module 'fp8ref' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_SUBMODULES))


if TYPE_CHECKING:  # pragma: no cover
    from fp8ref.cast import ROUNDING_MODES, as_ml_dtypes, dequantize, pack_fp4, quantize, unpack_fp4  # noqa: F401
    from fp8ref.matmul import scaled_mm  # noqa: F401
    from fp8ref.scaling import (  # noqa: F401
        MSAMP,
        MX,
        NVFP4,
        Constant,
        Current,
        DeepGEMM,
        Delayed,
        DelayedState,
        JustInTime,
        ScaledTensor,
        amax,
        quantize_scaled,
        scale_bias,
    )
