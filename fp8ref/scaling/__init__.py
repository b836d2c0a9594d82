"""Scaling: amax, the paper's scaling bias, the recipes users compare it with, and ``ScaledTensor``.

The rules are normative in docs/scaling.md. Importing this package compiles nothing.
"""

from __future__ import annotations

from fp8ref.scaling.amax import amax
from fp8ref.scaling.bias import scale_bias
from fp8ref.scaling.layout import swizzle_scales, unswizzle_scales
from fp8ref.scaling.quantize import quantize_scaled
from fp8ref.scaling.recipes import (
    MSAMP,
    MX,
    MX_RULES,
    NVFP4,
    BLOCK_1x128,
    BLOCK_128x128,
    Constant,
    Current,
    DeepGEMM,
    Delayed,
    DelayedState,
    JustInTime,
)
from fp8ref.scaling.tensor import ScaledTensor

__all__ = [
    "amax", "scale_bias", "quantize_scaled", "ScaledTensor", "JustInTime", "Constant", "Delayed",
    "DelayedState", "Current", "MSAMP", "MX", "MX_RULES", "BLOCK_1x128", "BLOCK_128x128",
    "NVFP4", "DeepGEMM", "swizzle_scales", "unswizzle_scales",
]
