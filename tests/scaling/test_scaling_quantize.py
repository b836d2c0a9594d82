"""quantize_scaled: the fused kernels against the reference path, the float32 encoder against
fp8ref.quantize, the power-of-two multiply at the edges of float32, the ScaledTensor contract."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numba import njit

import fp8ref
from fp8ref import E2M1, E4M3, E4M3FNUZ, E5M2, E5M2FNUZ, quantize, quantize_scaled, scale_bias
from fp8ref.cast.encode import encode_inc_f32, encoder_params
from fp8ref.scaling import MSAMP, MX, Constant, Current, Delayed, JustInTime, ScaledTensor
from fp8ref.scaling import quantize as qmod

MODES = ["nearest_even", "nearest_away", "toward_zero", "toward_positive", "toward_negative"]
FP8 = [E4M3, E5M2, E4M3FNUZ, E5M2FNUZ]


def _special_f32():
    v = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 448.0, 464.0, 465.0, 480.0, 57344.0, 61440.0, 2.0 ** -9,
         2.0 ** -10, 3 * 2.0 ** -11, 2.0 ** -126, 2.0 ** -149, 1.5 * 2.0 ** -17, 240.0, 248.0, 3.4e38]
    return np.array(v + [-a for a in v], dtype=np.float32)


def _sweep_f32(step=4099):
    """A strided sweep over all 2**32 float32 bit patterns plus the specials."""
    bits = np.arange(0, 2 ** 32, step * 256, dtype=np.uint64)
    bits = (bits[:, None] + np.arange(0, 256 * step, step, dtype=np.uint64)[None, :]).reshape(-1)
    bits = bits[bits < 2 ** 32].astype(np.uint32)
    return np.concatenate([bits.view(np.float32), _special_f32()])


@njit
def _inc_f32(x, p, out):
    """The float32 increment encoder alone (the fused kernels take it for every mode but nearest-even)."""
    for i in range(x.size):
        out[i] = encode_inc_f32(x[i], p)


@pytest.mark.parametrize("fmt", FP8, ids=lambda f: f.name)
def test_f32_encoder_equals_cast(fmt):
    """The fused kernel (nearest-even encoder, or the increment encoder) and the increment encoder in every
    deterministic mode, nearest-even included, against the general encoder on the float64 value."""
    from fp8ref.cast import kernels as ck
    from fp8ref.scaling import kernels as k

    x = _sweep_f32()
    with np.errstate(invalid="ignore"):  # NaN payloads widen with a warning
        x64 = x.astype(np.float64)
    out = np.empty(x.size, np.uint8)
    want = np.empty(x.size, np.uint8)
    for rounding in MODES:
        for sat in (True, False):
            p = encoder_params(fmt, rounding, sat)
            ck.quantize_f64(x64, p, want)
            k.scaled_cast_flat(x, np.float32(1.0), p, out)
            assert np.array_equal(out, want), (rounding, sat)
            _inc_f32(x, p, out)
            assert np.array_equal(out, want), (rounding, sat)


@pytest.mark.parametrize("fmt", [fp8ref.exmy(4, 3, bias=b, nan=n, has_inf=n == "ieee")
                                 for b in (-1100, -200, -100) for n in ("all_ones", "ieee", "fnuz")],
                         ids=lambda f: f"{f.name}-b{f.bias}")
def test_fused_encoders_on_formats_beyond_float32(fmt):
    """Element formats whose range leaves float32's: the nearest-even encoder's magic number overflowed
    (codes with the sign bit set for positive input) and +Inf gave a finite code once emax > 127; such
    formats take the general encoder, equal to the exact oracle."""
    from fp8ref.cast.oracle import round_exact

    x = np.concatenate([_special_f32(), _sweep_f32(step=(1 << 24) + 17)])
    xs = [float(v) for v in x]
    for rounding in MODES:
        for sat in (True, False):
            st = quantize_scaled(x, fmt, Constant(0), rounding=rounding, saturate=sat)
            assert st.codes.tolist() == [round_exact(v, fmt, rounding, sat) for v in xs], (rounding, sat)


@pytest.mark.slow
@pytest.mark.parametrize("fmt,sat", [(E4M3, True), (E5M2, False)], ids=["E4M3-sat", "E5M2-nonsat"])
def test_f32_encoder_exhaustive(fmt, sat):
    """All 2**32 float32 bit patterns, nearest-even, the fused kernel and the increment encoder against
    fp8ref.quantize."""
    from fp8ref.scaling import kernels as k

    p = encoder_params(fmt, "nearest_even", sat)
    out = np.empty(1 << 24, np.uint8)
    for c in range(256):
        x = np.arange(c << 24, (c + 1) << 24, dtype=np.uint64).astype(np.uint32).view(np.float32)
        want = quantize(x, fmt, saturate=sat)
        k.scaled_cast_flat(x, np.float32(1.0), p, out)
        assert np.array_equal(out, want), c
        _inc_f32(x, p, out)
        assert np.array_equal(out, want), c


def _unfused(monkeypatch, *args, **kw):
    monkeypatch.setattr(qmod, "_FUSED", False)
    try:
        return quantize_scaled(*args, **kw)
    finally:
        monkeypatch.setattr(qmod, "_FUSED", True)


FUSE_RECIPES = [JustInTime(), JustInTime(granularity="row"), JustInTime(granularity="column"),
                JustInTime(granularity=(3, 5)), Constant(20), Constant(-20), Current(),
                Current(granularity=(1, 8)),
                MSAMP(), MX(block_size=8), MX("RCEIL", block_size=4, axis=0), Delayed(history_len=3)]


@pytest.mark.parametrize("recipe", FUSE_RECIPES, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16],
                         ids=lambda d: np.dtype(d).name)
def test_fused_equals_reference_path(monkeypatch, recipe, dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((12, 24)) * np.exp(rng.uniform(-30, 30, (12, 24)))
    x[0, :6] = [0.0, -0.0, 1e-45, -3e38, 7e-39, 2.0 ** -130]
    big = float(ml_dtypes.finfo(dtype).max)
    x = np.clip(x, -big, big).astype(dtype)
    for fmt in (E4M3, E5M2, E4M3FNUZ, E2M1):
        for rounding in MODES:
            for sat in (True, False):
                if fmt is E2M1 and not sat:
                    continue
                kw = dict(rounding=rounding, saturate=sat)
                state = Delayed(history_len=3).initial_state() if isinstance(recipe, Delayed) else None
                if state is not None:
                    state = fp8ref.scaling.DelayedState(np.float32([5.0, 0, 1]), np.float32(7.5))
                a = quantize_scaled(x, fmt, recipe, state=state, **kw)
                b = _unfused(monkeypatch, x, fmt, recipe, state=state, **kw)
                assert np.array_equal(a.codes, b.codes), (fmt.name, rounding, sat)
                assert np.array_equal(a.scale, b.scale) and a.state == b.state


def test_fused_delayed_nan_and_inf_amax(monkeypatch):
    x = np.array([1.0, np.nan, -np.inf, 2.0], np.float32)
    a = quantize_scaled(x, E4M3, Delayed(history_len=2))
    b = _unfused(monkeypatch, x, E4M3, Delayed(history_len=2))
    assert a.amax == b.amax == np.inf and a.state == b.state


def test_stochastic_modes_pass_bits_through():
    x = np.linspace(-3, 3, 64, dtype=np.float32).reshape(4, 16)
    st1 = quantize_scaled(x, E4M3, JustInTime(granularity="row"), rounding="stochastic", seed=5)
    st2 = quantize_scaled(x, E4M3, JustInTime(granularity="row"), rounding="stochastic", seed=5)
    assert np.array_equal(st1.codes, st2.codes)
    y = (x * st1.expand(st1.quant_scale)).astype(np.float32)
    assert np.array_equal(st1.codes, quantize(y, E4M3, rounding="stochastic", seed=5))
    bits = np.arange(64).reshape(4, 16) % 16
    st3 = quantize_scaled(x, E4M3, Constant(4), rounding="stochastic", srbits=bits, srnumbits=4)
    assert np.array_equal(st3.codes, quantize(x * 16, E4M3, rounding="stochastic", srbits=bits, srnumbits=4))


# ---- the multiply: input precision, round to nearest even, then the cast ------------------------------
def test_power_of_two_multiply_is_exact_in_range():
    x = np.random.default_rng(2).standard_normal(1000).astype(np.float32)
    for b in (-20, -1, 0, 5, 31):
        st_ = quantize_scaled(x, E5M2, Constant(b))
        assert np.array_equal(st_.codes, quantize(x.astype(np.float64) * 2.0 ** b, E5M2))


def test_subnormal_product_rounds_in_float32_first():
    x = np.float32([2.0 ** -126, (1 + 2.0 ** -23) * 2.0 ** -120])
    st_ = quantize_scaled(x, E4M3, Constant(-30), rounding="toward_positive")
    # 2**-156 is below float32's range: the float32 product is +0, so even rounding up gives code 0;
    # the second product is the float32 subnormal 2**-149 > 0, which rounds up to the smallest subnormal
    assert st_.codes.tolist() == [0, 1]
    # (1 + 2**-23) * 2**-150 rounds (to nearest even) to 2**-149 in float32, not to zero
    y = (x * np.float32(2.0 ** -30)).astype(np.float32)
    assert y.tolist() == [0.0, 2.0 ** -149]
    st64 = quantize_scaled(x.astype(np.float64), E4M3, Constant(-30), rounding="toward_positive")
    assert st64.codes.tolist() == [1, 1]  # float64 holds 2**-156: one rounding, up to the smallest subnormal


def test_overflowing_product_becomes_inf_first():
    x = np.float32([3e38, -3e38])
    st_ = quantize_scaled(x, E4M3, Constant(10), rounding="toward_zero", saturate=False)
    assert st_.codes.tolist() == [0x7F, 0xFF]  # float32 product is +-Inf; non-saturating Inf -> NaN
    st64 = quantize_scaled(x.astype(np.float64), E4M3, Constant(10), rounding="toward_zero", saturate=False)
    assert st64.codes.tolist() == [0x7E, 0xFE]  # finite in float64: toward zero clamps to +-max
    st_ = quantize_scaled(x, E5M2, Constant(10), saturate=True)
    assert st_.codes.tolist() == [0x7B, 0xFB]
    st_ = quantize_scaled(x, E5M2, Constant(10), saturate=False)
    assert st_.codes.tolist() == [0x7C, 0xFC]


def test_float16_and_bfloat16_scale_in_float32():
    x = np.array([60000.0, 1e-7], dtype=np.float16)
    st_ = quantize_scaled(x, E5M2, Constant(20))  # 60000 * 2**20 overflows float16 but not float32
    assert np.array_equal(st_.codes, quantize(x.astype(np.float32) * np.float32(2.0 ** 20), E5M2))


# ---- properties ---------------------------------------------------------------------------------------
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=40)
@given(hnp.arrays(np.float32, st.integers(1, 64), elements=finite32))
def test_just_in_time_never_overflows(x):
    for fmt in FP8:
        sat = quantize_scaled(x, fmt, JustInTime(bounds=(-127, 127)), saturate=True)
        non = quantize_scaled(x, fmt, JustInTime(bounds=(-127, 127)), saturate=False)
        assert np.array_equal(sat.codes, non.codes)  # nothing reached the overflow rule
        vals = non.dequantize(np.float64)
        assert np.all(np.isfinite(vals))
        a = float(fp8ref.amax(x))
        if a > 0:
            sb = int(non.bias)
            assert a * 2.0 ** sb <= fmt.max
            assert fmt.max / 2 < a * 2.0 ** sb or sb == 127  # a tiny amax: the bias stops at the bound
            assert sb == scale_bias(a, fmt, bounds=(-127, 127))


@settings(max_examples=40)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 40)), elements=finite32))
def test_dequantize_is_codes_times_scale(x):
    recipes = (JustInTime(granularity="row"), Current(granularity=(2, 8)), MX("CEIL", block_size=8, pad=True))
    for recipe in recipes:
        st_ = quantize_scaled(x, E4M3, recipe)
        want = (fp8ref.dequantize(st_.codes, E4M3, dtype=np.float64) * st_.expand().astype(np.float64))
        assert np.array_equal(st_.dequantize(np.float64), want, equal_nan=True)
        with np.errstate(over="ignore"):  # a product beyond float32 rounds to Inf, as dequantize does
            want32 = want.astype(np.float32)
        assert np.array_equal(st_.dequantize(), want32, equal_nan=True)


# ---- the ScaledTensor contract --------------------------------------------------------------------------
@pytest.mark.parametrize("recipe,gname,block,grid,has_bias", [
    (JustInTime(), "tensor", (6, 40), (), True),
    (Constant(3), "tensor", (6, 40), (), True),
    (Current(), "tensor", (6, 40), (), False),
    (Current(power_of_2=True), "tensor", (6, 40), (), True),
    (JustInTime(granularity="row"), "row", (1, 40), (6, 1), True),
    (Current(granularity="column", compute_dtype="float64", eps=1e-12), "column", (6, 1), (1, 40), False),
    (Current(granularity=(1, 16), power_of_2=True), "block", (1, 16), (6, 3), True),
    (JustInTime(granularity=(4, 16)), "block", (4, 16), (2, 3), True),
    (MX(block_size=8), "mx", (1, 8), (6, 5), True),
    (MX(block_size=3, axis=0), "mx", (3, 1), (2, 40), True),
    (Delayed(history_len=4), "tensor", (6, 40), (), False),
    (MSAMP(), "tensor", (6, 40), (), True),
])
def test_scaled_tensor_fields(recipe, gname, block, grid, has_bias):
    x = np.random.default_rng(3).standard_normal((6, 40)).astype(np.float32)
    st_ = quantize_scaled(x, "e4m3", recipe)
    assert isinstance(st_, ScaledTensor)
    assert st_.codes.dtype == np.uint8 and st_.codes.shape == (6, 40)
    assert st_.fmt is E4M3 and st_.granularity == gname and st_.block == block
    assert st_.scale.dtype == np.float32 and st_.scale.shape == grid
    assert st_.quant_scale.shape == grid
    assert (st_.bias is not None) == has_bias
    if has_bias:
        assert st_.bias.dtype == np.int32
        b = st_.bias.astype(np.int64)
        assert np.array_equal(st_.scale, np.ldexp(1.0, -b).astype(np.float32))
        assert np.array_equal(st_.quant_scale, np.ldexp(1.0, b).astype(np.float32))
    if gname == "mx":
        assert st_.scale_codes.dtype == np.uint8 and st_.scale_codes.shape == grid
    else:
        assert st_.scale_codes is None
    err = np.abs(st_.dequantize() - x) / np.maximum(np.abs(x), 1e-3)
    assert np.median(err) < 0.07


def test_per_tensor_n_d():
    x = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    st_ = quantize_scaled(x, E4M3, JustInTime())
    assert st_.block == (2, 3, 4) and st_.scale.shape == () and st_.dequantize().shape == (2, 3, 4)


def test_scaled_tensor_validation():
    c = np.zeros((4, 8), np.uint8)
    with pytest.raises(ValueError, match="codes"):
        ScaledTensor(np.zeros(3, np.int16), E4M3, np.float32(1))
    with pytest.raises(ValueError, match="scale"):
        ScaledTensor(c, E4M3, np.ones((4, 1), np.float32))
    with pytest.raises(ValueError, match="scale"):
        ScaledTensor(c, E4M3, np.ones((4, 2), np.float32), block=(1, 8), granularity="row")
    with pytest.raises(ValueError, match="granularity"):
        ScaledTensor(c, E4M3, np.float32(1), granularity="tile")
    with pytest.raises(ValueError, match="scale_codes"):
        ScaledTensor(c, E4M3, np.ones((4, 1), np.float32), block=(1, 8), granularity="mx")
    with pytest.raises(ValueError, match="dtype"):
        ScaledTensor(c, E4M3, np.float32(1)).dequantize(np.float16)
    st_ = ScaledTensor(c, E4M3, np.ones((4, 1), np.float32), np.zeros((4, 1)), (1, 8), "row")
    assert st_.bias.dtype == np.int32


@pytest.mark.parametrize(("kw", "match"), [
    ({"scale": np.float32(1), "block": (3, 3)},
     r"per-tensor ScaledTensor must be the shape of codes \(4, 8\)"),
    ({"scale": np.float32(1), "block": (4, 8, 1)}, "per-tensor"),
    ({"scale": np.ones((4, 1), np.float32), "block": (1, 4), "granularity": "row"},
     r"block of row scaling must be \(1, 8\)"),
    ({"scale": np.ones((1, 8), np.float32), "block": (2, 1), "granularity": "column"},
     r"block of column scaling must be \(4, 1\)"),
    ({"scale": np.ones((2, 2), np.float32), "block": (2, 4), "granularity": "mx",
      "scale_codes": np.zeros((2, 2), np.uint8)}, r"MX scaling must be \(1, k\) or \(k, 1\)"),
    ({"scale": np.ones((2, 2), np.float32), "block": (2.5, 4), "granularity": "block"}, "block must be a"),
    ({"scale": np.ones((2, 2), np.float32), "block": (True, 4), "granularity": "block"}, "block must be a"),
    ({"scale": np.ones((2, 2), np.float32), "block": 4, "granularity": "block"}, "block must be a"),
])
def test_scaled_tensor_block_must_match_its_granularity(kw, match):
    """block=(3, 3) with a per-tensor scale was accepted, and expand() then used the wrong block."""
    with pytest.raises(ValueError, match=match):
        ScaledTensor(np.zeros((4, 8), np.uint8), E4M3, **kw)


def test_scaled_tensor_consistent_blocks_are_accepted():
    c = np.zeros((4, 8), np.uint8)
    assert ScaledTensor(c, E4M3, np.float32(1), block=[4, 8]).block == (4, 8)
    assert ScaledTensor(c, E4M3, np.ones((4, 1), np.float32), block=(1, 8), granularity="row").block == (1, 8)
    st_ = ScaledTensor(c, E4M3, np.ones((2, 3), np.float32), block=(np.int64(3), 3), granularity="block")
    assert st_.block == (3, 3) and type(st_.block[0]) is int


def test_quantize_scaled_errors():
    x = np.ones((4, 8), np.float32)
    with pytest.raises(TypeError, match="recipe"):
        quantize_scaled(x, E4M3, "amax")
    with pytest.raises(ValueError, match="block_size"):
        quantize_scaled(x, E4M3, MX(block_size=3))
    with pytest.raises(ValueError, match="x must be 2-D"):
        quantize_scaled(np.ones(8, np.float32), E4M3, JustInTime(granularity="row"))
    with pytest.raises(ValueError, match="state"):
        quantize_scaled(x, E4M3, JustInTime(), state=3)
    with pytest.raises(ValueError, match="fmt"):
        quantize_scaled(x, fp8ref.FP16, JustInTime())
    with pytest.raises(ValueError, match="fmt"):
        quantize_scaled(x, fp8ref.E8M0, JustInTime())
    with pytest.raises(TypeError, match="x"):
        quantize_scaled(np.ones(3, np.int32), E4M3, JustInTime())
    with pytest.raises(FloatingPointError):
        quantize_scaled(np.float32([1, np.nan]), E4M3, JustInTime())
    with pytest.raises(FloatingPointError):
        quantize_scaled(np.float32([[1, np.inf]]), E4M3, JustInTime(granularity=(1, 1)))
    with pytest.raises(ValueError, match="rounding"):
        quantize_scaled(x, E4M3, JustInTime(), rounding="nearest")
    with pytest.raises(TypeError, match="saturate"):
        quantize_scaled(x, E4M3, JustInTime(), saturate="yes")
    with pytest.raises(ValueError, match="saturate|srbits|seed"):
        quantize_scaled(x, E4M3, JustInTime(), rounding="stochastic")


def test_empty_input():
    st_ = quantize_scaled(np.zeros((0, 8), np.float32), E4M3, JustInTime(granularity="row"))
    assert st_.codes.shape == (0, 8) and st_.scale.shape == (0, 1)
    st_ = quantize_scaled(np.zeros(0, np.float32), E4M3, JustInTime())
    assert st_.codes.shape == (0,) and int(st_.bias) == 31


def test_scaled_tensor_global_scale_is_applied_after_the_block_scale():
    """Two-level scaling (NVFP4): value = dequantize(code) * block scale * global scale, one rounding."""
    c = np.full((2, 16), 0x38, np.uint8)                    # E4M3 1.0
    scale = np.array([[3.0], [0.5]], np.float32)
    st_ = ScaledTensor(c, E4M3, scale, block=(1, 16), granularity="block", global_scale=1 / 3)
    assert isinstance(st_.global_scale, np.float32)
    g = np.float64(np.float32(1 / 3))
    want = np.float32(np.repeat(scale.astype(np.float64) * g, 16, axis=1))
    np.testing.assert_array_equal(st_.dequantize(), want)
    assert ScaledTensor(c, E4M3, scale, block=(1, 16), granularity="block").global_scale is None
    for bad in ("x", [1.0, 2.0], True):
        with pytest.raises(ValueError, match="global_scale"):
            ScaledTensor(c, E4M3, scale, block=(1, 16), granularity="block", global_scale=bad)
