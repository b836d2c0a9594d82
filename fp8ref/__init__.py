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

# module -> the public names it defines (each imported on first attribute access)
_LAZY_BY_MODULE: dict[str, tuple[str, ...]] = {
    "fp8ref.cast": ("quantize", "dequantize", "as_ml_dtypes", "ROUNDING_MODES", "pack_fp4", "unpack_fp4"),
    "fp8ref.scaling": ("amax", "scale_bias", "quantize_scaled", "ScaledTensor", "JustInTime", "Constant",
                       "Delayed", "Current", "MX", "MSAMP", "DelayedState", "NVFP4", "DeepGEMM"),
    "fp8ref.matmul": ("scaled_mm",),
}
# public name -> module that defines it
_LAZY: dict[str, str] = {name: module for module, names in _LAZY_BY_MODULE.items() for name in names}
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

    # scaling's public names for type checkers: its __all__ (the runtime table above lists the ones
    # fp8ref re-exports)
    from fp8ref.scaling import *  # noqa: F401, F403
