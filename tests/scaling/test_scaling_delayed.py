"""Delayed (TransformerEngine DelayedScaling): state sequences against a plain-Python transcription of
TE's ``amax_and_scale_update`` kernels (common/recipe/delayed_scaling.cu)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fp8ref import E4M3, E5M2, Delayed, quantize, quantize_scaled
from fp8ref.scaling import DelayedState

FLT_MAX = np.float32(np.finfo(np.float32).max)


def fmaxf(a, b):
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a if a > b else b


def te_update(hist, scale, fp8_max, margin, algo, bulk):
    """One update, transcribed loop by loop from TE. ``bulk`` is kernel_bulk (the PyTorch path:
    ``amax_and_scale_update_after_reduction``), else the standalone kernel."""
    length = len(hist)
    scaled_max = np.float32(fp8_max) * np.float32(2.0 ** -margin)
    last_amax = hist[0]
    amax = np.float32(0)
    new = list(hist)
    if (not bulk) or last_amax != 0:
        for i in range(length):
            a = hist[i + 1] if i < length - 1 else last_amax
            amax = fmaxf(amax, a)
            new[i] = a if i > 0 else np.float32(0)
    if algo == "most_recent":
        amax = last_amax
    if math.isfinite(amax) and amax > 0:
        with np.errstate(over="ignore", divide="ignore"):
            new_scale = np.float32(scaled_max / np.float32(amax))
    else:
        new_scale = scale
    if math.isinf(new_scale):
        new_scale = FLT_MAX
    return new, new_scale


def te_cast_amax(x):
    """TE's cast kernels: amax = fmaxf(amax, fabsf(x)) from 0 (NaN ignored)."""
    m = np.float32(0)
    for v in np.asarray(x, dtype=np.float32).reshape(-1):
        m = fmaxf(m, abs(v))
    return np.float32(m)


