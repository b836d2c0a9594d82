"""Stochastic rounding: argument checks, Philox bits, reproducibility across threads, unbiasedness."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import fp8ref
from fp8ref.cast import philox
from fp8ref.cast.oracle import STOCHASTIC_MODES, round_exact

X = np.linspace(-3, 3, 37, dtype=np.float32)


# ---- arguments ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kw", "match"), [
    ({}, "needs random bits"),
    ({"srbits": np.zeros(37, np.int64)}, "srnumbits .* is required"),
    ({"srbits": np.zeros(37, np.int64), "srnumbits": 0}, "srnumbits must be in 1..32"),
    ({"srbits": np.zeros(37, np.int64), "srnumbits": 33}, "srnumbits must be in 1..32"),
    ({"seed": 1, "srnumbits": 40}, "srnumbits must be in 1..32"),
    ({"srbits": np.full(37, 16), "srnumbits": 4}, r"srbits must lie in \[0, 2\*\*srnumbits\)"),
    ({"srbits": np.full(37, -1), "srnumbits": 4}, r"srbits must lie in"),
    ({"srbits": np.zeros(5, np.int64), "srnumbits": 4}, "does not broadcast"),
    ({"srbits": np.zeros(37, np.int64), "srnumbits": 4, "seed": 3}, "either srbits .* or seed"),
    ({"seed": -1}, r"seed must be in \[0, 2\*\*64\)"),
    ({"seed": 2**64}, r"seed must be in \[0, 2\*\*64\)"),
])
def test_bad_stochastic_arguments(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fp8ref.quantize(X, "E4M3", rounding="stochastic", **kw)


def test_stochastic_arguments_with_deterministic_mode() -> None:
    for kw in ({"seed": 1}, {"srbits": np.zeros(37, np.int64), "srnumbits": 4}, {"srnumbits": 4}):
        with pytest.raises(ValueError, match="apply only to the stochastic"):
            fp8ref.quantize(X, "E4M3", rounding="nearest_even", **kw)


def test_stochastic_argument_types() -> None:
    with pytest.raises(TypeError, match="srbits must be an integer array"):
        fp8ref.quantize(X, "E4M3", rounding="stochastic", srbits=np.zeros(37), srnumbits=4)
    with pytest.raises(TypeError, match="seed must be an integer"):
        fp8ref.quantize(X, "E4M3", rounding="stochastic", seed=1.5)
    with pytest.raises(TypeError, match="srnumbits must be an integer"):
        fp8ref.quantize(X, "E4M3", rounding="stochastic", seed=1, srnumbits=4.0)


def test_srbits_broadcast() -> None:
    a = fp8ref.quantize(X, "E4M3", rounding="stochastic", srbits=np.int64(5), srnumbits=3)
    b = fp8ref.quantize(X, "E4M3", rounding="stochastic", srbits=np.full(37, 5, np.uint8), srnumbits=3)
    assert np.array_equal(a, b)
    m = X.reshape(1, 37).repeat(4, 0)
    rb = np.arange(4, dtype=np.int64).reshape(4, 1)
    c = fp8ref.quantize(m, "E4M3", rounding="stochastic_fast", srbits=rb, srnumbits=2)
    for i in range(4):
        assert np.array_equal(c[i], fp8ref.quantize(X, "E4M3", rounding="stochastic_fast", srbits=np.int64(i),
                                                    srnumbits=2))


# ---- Philox ----------------------------------------------------------------------------------------
def test_philox_known_answers() -> None:
    """Random123 tests/kat_vectors, the three philox4x32 10 lines."""
    assert philox.philox4x32((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert philox.philox4x32((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2) == (
        0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)
    assert philox.philox4x32((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0)) == (
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)


def test_numba_philox_equals_reference() -> None:
    from fp8ref.cast import kernels

    seed = 0x0123456789ABCDEF
    n = 103
    words = np.empty(n, np.uint32)
    kernels.philox_words(n, seed & 0xFFFFFFFF, seed >> 32, words)
    assert words.tolist() == [philox.random_word(seed, i) for i in range(n)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rounding", STOCHASTIC_MODES)
@pytest.mark.parametrize("r", [1, 7, 32])
def test_seed_means_philox_bits(dtype, rounding: str, r: int) -> None:
    """seed=s is srbits = the top srnumbits bits of Philox word i (documented keying)."""
    seed = 2**40 + 12345
    rng = np.random.default_rng(r)
    x = (rng.standard_normal(4099) * 50).astype(dtype)
    bits = np.array([philox.random_bits(seed, i, r) for i in range(x.size)], dtype=np.int64)
    a = fp8ref.quantize(x, "E4M3", rounding=rounding, seed=seed, srnumbits=r)
    b = fp8ref.quantize(x, "E4M3", rounding=rounding, srbits=bits, srnumbits=r)
    assert np.array_equal(a, b)
    c = fp8ref.quantize(x.reshape(-1, 1), "E4M3", rounding=rounding, seed=seed, srnumbits=r)
    assert np.array_equal(c.reshape(-1), a)  # flat C-order index, whatever the shape


def test_seeded_default_uses_32_bits() -> None:
    x = np.float32(1.0 + 2**-20) * np.ones(8, np.float32)
    bits = np.array([philox.random_word(9, i) for i in range(8)], dtype=np.int64)
    assert np.array_equal(fp8ref.quantize(x, "E4M3", rounding="stochastic", seed=9),
                          fp8ref.quantize(x, "E4M3", rounding="stochastic", srbits=bits, srnumbits=32))


def test_seed_results_do_not_depend_on_threads() -> None:
    code = (
        "import numpy as np, fp8ref\n"
        "x = (np.random.default_rng(0).standard_normal(300_001) * 30).astype(np.float32)\n"
        "h = [fp8ref.quantize(x, 'E5M2', rounding=m, seed=77).tobytes()\n"
        "     for m in fp8ref.cast.STOCHASTIC_MODES]\n"
        "h.append(fp8ref.quantize(x.astype(np.float64), 'E4M3', rounding='stochastic', seed=5).tobytes())\n"
        "import hashlib; print(hashlib.sha256(b''.join(h)).hexdigest())\n"
    )
    out = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        res = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                             text=True)
        out.append(res.stdout.strip())
    assert out[0] == out[1] and len(out[0]) == 64


def test_seeds_differ_and_repeat() -> None:
    x = (np.random.default_rng(1).standard_normal(1000) * 10).astype(np.float32)
    a = fp8ref.quantize(x, "E4M3", rounding="stochastic", seed=1)
    assert np.array_equal(a, fp8ref.quantize(x, "E4M3", rounding="stochastic", seed=1))
    assert not np.array_equal(a, fp8ref.quantize(x, "E4M3", rounding="stochastic", seed=2))


# ---- the three rules -------------------------------------------------------------------------------
def _probability_away(x: float, rounding: str, r: int) -> Fraction:
    """Fraction of the 2**r bit patterns that round x away from zero (E4M3, exact oracle)."""
    lo = round_exact(x, fp8ref.E4M3, "toward_zero")
    away = sum(round_exact(x, fp8ref.E4M3, rounding, True, R, r) != lo for R in range(1 << r))
    return Fraction(away, 1 << r)


@pytest.mark.parametrize("r", [3, 6])
def test_stochastic_is_unbiased_for_exact_fractions(r: int) -> None:
    """``stochastic``: with delta a multiple of 2**-r, P(away) = delta exactly; otherwise |P - delta| is
    at most 2**-(r+1). ``stochastic_fastest`` is floor(delta * 2**r) / 2**r (biased toward zero) and
    ``stochastic_fast`` is (floor(delta * 2**(r+1)) + 1) // 2 / 2**r."""
    ulp = Fraction(1, 8)  # E4M3 ulp in [1, 2)
    for num in range(0, 64):
        delta = Fraction(num, 64)
        x = float(1 + delta * ulp)
        p = _probability_away(x, "stochastic", r)
        if (delta * (1 << r)).denominator == 1:
            assert p == delta
        assert abs(p - delta) <= Fraction(1, 1 << (r + 1))
        assert _probability_away(x, "stochastic_fastest", r) == Fraction(math.floor(delta * (1 << r)), 1 << r)
        f2 = math.floor(delta * (1 << (r + 1)))
        assert _probability_away(x, "stochastic_fast", r) == Fraction((f2 + 1) // 2, 1 << r)


def test_kernel_probabilities_equal_oracle() -> None:
    """Every bit pattern, through the kernels, for values of every delta (float32 and float64 input)."""
    r = 8
    rng = np.random.default_rng(3)
    xs = rng.standard_normal(16) * 40
    R = np.arange(1 << r, dtype=np.int64)
    for dtype in (np.float32, np.float64):
        for v in xs.astype(dtype):
            x = np.full(R.size, v, dtype=dtype)
            for rounding in STOCHASTIC_MODES:
                got = fp8ref.quantize(x, "E4M3", rounding=rounding, srbits=R, srnumbits=r)
                want = [round_exact(float(v), fp8ref.E4M3, rounding, True, int(b), r) for b in R]
                assert got.tolist() == want


def test_stochastic_statistically_unbiased_with_seed() -> None:
    """The mean of many seeded roundings of one value converges to the value (32 random bits)."""
    n = 1 << 18
    for v in (1.0 + 0.3 / 8, -0.0123, 300.0, 3.3e-3):
        x = np.full(n, v, dtype=np.float64)
        q = fp8ref.dequantize(fp8ref.quantize(x, "E4M3", rounding="stochastic", seed=11), "E4M3",
                              dtype=np.float64)
        lo, hi = np.unique(q)[[0, -1]]
        p = (abs(v) - min(abs(lo), abs(hi))) / abs(hi - lo)
        sd = abs(hi - lo) * np.sqrt(p * (1 - p) / n)
        assert abs(q.mean() - v) < 5 * sd
