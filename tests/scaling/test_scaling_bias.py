"""scale_bias: the paper's rule, exact near powers of two, edge cases and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fp8ref
from fp8ref import E4M3, E4M3FNUZ, E5M2, E5M2FNUZ, scale_bias
from fp8ref.scaling.oracle import scale_bias_exact

FORMATS = [E4M3, E5M2, E4M3FNUZ, E5M2FNUZ, fp8ref.E2M1]
f32 = st.floats(min_value=0, max_value=float(np.float32(3e38)), width=32, allow_nan=False,
                allow_infinity=False)


def test_hand_worked_examples():
    # 448 / 3.5 = 128 = 2**7 exactly -> 7; 448 / 3.5000002 is just below 128 -> 6
    assert scale_bias(3.5, E4M3) == 7
    assert scale_bias(float(np.nextafter(np.float32(3.5), np.float32(4))), E4M3) == 6
    assert scale_bias(448.0, E4M3) == 0
    assert scale_bias(449.0, E4M3) == -1
    assert scale_bias(224.0, E4M3) == 1
    assert scale_bias(1.0, E5M2) == 15  # 57344 = 1.75 * 2**15
    assert scale_bias(1.0, E4M3FNUZ) == 7  # 240 = 1.875 * 2**7
    assert scale_bias(1.0, E4M3, margin=3) == 5
    assert scale_bias(1e-30, E4M3) == 31  # clipped
    assert scale_bias(1e30, E4M3) == -31
    assert scale_bias(1e-30, E4M3, bounds=(-127, 127)) == 108  # log2(448e30) = 108.47
    assert isinstance(scale_bias(1.0, E4M3), int)


def test_zero_gives_upper_bound():
    assert scale_bias(0.0, E4M3) == 31
    assert scale_bias(0.0, E4M3, bounds=(-5, 9)) == 9
    assert scale_bias(0.0, E4M3, margin=3) == 31


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_raises(bad):
    with pytest.raises(FloatingPointError):
        scale_bias(bad, E4M3)
    with pytest.raises(FloatingPointError):
        scale_bias(np.array([1.0, bad]), E4M3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="amax"):
        scale_bias(-1.0, E4M3)
    with pytest.raises(ValueError, match="margin"):
        scale_bias(1.0, E4M3, margin=1.5)
    with pytest.raises(ValueError, match="bounds"):
        scale_bias(1.0, E4M3, bounds=(3, 2))
    with pytest.raises(ValueError, match="bounds"):
        scale_bias(1.0, E4M3, bounds=(-200, 2))
    with pytest.raises(ValueError, match="fmt"):
        scale_bias(1.0, "e9m9x")


@pytest.mark.parametrize("amax", ["3", b"3", True, np.True_, np.array([True, False]), np.array(["3"]),
                                  1 + 2j, np.array([1 + 0j]), np.array([3.0], dtype=object), None])
def test_amax_that_is_not_a_real_number_is_refused(amax):
    """NumPy reads "3" as 3.0 and True as 1.0: scale_bias("3", E4M3) returned 7."""
    with pytest.raises(TypeError, match="amax must be a non-negative real number"):
        scale_bias(amax, E4M3)


def test_amax_integers_and_narrow_floats_are_numbers():
    import ml_dtypes

    assert scale_bias(3, E4M3) == scale_bias(np.int64(3), E4M3) == scale_bias(3.0, E4M3) == 7
    assert scale_bias(np.array([3.5], ml_dtypes.bfloat16), E4M3).tolist() == [7]
    assert scale_bias(np.array([3.5], np.float16), E4M3).tolist() == [7]
    with pytest.raises(ValueError, match="amax"):
        scale_bias([[1.0], [2.0, 3.0]], E4M3)


def test_array_input_gives_int32_array():
    a = np.array([[0.0, 1.0], [3.5, 449.0]], dtype=np.float32)
    sb = scale_bias(a, E4M3)
    assert sb.dtype == np.int32 and sb.shape == (2, 2)
    assert sb.tolist() == [[31, 8], [7, -1]]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_exact_near_every_power_of_two(fmt):
    """fmt.max / amax within one float32 ulp of 2**k, for every k: float64 log2 gets some of these wrong."""
    cands = []
    for k in range(-40, 41):
        a = np.float32(fmt.max / 2.0 ** k)
        cands += [a, np.nextafter(a, np.float32(0)), np.nextafter(a, np.float32(np.inf))]
    a = np.array(cands, dtype=np.float32)
    got = scale_bias(a, fmt, bounds=(-127, 127))
    want = [scale_bias_exact(float(v), fmt, 0, (-127, 127)) for v in a]
    assert got.tolist() == want


@given(a=f32, margin=st.integers(-4, 4))
def test_equals_exact_oracle(a, margin):
    for fmt in FORMATS:
        assert scale_bias(a, fmt, margin=margin) == scale_bias_exact(a, fmt, margin, (-31, 31))


@given(a=st.floats(min_value=1e-30, max_value=1e30, allow_nan=False))
def test_amax_lands_in_top_binade(a):
    """Property (margin 0, bounds not reached): amax * 2**sb lies in (max/2, max]."""
    for fmt in FORMATS:
        sb = scale_bias(a, fmt, bounds=(-127, 127))
        v = a * 2.0 ** sb
        assert fmt.max / 2 < v <= fmt.max


def test_float64_log2_would_be_wrong():
    """The reason for the frexp rule: floor(math.log2(448 / a)) is off by one for some a within one ulp
    of 448 / 2**k (116 of 360 for k = -60..59 with glibc); scale_bias is right on all of them."""
    wrong = 0
    for k in range(-60, 60):
        a0 = 448 / 2.0 ** k
        for a in (np.nextafter(a0, 0), a0, np.nextafter(a0, np.inf)):
            exact = scale_bias_exact(float(a), E4M3, 0, (-127, 127))
            assert scale_bias(float(a), E4M3, bounds=(-127, 127)) == exact
            wrong += math.floor(math.log2(448 / a)) != exact
    assert wrong > 0  # a correctly rounded log2 of a quotient just below 2**k (|k| >= 4) gives k; 116 here
