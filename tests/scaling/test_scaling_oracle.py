"""quantize_scaled against the exact oracle: a direct per-block loop computes every block amax, its
scale by the exact rule (fp8ref.scaling.oracle) and every code element by element."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8ref
from fp8ref import E2M1, E4M3, E4M3FNUZ, E5M2, quantize_scaled
from fp8ref.scaling import MSAMP, MX, Constant, Current, JustInTime
from fp8ref.scaling import oracle as orc


def _blocks(shape, block):
    m, n = shape
    br, bc = block
    for bi in range(-(-m // br)):
        for bj in range(-(-n // bc)):
            yield bi, bj, (slice(bi * br, min(m, (bi + 1) * br)), slice(bj * bc, min(n, (bj + 1) * bc)))


def _block_shape(recipe, shape):
    g = recipe.granularity
    if g == "tensor":
        return shape
    if g == "row":
        return (1, shape[1])
    if g == "column":
        return (shape[0], 1)
    if g == "mx":
        return (1, recipe.block_size) if recipe.axis % 2 == 1 else (recipe.block_size, 1)
    return g


def _oracle_q(recipe, a, fmt, in_dtype):
    """The exact quantisation multiplier of a block with amax ``a`` (a float32 value)."""
    if isinstance(recipe, JustInTime):
        return 2.0 ** orc.scale_bias_exact(a, fmt, recipe.margin, recipe.bounds), None
    if isinstance(recipe, Constant):
        return 2.0 ** recipe.bias, None
    if isinstance(recipe, Current):
        vfi = {np.dtype(np.float16): 65504.0,
               np.dtype(ml_dtypes.bfloat16): float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)}
        return orc.current_scale_exact(a, fmt, recipe.eps, recipe.power_of_2, recipe.compute_dtype,
                                       vfi.get(np.dtype(in_dtype), float(np.finfo(np.float32).max))), None
    if isinstance(recipe, MSAMP):
        return 2.0 ** orc.msamp_bias_exact(a, fmt, recipe.margin, 0), None
    code = orc.mx_code_exact(a, fmt, recipe.rule)
    return (math.nan if code == 255 else 2.0 ** (127 - code)), code


def check_against_oracle(x, fmt, recipe, rounding="nearest_even", saturate=True):
    st_ = quantize_scaled(x, fmt, recipe, rounding=rounding, saturate=saturate)
    compute = "float64" if x.dtype == np.float64 else "float32"
    w = x.astype(np.float64)
    shape2 = w.shape if w.ndim == 2 else (1, w.size)
    w2 = w.reshape(shape2)
    codes = st_.codes.reshape(shape2)
    block = _block_shape(recipe, shape2) if recipe.granularity != "tensor" else shape2
    qs = np.asarray(st_.quant_scale).reshape(-1 if recipe.granularity == "tensor" else st_.scale.shape)
    qs = qs.reshape(1, 1) if recipe.granularity == "tensor" else qs
    for bi, bj, sl in _blocks(shape2, block):
        vals = w2[sl].reshape(-1).tolist()
        a = float(np.float32(orc.amax_exact(vals)))
        q, code = _oracle_q(recipe, a, fmt, x.dtype)
        got_q = float(qs[bi, bj])
        assert (math.isnan(q) and math.isnan(got_q)) or q == got_q, (bi, bj, a, q, got_q)
        if code is not None:
            assert int(st_.scale_codes[bi, bj]) == code
        want = orc.quantize_block_exact(vals, q, fmt, compute, rounding, saturate)
        assert codes[sl].reshape(-1).tolist() == want, (bi, bj)
    return st_


RECIPES_2D = [
    JustInTime(), JustInTime(margin=3, bounds=(-6, 9)), JustInTime(granularity="row"),
    JustInTime(granularity="column"), JustInTime(granularity=(2, 3)), Constant(4), Constant(-3),
    Current(), Current(power_of_2=True), Current(eps=1e-12, compute_dtype="float64"),
    Current(granularity=(1, 16), power_of_2=True),
    Current(granularity="row", compute_dtype="float64", eps=1e-12),
    MSAMP(), MSAMP(margin=2),
    MX(), MX("RCEIL"), MX("CEIL"), MX("EVEN"), MX("FLOOR", block_size=4, axis=0),
    MX("RCEIL", block_size=16, pad=True), MX("EVEN", block_size=4, axis=0, pad=True),
]


def _data(rng, shape, dtype):
    x = rng.standard_normal(shape) * np.exp(rng.uniform(-6, 6, shape))
    x.flat[::7] = 0.0
    x.flat[3] = -0.0
    return x.astype(dtype)


@pytest.mark.parametrize("recipe", RECIPES_2D, ids=repr)
@pytest.mark.parametrize("fmt", [E4M3, E5M2, E4M3FNUZ, E2M1], ids=lambda f: f.name)
def test_recipes_against_oracle(recipe, fmt):
    rng = np.random.default_rng(abs(hash((repr(recipe), fmt.name))) % 2**32)
    x = _data(rng, (5, 34), np.float32)
    if isinstance(recipe, MX) and recipe.axis % 2 == 0:
        x = _data(rng, (8, 6), np.float32)
    if isinstance(recipe, MX) and not recipe.pad and recipe.axis % 2 == 1:
        x = _data(rng, (5, 64), np.float32)
    check_against_oracle(x, fmt, recipe)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("recipe", [JustInTime(granularity="row"), Current(), MX("RCEIL"), Constant(7)],
                         ids=repr)
def test_input_dtypes_against_oracle(dtype, recipe):
    x = _data(np.random.default_rng(5), (4, 32), dtype)
    check_against_oracle(x, E4M3, recipe)


@pytest.mark.parametrize("rounding", ["nearest_away", "toward_zero", "toward_positive", "toward_negative"])
@pytest.mark.parametrize("saturate", [True, False])
def test_rounding_modes_against_oracle(rounding, saturate):
    x = _data(np.random.default_rng(6), (4, 32), np.float32)
    for recipe in (JustInTime(granularity="row"), Constant(9), MX("FLOOR")):
        for fmt in (E4M3, E5M2):
            check_against_oracle(x, fmt, recipe, rounding, saturate)


@settings(max_examples=40)
@given(st.data())
def test_random_blocks_against_oracle(data):
    m = data.draw(st.integers(1, 9))
    n = data.draw(st.integers(1, 40))
    x = np.array(data.draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=m * n, max_size=m * n)),
                 dtype=np.float32).reshape(m, n)
    br, bc = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 9))
    recipe = data.draw(st.sampled_from([
        JustInTime(granularity=(br, bc)), Current(granularity=(br, bc), power_of_2=True),
        MX(data.draw(st.sampled_from(["FLOOR", "RCEIL", "CEIL", "EVEN"])), block_size=bc, pad=True)]))
    fmt = data.draw(st.sampled_from([E4M3, E5M2, fp8ref.E5M2FNUZ]))
    check_against_oracle(x, fmt, recipe)


def test_oracle_checks_itself_on_a_hand_example():
    """The oracle helpers on the numbers worked out in docs/scaling.md."""
    assert orc.scale_bias_exact(3.5, E4M3) == 7
    assert orc.current_scale_exact(3.0, E4M3) == float(np.float32(448 / 3))
    assert orc.current_scale_exact(3.0, E4M3, power_of_2=True) == 128.0
    assert orc.mx_code_exact(3.5, E4M3, "FLOOR") == 127 + 1 - 8
    assert orc.mx_code_exact(3.5, E4M3, "CEIL") == 127 + 2 - 8
    assert orc.mx_code_exact(3.5, E4M3, "EVEN") == 127 + 1 - 8  # 3.5 = 1.75 * 2: three mantissa bits hold it
    assert orc.mx_code_exact(3.75, E4M3, "EVEN") == 127 + 1 - 8  # 1.875 = 1.111b: held exactly
    assert orc.mx_code_exact(3.875, E4M3, "EVEN") == 127 + 2 - 8  # 1.9375 rounds up to 2.0
