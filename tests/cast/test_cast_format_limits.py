"""Formats at the edges of the accepted ranges (docs/formats.md): every kernel path equals the exact oracle,
and dequantize rounds values beyond float64's range to +-inf / +-0 instead of raising."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from fp8ref.cast import dequantize, quantize
from fp8ref.cast.oracle import ROUNDING_MODES, round_exact
from fp8ref.cast.philox import random_bits
from fp8ref.formats import BIAS_MAX, Format, exmy

# biases that put the whole format above float32's / float64's range, inside it, or below it
_BIASES = (-BIAS_MAX, -1100, -200, -100, 0, 200, 1100, BIAS_MAX)
_SHAPES = ((4, 3, "all_ones"), (5, 2, "ieee"), (4, 3, "fnuz"), (2, 1, "none"), (3, 12, "ieee"))


def _formats() -> list[Format]:
    return [exmy(e, m, bias=b, nan=nan, has_inf=nan == "ieee") for b in _BIASES for e, m, nan in _SHAPES]


def _inputs(dtype: type) -> np.ndarray:
    fi = np.finfo(dtype)
    rng = np.random.default_rng(7)
    e = rng.integers(fi.minexp - fi.nmant, fi.maxexp, 60)
    x = np.ldexp(rng.random(60) + 0.5, e)
    x = np.concatenate([x, [0.0, float(fi.max), float(fi.smallest_subnormal), float(fi.tiny), 1.0, 1.5,
                            np.inf, np.nan]]).astype(dtype)
    return np.concatenate([x, -x])


@pytest.mark.parametrize("f", _formats(), ids=lambda f: f"{f.name}-b{f.bias}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_every_kernel_equals_the_oracle(f: Format, dtype: type) -> None:
    """The nearest-even fast paths rebias exponents with a magic number; for formats whose range leaves
    float32's (float64's) they must give way to the general encoder (a format with emin 201 gave codes
    with the sign bit set for positive float32 input, +Inf gave a finite code when emax > 127)."""
    x = _inputs(dtype)
    if f.nan_code is None:
        x = x[np.isfinite(x)]
    xs = [float(v) for v in x]
    for mode in ROUNDING_MODES[:5]:
        for sat in (True, False):
            try:
                want = [round_exact(v, f, mode, sat) for v in xs]
            except ValueError:  # no NaN in the format: the cast must refuse as well
                with pytest.raises(ValueError, match="no encoding"):
                    quantize(x, f, rounding=mode, saturate=sat)
                continue
            got = quantize(x, f, rounding=mode, saturate=sat)
            assert got.tolist() == want, (mode, sat)
    if f.nan_code is None:
        return
    r = (np.arange(x.size) * 7) % 16
    for mode in ROUNDING_MODES[5:]:
        got = quantize(x, f, rounding=mode, srbits=r, srnumbits=4)
        assert got.tolist() == [round_exact(v, f, mode, True, int(b), 4) for v, b in zip(xs, r, strict=True)]
    got = quantize(x, f, rounding="stochastic", seed=5, srnumbits=8)
    assert got.tolist() == [round_exact(v, f, "stochastic", True, random_bits(5, i, 8), 8)
                            for i, v in enumerate(xs)]


@pytest.mark.parametrize("f", [exmy(11, 4), exmy(4, 3, bias=-1100), exmy(4, 3, bias=1100),
                               exmy(4, 3, bias=-200, nan="all_ones")], ids=lambda f: f"{f.name}-b{f.bias}")
def test_dequantize_rounds_beyond_float64_to_inf_and_zero(f: Format) -> None:
    """``exmy(11, 4)`` raised OverflowError: its top binades lie above float64's maximum."""
    codes = np.arange(f.n_codes, dtype=np.uint8 if f.bits <= 8 else np.uint16)
    for dtype in (np.float64, np.float32):
        got = dequantize(codes, f, dtype=dtype)
        for c in range(0, f.n_codes, max(1, f.n_codes // 512)):
            v = f.decode_exact(c)
            if isinstance(v, float):
                assert math.isnan(got[c]) == math.isnan(v)
                continue
            neg = bool(c & f.sign_mask)
            want = _rounded(v, neg, dtype)
            assert got[c] == want and np.signbit(got[c]) == np.signbit(want), (c, v)
    if f.name == "E11M4":
        assert dequantize(np.array([f.max_code], np.uint16), f, dtype=np.float64)[0] == math.inf


def _rounded(v: Fraction, negative: bool, dtype: type) -> np.floating:
    """The exact value ``v`` rounded once to ``dtype`` (values of these formats have at most 5 significant
    bits, so only the range matters: overflow thresholds ``2**(emax+1) - 2**(emax - p)`` and underflow
    below half the smallest subnormal)."""
    fi = np.finfo(dtype)
    a = abs(v)
    top = Fraction(2) ** (fi.maxexp) - Fraction(2) ** (fi.maxexp - fi.nmant - 2)
    if a >= top:
        r = math.inf
    elif a <= Fraction(float(fi.smallest_subnormal)) / 2:
        r = 0.0
    else:
        r = float(a)
    return dtype(-r if negative else r)
