"""Recipes: hand-worked examples and parameter validation (JustInTime, Constant, Current, MSAMP)."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fp8ref
from fp8ref import E4M3, E5M2, quantize, quantize_scaled
from fp8ref.scaling import MSAMP, MX, Constant, Current, Delayed, JustInTime
from fp8ref.scaling import oracle as orc

FLT_MAX = float(np.finfo(np.float32).max)


def test_just_in_time_hand_example():
    st_ = quantize_scaled(np.float32([1.0, -3.5, 0.25]), E4M3, JustInTime())
    assert int(st_.bias) == 7 and st_.scale == np.float32(2.0 ** -7) and st_.quant_scale == 128
    assert st_.codes.tolist() == [0x70, 0xFE, 0x60]  # 128, -448, 32
    assert st_.amax == np.float32(3.5)
    st_ = quantize_scaled(np.float32([1.0, -3.5]), E5M2, JustInTime(margin=3))  # the paper's gradients
    assert int(st_.bias) == 14 - 3


def test_just_in_time_zero_tensor_uses_upper_bound():
    st_ = quantize_scaled(np.zeros(5, np.float32), E4M3, JustInTime(bounds=(-4, 9)))
    assert int(st_.bias) == 9 and np.all(st_.codes == 0)


def test_just_in_time_rows():
    x = np.float32([[1.0, 2.0], [0.0, 0.0], [300.0, -1.0]])
    st_ = quantize_scaled(x, E4M3, JustInTime(granularity="row"))
    assert st_.bias.ravel().tolist() == [7, 31, 0]


def test_constant_hand_example():
    st_ = quantize_scaled(np.float32([1.0, -3.0, 100.0]), E4M3, Constant(2))
    assert int(st_.bias) == 2 and st_.amax is None
    assert st_.codes.tolist() == quantize(np.float32([4.0, -12.0, 400.0]), E4M3).tolist()
    st_ = quantize_scaled(np.float32([100.0]), E4M3, Constant(3))  # 800 saturates to 448
    assert st_.codes.tolist() == [0x7E]


def test_current_te_hand_examples():
    st_ = quantize_scaled(np.float32([1.0, -3.0]), E4M3, Current())
    q = np.float32(448) / np.float32(3)
    assert st_.quant_scale == q and float(q) == float.fromhex("0x1.2aaaaap+7")
    assert st_.scale == np.float32(1) / q and st_.bias is None
    assert st_.codes.tolist() == quantize(np.float32([1.0, -3.0]) * q, E4M3).tolist()
    st_ = quantize_scaled(np.float32([1.0, -3.0]), E4M3, Current(power_of_2=True))
    assert st_.quant_scale == 128 and int(st_.bias) == 7
    # amax 0, Inf or NaN: scale 1
    for v in (0.0, np.inf, np.nan):
        assert quantize_scaled(np.float32([v]), E4M3, Current()).quant_scale == 1
    # eps floors the amax
    q_eps = np.float32(448) / np.float32(1e-3)
    assert quantize_scaled(np.float32([1e-9]), E4M3, Current(eps=1e-3)).quant_scale == q_eps
    assert quantize_scaled(np.float32([0.0]), E4M3, Current(eps=1e-3)).quant_scale == q_eps


def test_current_value_for_inf_depends_on_input_type():
    tiny = 1e-39  # 448 / tiny overflows float32
    assert quantize_scaled(np.float32([tiny]), E4M3, Current()).quant_scale == np.float32(FLT_MAX)
    bf = np.array([tiny], dtype=ml_dtypes.bfloat16)
    assert quantize_scaled(bf, E4M3, Current()).quant_scale == np.float32(float.fromhex("0x1.fep127"))
    assert quantize_scaled(np.float32([tiny]), E4M3, Current(power_of_2=True)).quant_scale == 2.0 ** 127


def test_current_torchao_float64():
    r = Current(eps=1e-12, compute_dtype="float64")
    st_ = quantize_scaled(np.float32([3.0]), E4M3, r)
    assert st_.quant_scale == np.float32(448 / 3.0)
    st_ = quantize_scaled(np.float32([0.0]), E4M3, r)
    assert st_.quant_scale == np.float32(448 / 1e-12)
    for bad in (np.nan, np.inf):
        with pytest.raises(FloatingPointError):
            quantize_scaled(np.float32([bad]), E4M3, r)
    with pytest.raises(FloatingPointError):
        quantize_scaled(np.float32([0.0]), E4M3, Current(compute_dtype="float64"))  # eps 0: 448 / 0


def test_current_float32_and_float64_rules_on_many_amaxes():
    """The float64 rule rounds twice (to float64, then float32), the float32 rule once: each equals its
    oracle."""
    rng = np.random.default_rng(0)
    for a in rng.uniform(1e-3, 1e3, 300).astype(np.float32):
        a = float(a)
        x = np.float32([a])
        assert quantize_scaled(x, E5M2, Current()).quant_scale == orc.current_scale_exact(a, E5M2)
        r64 = Current(compute_dtype="float64", eps=1e-12)
        want = orc.current_scale_exact(a, E5M2, 1e-12, False, "float64")
        assert quantize_scaled(x, E5M2, r64).quant_scale == want


@given(st.floats(min_value=0, max_value=float(np.float32(3e38)), width=32))
def test_current_equals_oracle(a):
    for fmt in (E4M3, E5M2):
        for p2 in (False, True):
            st_ = quantize_scaled(np.float32([a]), fmt, Current(power_of_2=p2))
            assert float(st_.quant_scale) == orc.current_scale_exact(a, fmt, 0.0, p2)


def test_msamp_hand_examples():
    st_ = quantize_scaled(np.float32([3.5]), E4M3, MSAMP())
    assert int(st_.bias) == 7 and st_.state == 7
    st_ = quantize_scaled(np.float32([3.5]), E4M3, MSAMP(margin=1))
    assert int(st_.bias) == 6
    # zero / non-finite amax keep the previous bias
    for v in (0.0, np.inf, np.nan):
        st2 = quantize_scaled(np.float32([v]), E4M3, MSAMP(), state=5)
        assert int(st2.bias) == 5 and st2.state == 5
    assert int(quantize_scaled(np.float32([0.0]), E4M3, MSAMP()).bias) == 0  # MS-AMP starts at scale 1


def test_msamp_rounds_the_quotient_to_float32_first():
    a = float(np.nextafter(np.float32(3.5), np.float32(4)))  # 448 / a is just below 128
    assert fp8ref.scale_bias(a, E4M3) == 6  # exact rule
    q = np.float32(448) / np.float32(a)
    want = 7 if q == 128 else 6
    got = int(quantize_scaled(np.float32([a]), E4M3, MSAMP()).bias)
    assert got == want == orc.msamp_bias_exact(a, E4M3, 0, 0)


@given(st.floats(min_value=float(np.float32(1e-30)), max_value=float(np.float32(1e30)), width=32))
def test_msamp_equals_oracle(a):
    got = int(quantize_scaled(np.float32([a]), E5M2, MSAMP(margin=2)).bias)
    assert got == orc.msamp_bias_exact(a, E5M2, 2, 0)


def test_msamp_state_validation():
    with pytest.raises(ValueError, match="state"):
        quantize_scaled(np.float32([1.0]), E4M3, MSAMP(), state=1.5)


@pytest.mark.parametrize("make,param", [
    (lambda: JustInTime(margin=0.5), "margin"),
    (lambda: JustInTime(bounds=(1,)), "bounds"),
    (lambda: JustInTime(bounds=(5, 1)), "bounds"),
    (lambda: JustInTime(granularity="diagonal"), "granularity"),
    (lambda: JustInTime(granularity=(0, 128)), "granularity"),
    (lambda: Constant(200), "bias"),
    (lambda: Constant(1.0), "bias"),
    (lambda: Delayed(history_len=0), "history_len"),
    (lambda: Delayed(algo="avg"), "algo"),
    (lambda: Delayed(margin=1.5), "margin"),
    (lambda: Current(eps=-1), "eps"),
    (lambda: Current(eps=math.nan), "eps"),
    (lambda: Current(compute_dtype="float16"), "compute_dtype"),
    (lambda: Current(power_of_2=1), "power_of_2"),
    (lambda: MSAMP(margin="3"), "margin"),
    (lambda: MX(rule="round"), "rule"),
    (lambda: MX(block_size=0), "block_size"),
    (lambda: MX(axis=2), "axis"),
    (lambda: MX(pad="yes"), "pad"),
])
def test_recipe_validation(make, param):
    with pytest.raises(ValueError, match=param):
        make()


def test_recipes_are_frozen_and_hashable():
    r = JustInTime(margin=3)
    with pytest.raises(AttributeError):
        r.margin = 1  # type: ignore[misc]
    assert {r, JustInTime(margin=3)} == {r}
    assert MX("rceil").rule == "RCEIL"
    assert Current(granularity=[1, 128]).granularity == (1, 128)
