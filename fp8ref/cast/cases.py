"""Boundary sets: the inputs where casts go wrong, for tests and golden vectors.

``boundary_values(fmt, dtype)`` returns, as an array of ``dtype`` (float16, bfloat16, float32 or
float64), every finite value of ``fmt`` with both signs, every midpoint between neighbours, the
neighbouring floats (one ulp of ``dtype``) of each value and each midpoint, the overflow edges (max,
the tie above it, the first values past it, ``2 * max``, the largest finite ``dtype``), the underflow
edges (half the smallest subnormal and its neighbours, the smallest ``dtype`` subnormal), +-0, +-Inf
and NaN of both signs. Values ``dtype`` cannot hold are rounded to it (nearest-even), so each entry
is still a valid input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.formats import Format


def _next(v: np.ndarray, dtype: Any, direction: float) -> np.ndarray:
    """One ulp of ``dtype`` away from each value toward ``direction``."""
    dt = np.dtype(dtype)
    if dt in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)):
        return np.nextafter(v.astype(dt), dt.type(direction))
    # ml_dtypes floats: step the bit pattern of the magnitude
    a = v.astype(dt)
    bits = a.view(np.uint16).astype(np.int64)
    mag, sign = bits & 0x7FFF, bits & 0x8000
    up = (np.sign(direction) > 0) != (sign != 0)
    mag = np.where(up, mag + 1, np.maximum(mag - 1, 0))
    mag = np.minimum(mag, 0x7F80)
    return (sign | mag).astype(np.uint16).view(dt)


def boundary_values(fmt: Format, dtype: Any = np.float64, *, max_values: int = 4096) -> np.ndarray:
    """The boundary set of ``fmt`` in the input ``dtype`` (see the module docstring).

    For formats with more than ``max_values`` finite values a strided subset of the values is used
    (always including the bottom and top binades)."""
    dt = np.dtype(dtype)
    vals = fmt.values() if fmt.bits <= 16 else np.array([fmt.max, fmt.min_normal, fmt.min_subnormal])
    pos = np.unique(np.abs(vals[np.isfinite(vals)]))
    if pos.size > max_values:
        k = max_values // 4
        pos = np.unique(np.concatenate([pos[:k], pos[-k:], pos[k:-k:max(1, (pos.size - 2 * k) // (2 * k))]]))
    mids = (pos[:-1] + pos[1:]) / 2
    top = fmt.max
    # the tie above max (half an ulp of the top binade) and what lies around it
    ulp_top = 2.0 ** (fmt.emax - fmt.mbits)
    edges = np.array([top + ulp_top / 2, top + ulp_top, top + 1.5 * ulp_top, 2 * top, 4 * top,
                      fmt.min_subnormal / 2, fmt.min_subnormal / 4, fmt.min_subnormal * 0.75,
                      fmt.min_subnormal * 1.5, fmt.min_normal * (1 - 2.0 ** -(fmt.mbits + 2))])
    fin = np.finfo(np.float32) if dt.itemsize != 8 else np.finfo(np.float64)
    with np.errstate(over="ignore"):
        base = np.concatenate([pos, mids, edges]).astype(dt)
        lo = _next(base, dt, -np.inf)
        hi = _next(base, dt, np.inf)
        mag = np.concatenate([base, lo, hi]).astype(np.float64)
        mag = mag[np.isfinite(mag) & (mag >= 0)]
        if dt.itemsize == 8:
            extra = [float(fin.max), float(fin.smallest_subnormal), 1e300, 1e-300]
        elif dt == np.dtype(np.float32):
            extra = [float(fin.max), float(fin.smallest_subnormal), 1e30, 1e-30]
        else:
            extra = [65504.0, 2.0**-24] if dt == np.dtype(np.float16) else [3.3895313892515355e38, 2.0**-133]
        mag = np.unique(np.concatenate([mag, extra])).astype(dt)
        specials = np.array([0.0, np.inf, np.nan]).astype(dt)
        out = np.concatenate([mag, -mag, specials, -specials])
    return out
