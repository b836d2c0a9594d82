"""Hardware layouts of block-scale factors: the "128x4" swizzled layout of block-scaled GEMMs.

cuBLAS ("1D Block Scaling Factors Layout"), cuDNN and CUTLASS read the scale factors of an MX or NVFP4
operand with ``R`` rows and ``C`` scale columns (``C = K / 32`` or ``K / 16``) padded to ``R' = 128 *
ceil(R / 128)`` rows and ``C' = 4 * ceil(C / 4)`` columns (padding 0) and stored as the array
``(R' / 128, C' / 4, 32, 4, 4)`` whose element ``[b, cb, j, i, ci]`` is the scale of row ``128 b + 32 i +
j`` and column ``4 cb + ci``: byte offset ``((r // 128) * (C' / 4) + c // 4) * 512 + (r % 32) * 16 +
((r % 128) // 32) * 4 + c % 4``. TransformerEngine's ``NVFP4QuantizerRef._recover_swizzled_scales``
(``transformer_engine/pytorch/custom_recipes/reference_nvfp4.py``) undoes it with
``reshape(R'/128, C'/4, 32, 4, 4).permute(0, 3, 2, 1, 4)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LAYOUTS = ("128x4",)


def _layout(layout: Any) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


def swizzled_shape(shape: tuple[int, int]) -> tuple[int, int, int, int, int]:
    """The 5-D shape ``(R'/128, C'/4, 32, 4, 4)`` of the swizzled scales of an ``(R, C)`` scale grid."""
    r, c = shape
    return (-(-r // 128), -(-c // 4), 32, 4, 4)


def swizzle_scales(scale_codes: Any, layout: str = "128x4") -> np.ndarray:
    """The 2-D scale grid ``scale_codes`` (uint8 E8M0 / E4M3 codes, or any dtype) in the 128x4 layout:
    rows padded to 128 and columns to 4 with zeros, returned as ``(R'/128, C'/4, 32, 4, 4)``."""
    _layout(layout)
    s = np.asarray(scale_codes)
    if s.ndim != 2:
        raise ValueError(f"scale_codes must be a 2-D grid (rows, scale columns), got shape {s.shape}")
    nb, ncb, _, _, _ = swizzled_shape(s.shape)
    p = np.zeros((nb * 128, ncb * 4), dtype=s.dtype)
    p[: s.shape[0], : s.shape[1]] = s
    return np.ascontiguousarray(p.reshape(nb, 4, 32, ncb, 4).transpose(0, 3, 2, 1, 4))


def unswizzle_scales(swizzled: Any, shape: Any, layout: str = "128x4") -> np.ndarray:
    """The ``shape`` = ``(R, C)`` scale grid from its 128x4 layout (any array of ``R' * C'`` elements, e.g.
    the flat buffer a GEMM reads); the inverse of :func:`swizzle_scales`."""
    _layout(layout)
    try:
        r, c = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (rows, scale columns), got {shape!r}") from None
    if r < 0 or c < 0:
        raise ValueError(f"shape must be non-negative, got {shape!r}")
    nb, ncb, _, _, _ = swizzled_shape((r, c))
    s = np.asarray(swizzled)
    if s.size != nb * ncb * 512:
        raise ValueError(f"swizzled must hold {nb * ncb * 512} scales for shape {(r, c)}, got {s.size}")
    full = s.reshape(nb, ncb, 32, 4, 4).transpose(0, 3, 2, 1, 4).reshape(nb * 128, ncb * 4)
    return np.ascontiguousarray(full[:r, :c])
