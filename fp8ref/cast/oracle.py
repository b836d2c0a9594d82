"""The exact cast: the specification of :func:`fp8ref.quantize`, in Python integers and ``Fraction``.

Every rule of docs/casts.md is written here once, in the most direct form, for *any* :class:`Format`
(the named FP8 formats, E8M0, research ExMy formats, FP16/BF16 as targets). The Numba kernels in
:mod:`fp8ref.cast.kernels` are tested equal to this module; nothing here is fast.

The rounding itself is :func:`fp8ref.rounding.round_rational`, the one exact rounding of every oracle (it
follows gfloat's ``round_float``); this module adds what is particular to codes: signs, NaN and Inf
inputs, formats without zero, negative zero or a sign bit, and the overflow code.
"""

from __future__ import annotations

import math
from fractions import Fraction

from fp8ref.formats import Format, floor_log2, pow2
from fp8ref.rounding import (
    INF,
    NAN,
    ROUNDING_MODES,
    SATURATE,
    STOCHASTIC_MODES,
    check_mode,
    round_rational,
    target,
)

__all__ = ["ROUNDING_MODES", "STOCHASTIC_MODES", "NotRepresentableError", "round_exact", "quantize_exact",
           "decode_exact"]


class NotRepresentableError(ValueError):
    """The input has no encoding in a format without NaN (NaN input, or overflow without saturation)."""


def _magnitude_code(fmt: Format, v: Fraction) -> int:
    """Code (without sign) of a positive value of ``fmt``."""
    if fmt.has_zero and v < pow2(fmt.emin):  # subnormal
        q = v / pow2(fmt.emin - fmt.mbits)
        assert q.denominator == 1
        return int(q)
    e = floor_log2(v)
    mant = v / pow2(e - fmt.mbits) - (1 << fmt.mbits)
    assert mant.denominator == 1 and 0 <= mant < (1 << fmt.mbits)
    return ((e + fmt.bias) << fmt.mbits) | int(mant)


def _nan_code(fmt: Format, negative: bool) -> int:
    if fmt.nan_code is None:
        raise NotRepresentableError(f"{fmt.name} has no NaN encoding")
    return fmt.nan_code | (fmt.sign_mask if negative else 0)


def _overflow_code(fmt: Format, negative: bool) -> int:
    if fmt.inf_code is not None:
        return fmt.inf_code | (fmt.sign_mask if negative else 0)
    return _nan_code(fmt, negative)


def _no_value_code(fmt: Format, saturate: bool, negative: bool) -> int:
    """Result where the exact rounding gives a value the format cannot hold at the bottom of its range:
    a negative value in an unsigned format, or zero in a format without zero. Saturation gives the
    lowest code (0); otherwise NaN."""
    return 0 if saturate else _nan_code(fmt, negative and fmt.signed)


def round_exact(
    x: float | Fraction,
    fmt: Format,
    rounding: str = "nearest_even",
    saturate: bool = True,
    srbits: int = 0,
    srnumbits: int = 0,
) -> int:
    """The code of ``x`` (a float or an exact Fraction) in ``fmt``.

    ``srbits`` (``R``) and ``srnumbits`` (``r``) are the random bits of the stochastic modes,
    ``0 <= R < 2**r``, ``1 <= r <= 32``. Raises :class:`NotRepresentableError` where ``fmt`` has no NaN
    and the result would be NaN. The rounding is :func:`fp8ref.rounding.round_rational`; overflow saturates
    with ``saturate`` and for the modes that round toward zero at that sign (IEEE 754), else gives Inf where
    ``fmt`` has it and NaN otherwise.
    """
    check_mode(rounding, srbits, srnumbits)
    if isinstance(x, float):
        if math.isnan(x):
            return _nan_code(fmt, math.copysign(1.0, x) < 0)
        negative = math.copysign(1.0, x) < 0
        if math.isinf(x):
            if negative and not fmt.signed:
                return _no_value_code(fmt, saturate, True)
            if saturate:
                return fmt.max_code | (fmt.sign_mask if negative else 0)
            return _overflow_code(fmt, negative)
        a = abs(Fraction(x))
    else:
        negative = x < 0
        a = abs(x)
    sign_bits = fmt.sign_mask if negative else 0

    if a != 0 and negative and not fmt.signed:
        return _no_value_code(fmt, saturate, True)

    finite_toward_zero = rounding == "toward_zero" or (
        rounding == ("toward_positive" if negative else "toward_negative"))
    if saturate or finite_toward_zero:
        overflow = SATURATE
    else:
        overflow = INF if fmt.inf_code is not None else NAN
    r = round_rational(-a if negative else a, target(fmt), rounding, overflow, srbits, srnumbits)
    if isinstance(r, float):  # Inf or NaN: the format's overflow code
        return _overflow_code(fmt, negative)
    v = abs(r)
    if v == 0:
        if not fmt.has_zero:
            # zero input: no value; a nonzero input that rounds to zero underflows to the smallest value
            return _no_value_code(fmt, saturate, negative) if a == 0 else 0
        return sign_bits if fmt.has_negative_zero else 0
    return _magnitude_code(fmt, v) | sign_bits


def quantize_exact(values, fmt: Format, rounding: str = "nearest_even", saturate: bool = True,
                   srbits=None, srnumbits: int = 0) -> list[int]:
    """:func:`round_exact` over a sequence of floats (and a sequence of random bits, if any)."""
    values = list(values)
    bits = [0] * len(values) if srbits is None else [int(b) for b in srbits]
    return [round_exact(float(v), fmt, rounding, saturate, b, srnumbits)
            for v, b in zip(values, bits, strict=True)]


def decode_exact(code: int, fmt: Format) -> float:
    """The value of ``code`` as a Python float (NaN carries the sign bit of the code)."""
    v = fmt.decode(code)
    if math.isnan(v) and code & fmt.sign_mask:
        return -math.nan
    return v
