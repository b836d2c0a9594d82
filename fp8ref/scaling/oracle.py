"""The scaling rules in exact arithmetic: the specification of :mod:`fp8ref.scaling`.

Everything here works one block at a time, on Python floats and ``fractions.Fraction``; roundings to
float32 go through the exact cast oracle (:func:`fp8ref.cast.oracle.round_exact` with the FP32 format).
The fast code of the package is tested equal to these functions; nothing here is fast.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from fp8ref.formats import FP32, FP64, Format, floor_log2, pow2


def ceil_log2(a: Fraction) -> int:
    e = floor_log2(a)
    return e if pow2(e) == a else e + 1


def round_to(v: Fraction | float, fmt: Format = FP32) -> float:
    """``v`` rounded to nearest even in the IEEE format ``fmt`` (FP32 or FP64), overflow to +-Inf."""
    from fp8ref.cast.oracle import round_exact

    return fmt.decode(round_exact(v if isinstance(v, Fraction) else float(v), fmt, "nearest_even", False))


def f32(v: Fraction | float) -> float:
    return round_to(v, FP32)


def amax_exact(values: Any) -> float:
    """max |v| as a Python float (NaN if any NaN; 0 for no values), before any rounding to float32."""
    m = 0.0
    for v in values:
        v = float(v)
        if math.isnan(v):
            return math.nan
        m = max(m, abs(v))
    return m


def scale_bias_exact(amax: float, fmt: Format, margin: int = 0, bounds: tuple[int, int] = (-31, 31)) -> int:
    lo, hi = bounds
    if math.isnan(amax) or math.isinf(amax):
        raise FloatingPointError("amax is not finite")
    if amax == 0:
        return hi
    return min(hi, max(lo, floor_log2(fmt.max_exact / Fraction(amax)) - margin))


def current_scale_exact(amax: float, fmt: Format, eps: float = 0.0, power_of_2: bool = False,
                        compute_dtype: str = "float32", value_for_inf: float = FP32.max) -> float:
    """The quantisation multiplier of :class:`~fp8ref.scaling.Current` (a float32 value)."""
    if compute_dtype == "float32":
        e = f32(eps)
        a = amax
        if a < e:
            a = e
        if math.isinf(a) or a == 0 or math.isnan(a):
            return 1.0
        q = f32(fmt.max_exact / Fraction(a))
        if math.isinf(q):
            q = value_for_inf
    else:
        if math.isnan(amax):
            raise FloatingPointError("NaN amax")
        a = max(amax, eps)
        if a == 0:
            raise FloatingPointError("zero amax")
        q = f32(round_to(fmt.max_exact / Fraction(a), FP64)) if not math.isinf(a) else 0.0
        if math.isinf(q) or q == 0:
            raise FloatingPointError("non-finite scale")
    if power_of_2:
        q = float(pow2(floor_log2(Fraction(q))))
    return q


def msamp_bias_exact(amax: float, fmt: Format, margin: int, prev: int) -> int:
    if math.isnan(amax) or math.isinf(amax) or amax == 0:
        return prev
    q = f32(fmt.max_exact / Fraction(amax))
    return floor_log2(Fraction(q)) - margin


def mx_code_exact(amax: float, fmt: Format, rule: str) -> int:
    """E8M0 code of a block scale from the block amax (a float32 value), by the mathematical rule."""
    if math.isnan(amax) or math.isinf(amax):
        return 255
    emax = fmt.emax
    if rule == "RCEIL":
        rcp = f32(Fraction(1) / fmt.max_exact)
        d = f32(Fraction(amax) * Fraction(rcp))
        if math.isinf(d):
            return 255
        if d <= 2.0 ** -127:
            return 0
        return min(254, ceil_log2(Fraction(d)) + 127)
    if amax == 0 or amax < 2.0 ** -126:  # zero and float32 subnormals: below every E8M0 scale of interest
        e = -127 - emax if rule != "CEIL" or amax == 0 else -126 - emax
    elif rule == "FLOOR":
        e = floor_log2(Fraction(amax)) - emax
    elif rule == "CEIL":
        e = ceil_log2(Fraction(amax)) - emax
    elif rule == "EVEN":
        a = Fraction(amax)
        k = floor_log2(a)
        unit = pow2(k - fmt.mbits)
        r = math.floor(a / unit + Fraction(1, 2)) * unit  # halves up (away from zero)
        if r >= pow2(128):
            return 255
        e = floor_log2(r) - emax
    else:
        raise ValueError(rule)
    return min(127, max(-127, e)) + 127


def scaled_value(x: float, q: float, compute: str) -> float:
    """``x * q`` rounded to nearest even in float32 (``compute="float32"``) or float64."""
    if math.isnan(x) or math.isinf(x) or math.isnan(q) or x == 0:
        return x * q  # NaN, +-Inf and signed zeros: IEEE (the sign of zero is kept)
    return round_to(Fraction(x) * Fraction(q), FP32 if compute == "float32" else FP64)


def quantize_block_exact(values: Any, q: float, fmt: Format, compute: str, rounding: str = "nearest_even",
                         saturate: bool = True) -> list[int]:
    """Codes of ``values`` scaled by ``q`` then cast, one element at a time."""
    from fp8ref.cast.oracle import round_exact

    out = []
    for v in values:
        y = scaled_value(float(v), q, compute)
        if math.isnan(y) and fmt.nan_code is None:
            out.append(0)
        else:
            out.append(round_exact(y, fmt, rounding, saturate))
    return out


def as_f32_list(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]
