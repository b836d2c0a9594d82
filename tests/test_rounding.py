"""fp8ref.rounding: the one exact rounding, and the one TwoSum of the kernels, pinned on their own."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fp8ref import rounding
from fp8ref.formats import E4M3, E5M2, E8M0, FP32, pow2
from fp8ref.rounding import (
    INF,
    NAN,
    NEAREST_AWAY,
    NEAREST_EVEN,
    SATURATE,
    STOCHASTIC,
    TOWARD_NEGATIVE,
    TOWARD_POSITIVE,
    TOWARD_ZERO,
    accumulator,
    round_rational,
    target,
)


def test_modes_on_a_tie_and_off_it() -> None:
    t = target(E4M3)  # 3 fraction bits: 1, 1.125, 1.25, ...
    tie = Fraction(1) + Fraction(1, 16)  # halfway between 1 and 1.125
    assert round_rational(tie, t, NEAREST_EVEN) == 1
    assert round_rational(tie, t, NEAREST_AWAY) == Fraction(9, 8)
    assert round_rational(-tie, t, NEAREST_AWAY) == -Fraction(9, 8)
    above = tie + Fraction(1, 1024)
    assert round_rational(above, t, TOWARD_ZERO) == 1
    assert round_rational(above, t, TOWARD_POSITIVE) == Fraction(9, 8)
    assert round_rational(-above, t, TOWARD_POSITIVE) == -1
    assert round_rational(-above, t, TOWARD_NEGATIVE) == -Fraction(9, 8)  # round down
    assert round_rational(Fraction(0), t, TOWARD_POSITIVE) == 0


def test_subnormals_and_their_absence() -> None:
    assert round_rational(Fraction(3, 2**10), target(E4M3)) == Fraction(1, 2**8)  # 1.5 steps: even
    assert round_rational(Fraction(3, 2**11), target(E4M3)) == Fraction(1, 2**9)
    # E8M0: no subnormals (no zero): below 2**-127 the neighbours are 0 and 2**-127
    assert round_rational(pow2(-128) * Fraction(3, 2), target(E8M0)) == pow2(-127)
    assert round_rational(pow2(-129), target(E8M0)) == 0
    # precision 1: a tie goes to the even code, i.e. the even biased exponent (2**0 has code 127, odd)
    assert round_rational(Fraction(3, 2), target(E8M0)) == 2


def test_overflow_policies() -> None:
    big = Fraction(500)  # beyond E4M3's 448 after rounding
    t = target(E4M3)
    assert round_rational(Fraction(464), t, NEAREST_EVEN, SATURATE) == 448  # rounds down to 448: no overflow
    assert round_rational(big, t, NEAREST_EVEN, SATURATE) == 448
    assert round_rational(-big, t, NEAREST_EVEN, SATURATE) == -448
    assert round_rational(-big, t, NEAREST_EVEN, INF) == -math.inf
    assert math.isnan(round_rational(big, t, NEAREST_EVEN, NAN))
    assert round_rational(Fraction(61440), target(E5M2), NEAREST_EVEN, INF) == math.inf


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 23), st.integers(1, 2**30), st.integers(-160, 140))
def test_accumulator_overflows_exactly_at_two_to_emax_plus_one(frac_bits: int, m: int, e: int) -> None:
    """An accumulator target overflows when the rounded magnitude reaches 2**(emax+1) (the published
    tensor-core rule, for RZ too), and agrees with the format target of an IEEE format of that width."""
    x = Fraction(m) * pow2(e)
    for mode in (NEAREST_EVEN, TOWARD_ZERO):
        r = round_rational(x, accumulator(frac_bits, -126, 127), mode, INF)
        unbounded = round_rational(x, accumulator(frac_bits, -126, 10**6), mode, INF)
        assert (r == math.inf) == (unbounded >= pow2(128))
        if frac_bits == 23:
            assert r == round_rational(x, target(FP32), mode, INF)


def test_bad_mode_overflow_and_random_bits() -> None:
    t = target(E4M3)
    with pytest.raises(ValueError, match="rounding must be one of"):
        round_rational(Fraction(1), t, "rd")
    with pytest.raises(ValueError, match="overflow must be one of"):
        round_rational(Fraction(1), t, NEAREST_EVEN, "wrap")
    with pytest.raises(ValueError, match="srnumbits"):
        round_rational(Fraction(1), t, STOCHASTIC, INF, srbits=4, srnumbits=2)
    assert rounding.ROUNDING_MODES[:5] == (NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO, TOWARD_POSITIVE,
                                          TOWARD_NEGATIVE)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=500, deadline=None)
@given(finite, finite)
def test_two_sum_is_error_free(a: float, b: float) -> None:
    """The one TwoSum of the kernels (accum.primitives.two_sum, inlined into the accumulation and the
    scaled_mm kernels): s is the float64 sum and s + e the exact sum."""
    from fp8ref.accum.primitives import two_sum

    if not math.isfinite(a + b):
        return
    s, e = two_sum(a, b)
    assert s == a + b
    assert Fraction(s) + Fraction(e) == Fraction(a) + Fraction(b)
