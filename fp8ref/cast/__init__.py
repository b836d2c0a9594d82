"""quantize / dequantize: bit-exact casts between floats and the codes of a :class:`~fp8ref.Format`.

The rules are in docs/casts.md; :mod:`fp8ref.cast.oracle` is their executable specification and the
Numba kernels of :mod:`fp8ref.cast.kernels` (imported on first use, so ``import fp8ref.cast`` stays light)
are tested equal to it.
"""

from __future__ import annotations

from fp8ref.cast.api import as_ml_dtypes, dequantize, quantize
from fp8ref.cast.oracle import ROUNDING_MODES, STOCHASTIC_MODES
from fp8ref.cast.packing import pack_fp4, unpack_fp4

__all__ = ["quantize", "dequantize", "as_ml_dtypes", "ROUNDING_MODES", "STOCHASTIC_MODES", "pack_fp4",
           "unpack_fp4"]
