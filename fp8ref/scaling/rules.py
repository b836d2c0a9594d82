"""Scale rules: from block amaxes (and a state) to the quantisation and dequantisation multipliers.

Each function returns ``(quant_scale, scale, bias)``: float32 multipliers applied before the cast,
float32 dequantisation multipliers, and the int32 bias grid (``scale == 2**-bias``) or ``None``.
"""

from __future__ import annotations

import math

import numpy as np

from fp8ref.formats import Format
from fp8ref.scaling._inputs import FLT_MAX
from fp8ref.scaling.bias import BIAS_LIMIT, pow2_f32, scale_bias
from fp8ref.scaling.recipes import MSAMP, Current, Delayed, DelayedState, JustInTime

Scales = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]


def _from_bias(bias: np.ndarray) -> Scales:
    bias = np.asarray(bias, dtype=np.int32)
    if bias.ndim == 0:  # one tensorwise bias: the same float32 powers of two without array arithmetic
        b = int(bias)
        return np.float32(math.ldexp(1.0, b)), np.float32(math.ldexp(1.0, -b)), bias
    return pow2_f32(bias), pow2_f32(-bias.astype(np.int64)), bias


def _recip_f32(q: np.ndarray) -> np.ndarray:
    """``1 / q`` in float32, round to nearest even (TE's ``scale_inv = 1 / scale``)."""
    with np.errstate(divide="ignore", over="ignore"):
        return (np.float32(1.0) / np.asarray(q, dtype=np.float32)).astype(np.float32)


def _bias_of_pow2(q: np.ndarray) -> np.ndarray:
    """``k`` for float32 ``q == 2**k`` (normal or subnormal powers of two)."""
    m, e = np.frexp(np.asarray(q, dtype=np.float64))
    return (e - 1).astype(np.int32)


def clear_mantissa(q: np.ndarray) -> np.ndarray:
    """Round a positive float32 down to a power of two by clearing its mantissa (``bits & 0xFF800000``)."""
    q = np.array(q, dtype=np.float32)
    return (q.view(np.uint32) & np.uint32(0xFF800000)).view(np.float32)


def just_in_time(amax: np.ndarray, fmt: Format, recipe: JustInTime) -> Scales:
    a = np.asarray(amax)
    if a.ndim == 0 and a.dtype.kind == "f":
        a = a[()]  # a NumPy float scalar: scale_bias's scalar path
    return _from_bias(scale_bias(a, fmt, margin=recipe.margin, bounds=recipe.bounds))


def constant(bias: int) -> Scales:
    return _from_bias(np.asarray(bias, dtype=np.int32))


def current(amax: np.ndarray, fmt: Format, recipe: Current, value_for_inf: float) -> Scales:
    a = np.asarray(amax, dtype=np.float32)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if recipe.compute_dtype == "float32":
            eps = np.float32(recipe.eps)
            a = np.where(a < eps, eps, a)
            special = np.isinf(a) | (a == 0) | np.isnan(a)
            q = np.float32(fmt.max) / np.where(special, np.float32(1.0), a)
            q = np.where(np.isinf(q), np.float32(value_for_inf), q)
            q = np.where(special, np.float32(1.0), q).astype(np.float32)
        else:
            q64 = np.float64(fmt.max) / np.maximum(a.astype(np.float64), np.float64(recipe.eps))
            q = np.asarray(q64).astype(np.float32)
            if not np.all(np.isfinite(q) & (q > 0)):
                raise FloatingPointError(
                    f"the float64 current-scaling rule gives a non-finite or zero scale for amax {amax!r} "
                    f"(eps={recipe.eps}); torchao would produce NaN or Inf data here")
    q = np.asarray(q, dtype=np.float32)
    if recipe.power_of_2:
        q = clear_mantissa(q)
        return q, _recip_f32(q), _bias_of_pow2(q)
    return q, _recip_f32(q), None


def msamp(amax: np.float32, fmt: Format, recipe: MSAMP, prev_bias: int) -> tuple[Scales, int]:
    a = np.float32(amax)
    if not np.isfinite(a) or a == 0:
        bias = prev_bias
    else:
        with np.errstate(over="ignore"):
            q = np.float32(fmt.max) / a
        if not np.isfinite(q):
            raise FloatingPointError(f"MS-AMP's float32 quotient fmt.max / amax overflows for amax {a!r}")
        bias = int(_bias_of_pow2(clear_mantissa(q))) - recipe.margin
    if not -BIAS_LIMIT <= bias <= BIAS_LIMIT:
        raise FloatingPointError(f"MS-AMP bias {bias} is outside [-127, 127]: 2**bias is not a float32 scale")
    return _from_bias(np.asarray(bias, dtype=np.int32)), bias


def delayed_update(recipe: Delayed, state: DelayedState, amax_now: np.float32, fmt: Format) -> DelayedState:
    """TE's delayed-scaling update after a cast whose amax was ``amax_now`` (see docs/scaling.md)."""
    h = np.array(state.amax_history, dtype=np.float32)
    h[0] = np.float32(amax_now)
    last = h[0]
    amax_h = np.float32(0.0)
    if last != 0 or recipe.roll_zero_amax:  # NaN != 0
        rolled = np.roll(h, -1)  # rolled[i] = h[i+1], rolled[L-1] = h[0]
        amax_h = np.fmax.reduce(rolled, initial=np.float32(0.0)).astype(np.float32)  # fmaxf: NaN ignored
        rolled[0] = 0.0
        h = rolled
    if recipe.algo == "most_recent":
        amax_h = last
    scaled_max = np.float32(fmt.max) * np.float32(2.0 ** -recipe.margin)
    with np.errstate(divide="ignore", over="ignore"):
        if np.isfinite(amax_h) and amax_h > 0:
            scale = np.float32(scaled_max / amax_h)
        else:
            scale = state.scale
    if np.isinf(scale):
        scale = np.float32(FLT_MAX)
    return DelayedState(h, scale)


def delayed_scales(state: DelayedState) -> Scales:
    q = np.asarray(state.scale, dtype=np.float32)
    return q, _recip_f32(q), None
