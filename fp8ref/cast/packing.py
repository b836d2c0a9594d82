"""Packed FP4: two 4-bit codes per byte, as Blackwell tensor cores, TransformerEngine (``cast_to_fp4x2``),
torchao (``pack_uint4``) and DeepGEMM store them: element ``2i`` of the packed axis in the low nibble of
byte ``i``, element ``2i + 1`` in the high nibble."""

from __future__ import annotations

from typing import Any

import numpy as np


def _checked(a: Any, name: str, axis: Any) -> tuple[np.ndarray, int]:
    """``a`` as a uint8 array of at least one dimension and ``axis`` as a non-negative axis of it;
    ``ValueError`` naming ``name`` / ``axis`` otherwise."""
    arr = np.asarray(a)
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 array of 4-bit codes, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis {axis} is out of range for an array of {arr.ndim} dimensions")
    return arr, int(axis) % arr.ndim


def pack_fp4(codes: Any, axis: int = -1) -> np.ndarray:
    """Pack uint8 4-bit codes (values 0..15) two per byte along ``axis`` (its length must be even):
    ``packed[..., i] = codes[..., 2i] | codes[..., 2i + 1] << 4``."""
    c, ax = _checked(codes, "codes", axis)
    if c.shape[ax] % 2:
        raise ValueError(f"axis {axis} of codes has odd length {c.shape[ax]}; FP4 packs pairs")
    if c.size and int(c.max()) > 15:
        raise ValueError(f"codes must be 4-bit (0..15), got a code {int(c.max())}")
    c = np.moveaxis(c, ax, -1)
    return np.ascontiguousarray(np.moveaxis(c[..., 0::2] | (c[..., 1::2] << 4), -1, ax))


def unpack_fp4(packed: Any, axis: int = -1) -> np.ndarray:
    """The inverse of :func:`pack_fp4`: ``codes[..., 2i] = packed[..., i] & 15``, ``codes[..., 2i + 1] =
    packed[..., i] >> 4``."""
    p, ax = _checked(packed, "packed", axis)
    p = np.moveaxis(p, ax, -1)
    out = np.empty(p.shape[:-1] + (2 * p.shape[-1],), dtype=np.uint8)
    out[..., 0::2] = p & 15
    out[..., 1::2] = p >> 4
    return np.ascontiguousarray(np.moveaxis(out, -1, ax))
