"""``amax``: the absolute maximum of a tensor, as float32."""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.scaling._inputs import as_float_array, widen

_NAN_POLICIES = ("propagate", "ignore")

# (signed integer view dtype, abs mask, bit pattern of +Inf); with the sign bit cleared the patterns are
# non-negative, so signed and unsigned order agree
_BITS = {
    np.dtype(np.float32): (np.int32, np.int32(0x7FFFFFFF), np.int32(0x7F800000)),
    np.dtype(np.float64): (np.int64, np.int64(0x7FFFFFFFFFFFFFFF), np.int64(0x7FF0000000000000)),
}


def _bits_to_f32(m: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Max bit patterns back to values, then to float32 (round to nearest even)."""
    with np.errstate(over="ignore"):
        return np.asarray(m).view(dt).astype(np.float32)


def amax_grid(w: np.ndarray, block: tuple[int, int], nan: str = "propagate") -> np.ndarray:
    """Per-block amax of a 2-D float32/float64 C-contiguous array ``w`` as a float32 grid
    ``(ceil(M/br), ceil(N/bc))``; partial edge blocks use the elements present."""
    from fp8ref.scaling.kernels import amax_bits_blocks, threads_for

    udt, mask, inf_bits = _BITS[w.dtype]
    br, bc = block
    if w.size == 0:
        gm = -(-w.shape[0] // br)
        gn = -(-w.shape[1] // bc)
        return np.zeros((gm, gn), dtype=np.float32)
    with threads_for(w.size):
        g = amax_bits_blocks(w.view(udt), br, bc, mask, inf_bits, nan == "ignore")
    return _bits_to_f32(g, w.dtype)


def amax_flat(w: np.ndarray, nan: str = "propagate") -> np.float32:
    """amax of a float32/float64 C-contiguous array (any shape) as a float32 scalar."""
    from fp8ref.scaling.kernels import SMALL, amax_bits, amax_bits_serial, threads_for

    if w.size == 0:
        return np.float32(0.0)
    udt, mask, inf_bits = _BITS[w.dtype]
    u = w.reshape(-1).view(udt)
    if w.size < SMALL:
        m = amax_bits_serial(u, mask, inf_bits, nan == "ignore")
    else:
        with threads_for(w.size):
            m = amax_bits(u, mask, inf_bits, nan == "ignore")
    return np.float32(_bits_to_f32(np.array(m, dtype=udt), w.dtype)[()])


def amax(x: Any, axis: int | tuple[int, ...] | None = None, *, nan: str = "propagate") -> Any:
    """``max(|x|)`` over all elements (``axis=None``) or along ``axis``, as float32.

    - float16, bfloat16 and float32 inputs give their exact maximum; a float64 maximum is rounded to
      float32 with round-to-nearest-even -- the same as the amax of ``x.astype(float32)``, since rounding
      is monotone (a float64 amax above the float32 range becomes +Inf).
    - NaN policy ``nan="propagate"`` (default, like ``torch.amax``): a NaN anywhere in the reduced
      elements gives NaN. ``nan="ignore"``: NaNs are skipped, as TransformerEngine's ``fmaxf``-based
      amax kernels do (a slice with only NaNs gives 0).
    - An empty reduction gives 0 (TransformerEngine's initial amax).
    - Returns a ``np.float32`` scalar for ``axis=None``, else a float32 array (``keepdims=False``).
    """
    if nan not in _NAN_POLICIES:
        raise ValueError(f"nan must be one of {_NAN_POLICIES}, got {nan!r}")
    a = as_float_array(x)
    w = widen(a)
    if axis is None:
        return amax_flat(w, nan)
    try:
        absw = np.abs(w)
        if nan == "ignore":
            r = np.fmax.reduce(absw, axis=axis, initial=0.0)
        else:
            r = np.max(absw, axis=axis, initial=0.0)
    except (np.exceptions.AxisError, TypeError) as exc:
        raise ValueError(f"axis: {exc}") from exc
    return np.asarray(r).astype(np.float32)
