"""The paper's integer scaling bias, computed exactly.

``scale_bias(amax, fmt) = clip(floor(log2(fmt.max / amax)) - margin, *bounds)``.

``log2`` in floating point can be off by one when ``fmt.max / amax`` lies next to a power of two, so the
floor is taken from the exponents and significands of the two operands instead (``frexp``): with
``M = mM * 2**eM`` and ``a = ma * 2**ea`` (``mM, ma`` in ``[0.5, 1)``),
``floor(log2(M / a)) = eM - ea - (1 if mM < ma else 0)`` -- exact, because ``mM / ma`` lies in ``(0.5, 2)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fp8ref.formats import Format
from fp8ref.formats import format as _format
from fp8ref.scaling._inputs import check_int

# a scale 2**k must be a float32 number both ways (2**k and 2**-k); 2**-127 is float32-subnormal, exact
BIAS_LIMIT = 127


def check_bounds(bounds: Any, name: str = "bounds") -> tuple[int, int]:
    try:
        lo, hi = bounds
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a pair (low, high) of integers, got {bounds!r}") from exc
    lo = check_int(lo, f"{name}[0]", -BIAS_LIMIT, BIAS_LIMIT)
    hi = check_int(hi, f"{name}[1]", -BIAS_LIMIT, BIAS_LIMIT)
    if lo > hi:
        raise ValueError(f"{name} must have low <= high, got {bounds!r}")
    return lo, hi


def floor_log2_ratio(num: float, den: np.ndarray | float) -> np.ndarray:
    """``floor(log2(num / den))`` exactly, for a positive finite ``num`` and positive finite ``den``
    (float64 array or scalar). Returns int64."""
    m_n, e_n = np.frexp(np.float64(num))
    m_d, e_d = np.frexp(np.asarray(den, dtype=np.float64))
    return (np.int64(e_n) - e_d.astype(np.int64) - (m_n < m_d).astype(np.int64)).astype(np.int64)


def _amax_array(amax: Any) -> np.ndarray:
    """``amax`` as float64: an integer or float number or array (float16, bfloat16, float32, float64).
    Strings, bools, complex and object values raise ``TypeError`` naming ``amax`` (NumPy would read
    ``"3"`` as 3.0 and ``True`` as 1.0)."""
    what = f"{type(amax).__name__} {amax!r}"
    if isinstance(amax, (str, bytes, bool, np.bool_)):
        raise TypeError(f"amax must be a non-negative real number or an array of them, got {what}")
    try:
        a = np.asarray(amax)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"amax must be a non-negative number or array, got {what}") from exc
    if not (a.dtype.kind in "iuf" or a.dtype.name == "bfloat16"):
        raise TypeError(f"amax must be a non-negative real number or an array of them, got dtype {a.dtype}")
    return a.astype(np.float64)


def scale_bias(amax: Any, fmt: Format | str, *, margin: int = 0,
               bounds: tuple[int, int] = (-31, 31)) -> Any:
    """The paper's scaling bias: ``clip(floor(log2(fmt.max / amax)) - margin, *bounds)``.

    ``amax`` is a non-negative number or array (``fp8ref.amax(x)``); the result is a Python ``int`` for a
    scalar, an ``int32`` array otherwise. Scaling ``x`` by ``2**bias`` before the cast puts ``amax`` in
    ``(fmt.max / 2, fmt.max]`` (margin 0, bounds not reached).

    - ``amax == 0`` gives the upper bound ``bounds[1]`` (nothing to scale; the largest allowed scale).
    - ``amax`` NaN or +-Inf raises ``FloatingPointError`` (the recipes that keep a previous scale instead,
      as TransformerEngine does, are :class:`~fp8ref.scaling.Delayed` and :class:`~fp8ref.scaling.MSAMP`).
    - Negative ``amax``, a non-integer ``margin`` or bad ``bounds`` raise ``ValueError``; an ``amax``
      that is not a real number or array of them (a string, a bool, complex) raises ``TypeError``.
    """
    if not isinstance(fmt, Format):
        try:
            fmt = _format(fmt)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"fmt: {exc}") from exc
    margin = check_int(margin, "margin")
    lo, hi = check_bounds(bounds)
    if isinstance(amax, (float, np.floating)):  # a scalar amax (fp8ref.amax's np.float32): no arrays
        a = float(amax)
        if not math.isfinite(a):
            raise FloatingPointError(f"amax is not finite ({amax!r}): no scaling bias can be derived from it")
        if a < 0:
            raise ValueError(f"amax must be non-negative, got {amax!r}")
        if a == 0:
            return hi
        m_n, e_n = math.frexp(fmt.max)
        m_d, e_d = math.frexp(a)
        return min(max(e_n - e_d - (1 if m_n < m_d else 0) - margin, lo), hi)
    a = _amax_array(amax)
    scalar = a.ndim == 0
    if not np.all(np.isfinite(a)):
        raise FloatingPointError(f"amax is not finite ({amax!r}): no scaling bias can be derived from it")
    if np.any(a < 0):
        raise ValueError(f"amax must be non-negative, got {amax!r}")
    zero = a == 0
    safe = np.where(zero, 1.0, a)
    sb = floor_log2_ratio(fmt.max, safe) - margin
    sb = np.where(zero, hi, np.clip(sb, lo, hi)).astype(np.int32)
    return int(sb) if scalar else sb


def pow2_f32(k: np.ndarray | int) -> np.ndarray:
    """``2**k`` as float32 for integer ``k`` in [-149, 127] (exact, subnormals included)."""
    k = np.asarray(k, dtype=np.int64)
    return np.ldexp(np.float64(1.0), k).astype(np.float32)