def _amax_sequence(rng, n):
    """Step amaxes with zeros, +Inf, NaN elements, tiny (scale overflows to FLT_MAX) and huge values."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.12:
            out.append(0.0)
        elif r < 0.2:
            out.append(math.inf)
        elif r < 0.25:
            out.append(1e-44)  # 448 / 1e-44 overflows float32
        elif r < 0.3:
            out.append("nan")
        else:
            out.append(float(np.float32(10.0 ** rng.uniform(-8, 8))))
    return out


def _tensor_with_amax(a, rng):
    if a == "nan":
        return np.array([np.nan, 3.0, -2.0], dtype=np.float32)
    x = np.zeros(7, np.float32)
    if math.isfinite(a) and a > 0:
        x = (rng.standard_normal(7) * a / 8).astype(np.float32)
    x = np.clip(x, -a, a).astype(np.float32) if math.isfinite(a) else x
    x[3] = -a
    return x


@pytest.mark.parametrize("length", [1, 2, 5])
@pytest.mark.parametrize("algo", ["max", "most_recent"])
@pytest.mark.parametrize("bulk", [True, False])
@pytest.mark.parametrize("fmt,margin", [(E4M3, 0), (E5M2, 2)])
def test_state_sequence_matches_te(length, algo, bulk, fmt, margin):
    rng = np.random.default_rng(length * 7 + (algo == "max") + 2 * bulk + margin)
    recipe = Delayed(history_len=length, algo=algo, margin=margin, roll_zero_amax=not bulk)
    hist = [np.float32(0)] * length
    scale = np.float32(1)
    state = None
    for step, a in enumerate(_amax_sequence(rng, 150)):
        x = _tensor_with_amax(a, rng)
        st = quantize_scaled(x, fmt, recipe, state=state)
        # the cast used the previous scale, and its dequantisation multiplier is 1/scale in float32
        with np.errstate(over="ignore"):
            want_codes = quantize((x * scale).astype(np.float32), fmt)
        assert np.array_equal(st.codes, want_codes), step
        assert st.quant_scale == scale
        assert st.scale == np.float32(np.float32(1) / scale)
        # the cast wrote its amax into history[0]; then TE updated
        hist[0] = te_cast_amax(x)
        hist, scale = te_update(hist, scale, fmt.max, margin, algo, bulk)
        state = st.state
        assert isinstance(state, DelayedState)
        want_hist = np.array(hist, np.float32).view(np.uint32).tolist()
        assert state.amax_history.view(np.uint32).tolist() == want_hist
        assert state.scale.view(np.uint32) == np.float32(scale).view(np.uint32), step


def test_hand_worked_sequence():
    r = Delayed(history_len=3, algo="max")
    ones = np.ones(4, np.float32)
    st1 = quantize_scaled(ones * 2, E4M3, r)  # history [2,0,0] -> rolled [0,0,2]; scale 448/2
    assert st1.state.amax_history.tolist() == [0, 0, 2]
    assert st1.state.scale == 224 and st1.quant_scale == 1
    st2 = quantize_scaled(ones * 7, E4M3, r, state=st1.state)  # [7,0,2] -> [0,2,7]; 448/7 = 64
    assert st2.state.amax_history.tolist() == [0, 2, 7] and st2.state.scale == 64
    assert np.all(st2.codes == quantize(np.float32(7 * 224), E4M3))  # cast with the old scale: saturates
    st3 = quantize_scaled(ones * 0, E4M3, r, state=st2.state)  # zero amax: history and scale kept
    assert st3.state == st2.state
    st4 = quantize_scaled(ones * 1, E4M3, r, state=st3.state)  # [1,2,7] -> [0,7,1]; max 7
    assert st4.state.amax_history.tolist() == [0, 7, 1] and st4.state.scale == 64
    st5 = quantize_scaled(np.array([np.inf], np.float32), E4M3, r, state=st4.state)  # Inf: kept scale
    assert st5.state.amax_history.tolist() == [0, 1, np.inf] and st5.state.scale == 64
    r_mr = Delayed(history_len=3, algo="most_recent")
    st6 = quantize_scaled(ones * 0.5, E4M3, r_mr, state=st5.state)
    assert st6.state.scale == 896


def test_margin_and_flt_max():
    st = quantize_scaled(np.float32([1.0]), E4M3, Delayed(history_len=1, margin=3))
    assert st.state.scale == 56  # 448 / 2**3
    st = quantize_scaled(np.float32([1e-44]), E4M3, Delayed(history_len=1))
    assert st.state.scale == FLT_MAX
    assert st.state.scale_inv == np.float32(1) / FLT_MAX


def test_state_validation():
    r = Delayed(history_len=4)
    with pytest.raises(ValueError, match="history_len"):
        quantize_scaled(np.ones(2, np.float32), E4M3, r, state=Delayed(history_len=3).initial_state())
    with pytest.raises(ValueError, match="state"):
        quantize_scaled(np.ones(2, np.float32), E4M3, r, state=1.0)
    with pytest.raises(ValueError, match="history_len"):
        Delayed(history_len=-1)
    with pytest.raises(ValueError, match="algo"):
        Delayed(algo="mean")
    with pytest.raises(ValueError, match="scale"):
        DelayedState(np.zeros(3), scale=0.0)


@pytest.mark.parametrize(("history", "match"), [
    (np.zeros((2, 3), np.float32), r"amax_history must be 1-D .*got shape \(2, 3\)"),
    (np.float32(1.0), r"amax_history must be 1-D .*got shape \(\)"),
    (np.array(["1.0", "2.0"]), "amax_history must be a 1-D array of floats, got dtype <U3"),
    ("1.0", "amax_history must be a 1-D array of floats, got str"),
    (np.array([True, False]), "amax_history must be a 1-D array of floats, got dtype bool"),
    (np.zeros(0, np.float32), "amax_history must hold at least one entry"),
])
def test_state_history_must_be_one_dimensional(history, match):
    """A 2-D history was flattened silently into one of 6 entries."""
    with pytest.raises(ValueError, match=match):
        DelayedState(history, np.float32(1.0))


@pytest.mark.parametrize("scale", ["2.0", True, np.array([2.0]), None, 1 + 1j])
def test_state_scale_must_be_a_real_scalar(scale):
    with pytest.raises(ValueError, match="scale must be a positive finite float32"):
        DelayedState(np.zeros(3, np.float32), scale)


def test_state_is_immutable_and_copied():
    h = np.zeros(3, np.float32)
    s = DelayedState(h, np.float32(2))
    h[0] = 5
    assert s.amax_history[0] == 0
    with pytest.raises(ValueError):
        s.amax_history[0] = 1


@pytest.mark.parametrize("algo", ["max", "most_recent"])
@pytest.mark.parametrize("bulk", [True, False])
def test_nan_in_a_given_history(algo, bulk):
    """A checkpointed history may hold NaN: the max reduction skips it (fmaxf), most_recent keeps the
    previous scale."""
    for hist in ([np.nan, 2.0, 8.0], [0.0, np.nan, 8.0], [0.0, np.nan, np.nan]):
        h = [np.float32(v) for v in hist]
        state = DelayedState(np.array(h, np.float32), np.float32(3.0))
        recipe = Delayed(history_len=3, algo=algo, roll_zero_amax=not bulk)
        x = np.float32([np.nan]) if math.isnan(hist[0]) else np.float32([hist[0]])
        st = quantize_scaled(x, E4M3, recipe, state=state)
        want_h, want_s = te_update([te_cast_amax(x)] + h[1:], np.float32(3.0), E4M3.max, 0, algo, bulk)
        assert st.state.scale == want_s
        assert np.array_equal(st.state.amax_history, np.array(want_h, np.float32), equal_nan=True)
