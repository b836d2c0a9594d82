"""The exact specification of rounding: one function rounds a rational number to any format or accumulator.

Every oracle of fp8ref rounds through :func:`round_rational`: the cast oracle (:mod:`fp8ref.cast.oracle`,
every rounding mode of :func:`fp8ref.quantize`), the accumulation oracle (:mod:`fp8ref.accum.exact`: the
block-FMA roundings toward zero and to nearest even of the tensor-core models, and the IEEE additions of the
sequential and promoted models) and the ``scaled_mm`` oracle (:mod:`fp8ref.matmul.oracle`). The fast
kernels are tested equal to those oracles.

A :class:`Target` is what rounding needs to know of a destination: the number of fraction bits kept, the
smallest normal exponent, the largest finite magnitude and whether values below the normal range keep the
grid of the subnormals. :func:`target` reads it from a :class:`~fp8ref.formats.Format`; :func:`accumulator`
builds it for an accumulator of ``frac_bits`` fraction bits and exponent range ``[emin, emax]`` (a tensor
core's internal width, which need not be a format of its own).

The rounding follows gfloat's ``round_float`` (graphcore-research/gfloat, ``round.py``): the magnitude ``a``
is written ``(k + delta) * 2**q`` with ``k`` an integer, ``0 <= delta < 1`` exact and ``q`` the weight of the
last kept bit at ``a``; one ``match`` on the mode decides whether to round away from zero (``k + 1``) or not.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache
from typing import NamedTuple

from fp8ref.formats import Format, floor_log2, pow2

NEAREST_EVEN = "nearest_even"
NEAREST_AWAY = "nearest_away"
TOWARD_ZERO = "toward_zero"  # RZ, the block-FMA rounding of most tensor cores
TOWARD_POSITIVE = "toward_positive"
TOWARD_NEGATIVE = "toward_negative"  # round down
STOCHASTIC = "stochastic"
STOCHASTIC_FAST = "stochastic_fast"
STOCHASTIC_FASTEST = "stochastic_fastest"

ROUNDING_MODES: tuple[str, ...] = (NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO, TOWARD_POSITIVE, TOWARD_NEGATIVE,
                                   STOCHASTIC, STOCHASTIC_FAST, STOCHASTIC_FASTEST)
STOCHASTIC_MODES: tuple[str, ...] = (STOCHASTIC, STOCHASTIC_FAST, STOCHASTIC_FASTEST)

SATURATE = "saturate"  # beyond the largest finite magnitude: that magnitude
INF = "inf"  # +-Inf
NAN = "nan"  # NaN
OVERFLOW_POLICIES: tuple[str, ...] = (SATURATE, INF, NAN)


class Target(NamedTuple):
    """A rounding destination.

    ``mbits``: fraction bits kept; ``emin``: exponent of the smallest normal value (a smaller value keeps
    the exponent ``emin``, i.e. the grid ``2**(emin - mbits)``, when ``subnormals``; without subnormals its
    neighbours are 0 and ``2**emin``); ``max_value``: the largest finite magnitude (a rounded magnitude above
    it overflows). ``exponent_bias``: for a format of precision 1 (``mbits == 0``) the "even" neighbour of a
    tie is the one with an even code, i.e. an even biased exponent; ``None`` (accumulators) takes the parity
    of the significand.
    """

    mbits: int
    emin: int
    max_value: Fraction
    subnormals: bool = True
    exponent_bias: int | None = None


@cache
def target(fmt: Format) -> Target:
    """The :class:`Target` of the values of ``fmt``."""
    return Target(fmt.mbits, fmt.emin, fmt.max_exact, fmt.has_subnormals, fmt.bias)


@cache
def accumulator(frac_bits: int, emin: int, emax: int) -> Target:
    """The :class:`Target` of an IEEE-like accumulator with ``frac_bits`` fraction bits, normal exponents
    ``emin .. emax`` and subnormals: its largest magnitude is ``(2 - 2**-frac_bits) * 2**emax``, so a rounded
    magnitude overflows exactly when it reaches ``2**(emax + 1)``."""
    return Target(frac_bits, emin, Fraction((1 << (frac_bits + 1)) - 1) * pow2(emax - frac_bits))


def check_mode(mode: str, srbits: int = 0, srnumbits: int = 0) -> None:
    """Raise ``ValueError`` for an unknown mode, or for a stochastic mode without ``1 <= srnumbits <= 32``
    random bits ``0 <= srbits < 2**srnumbits``."""
    if mode not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {mode!r}")
    if mode in STOCHASTIC_MODES and not (1 <= srnumbits <= 32 and 0 <= srbits < (1 << srnumbits)):
        raise ValueError(f"need 1 <= srnumbits <= 32 and 0 <= srbits < 2**srnumbits, "
                         f"got srbits={srbits}, srnumbits={srnumbits}")


def _rne(v: Fraction) -> int:
    """Round a non-negative Fraction to the nearest integer, ties to even."""
    f = math.floor(v)
    d = v - f
    return f + (1 if d > Fraction(1, 2) or (d == Fraction(1, 2) and f % 2 == 1) else 0)


def round_rational(x: Fraction, tgt: Target, mode: str = NEAREST_EVEN, overflow: str = INF,
                   srbits: int = 0, srnumbits: int = 0) -> Fraction | float:
    """``x`` rounded once to ``tgt`` with ``mode``: the rounded value as an exact ``Fraction``, or, where the
    rounded magnitude (exponent unbounded) exceeds ``tgt.max_value``, the ``overflow`` policy's result:
    ``SATURATE`` +-``max_value`` (a Fraction), ``INF`` +-Inf, ``NAN`` NaN (floats).

    A zero result is ``Fraction(0)``: the sign of a zero is each caller's rule (the sign of ``x`` is known
    to it). ``srbits`` (``R``) and ``srnumbits`` (``r``) are the random bits of the stochastic modes
    (docs/casts.md): ``stochastic`` rounds away when ``RNE(delta * 2**r) + R >= 2**r``, ``stochastic_fast``
    when ``delta * 2**(r+1) + 2R + 1 >= 2**(r+1)``, ``stochastic_fastest`` when ``delta * 2**r + R >= 2**r``.
    """
    check_mode(mode, srbits, srnumbits)
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
    negative = x < 0
    a = -x if negative else x
    if a == 0:
        return Fraction(0)
    e = floor_log2(a)
    if e < tgt.emin and not tgt.subnormals:
        q = tgt.emin  # neighbours are 0 and the smallest normal value
    else:
        q = max(e, tgt.emin) - tgt.mbits
    t = a / pow2(q)
    k = t.numerator // t.denominator
    delta = t - k
    if tgt.mbits > 0 or tgt.exponent_bias is None:
        k_is_odd = k % 2 == 1
    else:  # precision 1: the parity of the code is the parity of the exponent field
        k_is_odd = k != 0 and (q + tgt.exponent_bias) % 2 == 1
    R, r = srbits, srnumbits
    match mode:
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
        case _:  # "stochastic_fastest" (check_mode has refused everything else)
            away = delta * (1 << r) + R >= (1 << r)
    v = (k + int(away)) * pow2(q)
    if v > tgt.max_value:
        if overflow == SATURATE:
            v = tgt.max_value
        elif overflow == INF:
            return -math.inf if negative else math.inf
        else:
            return math.nan
    return -v if negative else v
