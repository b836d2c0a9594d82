"""The exact cast: the specification of :func:`fp8ref.quantize`, in Python integers and ``Fraction``.

Every rule of docs/casts.md is written here once, in the most direct form, for *any* :class:`Format`
(the named FP8 formats, E8M0, research ExMy formats, FP16/BF16 as targets). The Numba kernels in
:mod:`fp8ref.cast.kernels` are tested equal to this module; nothing here is fast.

The rounding itself follows gfloat's ``round_float`` (graphcore-research/gfloat, ``round.py``): the
magnitude ``|x|`` is written as ``(k + delta) * 2**q`` with ``k`` an integer, ``0 <= delta < 1`` and ``q``
the exponent of the target's unit in the last place at ``|x|``; one ``match`` on the rounding mode decides
whether to round away from zero (``k + 1``) or not (``k``). Here ``delta`` is an exact ``Fraction``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from fp8ref.formats import Format, floor_log2, pow2

ROUNDING_MODES: tuple[str, ...] = (
    "nearest_even",
    "nearest_away",
    "toward_zero",
    "toward_positive",
    "toward_negative",
    "stochastic",
    "stochastic_fast",
    "stochastic_fastest",
)
STOCHASTIC_MODES: tuple[str, ...] = ("stochastic", "stochastic_fast", "stochastic_fastest")


class NotRepresentableError(ValueError):
    """The input has no encoding in a format without NaN (NaN input, or overflow without saturation)."""


def _rne(v: Fraction) -> int:
    """Round a non-negative Fraction to the nearest integer, ties to even."""
    f = math.floor(v)
    d = v - f
    return f + (1 if d > Fraction(1, 2) or (d == Fraction(1, 2) and f % 2 == 1) else 0)


def _magnitude_code(fmt: Format, v: Fraction) -> int:
    """Code (without sign) of a positive value of ``fmt``; the exponent may run past the top binade
    (then the result is larger than ``fmt.max_code``)."""
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
    and the result would be NaN.
    """
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
    if rounding in STOCHASTIC_MODES and not (1 <= srnumbits <= 32 and 0 <= srbits < (1 << srnumbits)):
        raise ValueError(f"need 1 <= srnumbits <= 32 and 0 <= srbits < 2**srnumbits, "
                         f"got srbits={srbits}, srnumbits={srnumbits}")
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

    if a == 0:
        k, q = 0, fmt.emin
        away = False
    else:
        e = floor_log2(a)
        if e < fmt.emin and not fmt.has_subnormals:
            q = fmt.emin  # neighbours are 0 and min_normal
        else:
            q = max(e, fmt.emin) - fmt.mbits
        t = a / pow2(q)
        k = math.floor(t)
        delta = t - k
        if fmt.mbits > 0:
            k_is_odd = k % 2 == 1
        else:  # precision 1: the parity of the code is the parity of the exponent field
            k_is_odd = k != 0 and (q + fmt.bias) % 2 == 1
        R, r = srbits, srnumbits
        match rounding:
            case "nearest_even":
                away = delta > Fraction(1, 2) or (delta == Fraction(1, 2) and k_is_odd)
            case "nearest_away":
                away = delta >= Fraction(1, 2)
            case "toward_zero":
                away = False
            case "toward_positive":
                away = not negative and delta > 0
            case "toward_negative":
                away = negative and delta > 0
            case "stochastic":
                away = _rne(delta * (1 << r)) + R >= (1 << r)
            case "stochastic_fast":
                away = delta * (1 << (r + 1)) + 2 * R + 1 >= (1 << (r + 1))
            case "stochastic_fastest":
                away = delta * (1 << r) + R >= (1 << r)
            case _:  # pragma: no cover - guarded above
                raise AssertionError(rounding)

    v = (k + int(away)) * pow2(q)
    if v == 0:
        if not fmt.has_zero:
            # zero input: no value; a nonzero input that rounds to zero underflows to the smallest value
            return _no_value_code(fmt, saturate, negative) if a == 0 else 0
        return sign_bits if fmt.has_negative_zero else 0
    if v > fmt.max_exact:
        finite_toward_zero = rounding == "toward_zero" or (
            rounding == ("toward_positive" if negative else "toward_negative"))
        if saturate or finite_toward_zero:
            return fmt.max_code | sign_bits
        return _overflow_code(fmt, negative)
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
