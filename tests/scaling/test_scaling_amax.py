"""amax: float32 result, NaN policy, axes, dtypes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fp8ref import amax


def test_scalar_and_dtypes():
    x = np.array([1.0, -3.5, 2.0])
    for dt in (np.float16, ml_dtypes.bfloat16, np.float32, np.float64):
        r = amax(x.astype(dt))
        assert isinstance(r, np.float32) and r == np.float32(3.5)
    assert amax([[-7.0, 1.0]]) == np.float32(7.0)
    assert amax(np.float32(-2.0)) == np.float32(2.0)


def test_float64_rounds_to_nearest_even_float32():
    v = 1.0 + 2.0 ** -24  # a float32 tie: rounds to 1.0
    assert amax(np.array([v])) == np.float32(1.0)
    v = 1.0 + 3 * 2.0 ** -25  # rounds up
    assert amax(np.array([v])) == np.float32(1.0 + 2.0 ** -23)
    assert np.isinf(amax(np.array([1e39])))
    x = np.random.default_rng(1).standard_normal(1001) * 1e3
    assert amax(x) == np.max(np.abs(x.astype(np.float32)))


def test_nan_policy():
    x = np.array([1.0, np.nan, -5.0], dtype=np.float32)
    assert np.isnan(amax(x))
    assert amax(x, nan="ignore") == np.float32(5.0)
    assert amax(np.array([np.nan]), nan="ignore") == 0
    assert np.isnan(amax(x.reshape(1, 3), axis=1)[0])
    assert amax(x.reshape(1, 3), axis=1, nan="ignore")[0] == 5
    with pytest.raises(ValueError, match="nan"):
        amax(x, nan="skip")


def test_inf_and_signed_zero():
    assert np.isinf(amax(np.array([-np.inf, 1.0], dtype=np.float32)))
    r = amax(np.array([-0.0], dtype=np.float32))
    assert r == 0 and not np.signbit(r)


def test_empty_is_zero():
    assert amax(np.zeros(0, dtype=np.float32)) == 0
    assert amax(np.zeros((3, 0), dtype=np.float32), axis=1).tolist() == [0, 0, 0]


def test_axis():
    x = np.arange(-6, 6, dtype=np.float32).reshape(3, 4)
    assert amax(x, axis=1).tolist() == [6, 2, 5]
    assert amax(x, axis=0).tolist() == [6, 5, 4, 5]
    assert amax(x, axis=1).dtype == np.float32
    with pytest.raises(ValueError, match="axis"):
        amax(x, axis=2)


def test_bad_input():
    with pytest.raises(TypeError, match="x"):
        amax(np.arange(4))
    with pytest.raises(TypeError, match="x"):
        amax(np.ones(3, dtype=np.complex64))


def test_non_contiguous_and_big_endian():
    x = np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2]
    assert amax(x) == 19
    assert amax(np.array([1.0, -9.0], dtype=">f4")) == 9


@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=40),
                  elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_equals_numpy(x):
    got = amax(x)
    want = np.max(np.abs(x), initial=np.float32(0))
    assert (np.isnan(got) and np.isnan(want)) or got == want
    got = amax(x, nan="ignore")
    want = np.fmax.reduce(np.abs(x).reshape(-1), initial=np.float32(0))
    assert got == want
