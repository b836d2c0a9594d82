"""The power-of-two tensorwise path of ``accumulate="exact"`` (docs/matmul.md §2.1) equals the general path
and the oracle bit for bit, and is the path taken for the trainer's products."""

from __future__ import annotations

import numpy as np
import pytest

import fp8ref
import fp8ref.matmul.exact as ex
from fp8ref.matmul.inputs import tables
from fp8ref.matmul.oracle import scaled_mm_oracle

FAST = ex._tensorwise_pow2
PAIRS = [(fp8ref.E4M3, fp8ref.E4M3), (fp8ref.E5M2, fp8ref.E4M3), (fp8ref.E4M3, fp8ref.E5M2),
         (fp8ref.E5M2, fp8ref.E5M2), (fp8ref.E4M3FNUZ, fp8ref.E5M2FNUZ)]


def _finite_codes(rng: np.random.Generator, fmt: fp8ref.Format, shape: tuple[int, int]) -> np.ndarray:
    c = rng.integers(0, 256, shape).astype(np.uint8)
    return np.where(tables(fmt)[3][c], 0, c).astype(np.uint8)


def _both(monkeypatch, a, b, sa, sb, fa, fb) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    taken: list[bool] = []

    def counting(*x):
        r = FAST(*x)
        taken.append(r is not None)
        return r

    monkeypatch.setattr(ex, "_tensorwise_pow2", counting)
    got = fp8ref.scaled_mm(a, b, sa, sb, a_format=fa, b_format=fb)
    monkeypatch.setattr(ex, "_tensorwise_pow2", lambda *x: None)
    general = fp8ref.scaled_mm(a, b, sa, sb, a_format=fa, b_format=fb)
    return got, general, taken


@pytest.mark.parametrize(("fa", "fb"), PAIRS)
@pytest.mark.parametrize("k", [1, 40, 2048])
def test_pow2_tensorwise_equals_general_path(monkeypatch, fa, fb, k) -> None:
    """All finite codes (E5M2 at K = 2048: a plan of several piece products, summed as a double-double) and
    scales from 2^-149 to 2^127: the same float32 bits as the general path's epilogue."""
    rng = np.random.default_rng(k)
    for sa, sb in [(2.0**-149, 2.0**60), (-(2.0**127), 2.0**-30), (0.0078125, -(2.0**-24))]:
        a, b = _finite_codes(rng, fa, (9, k)), _finite_codes(rng, fb, (k, 7))
        got, general, taken = _both(monkeypatch, a, b, np.float32(sa), np.float32(sb), fa, fb)
        assert taken == [True]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), general.view(np.uint32))


def test_pow2_tensorwise_equals_oracle(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    fa, fb = fp8ref.E5M2, fp8ref.E4M3
    a, b = _finite_codes(rng, fa, (6, 300)), _finite_codes(rng, fb, (300, 5))
    sa, sb = np.float32(2.0**-20), np.float32(2.0**-9)
    got, _, taken = _both(monkeypatch, a, b, sa, sb, fa, fb)
    assert taken == [True]
    want = scaled_mm_oracle(a, fa, b, fb, np.full((6, 300), float(sa)), np.full((300, 5), float(sb)), None,
                            None, fp8ref.FP32)
    np.testing.assert_array_equal(got.astype(np.float64), want)


def test_pow2_tensorwise_signed_zero_and_underflow(monkeypatch) -> None:
    """-0 products sum to +0; a tiny negative result keeps its sign after the float32 conversion."""
    fa = fb = fp8ref.E4M3
    neg_zero = np.full((2, 3), 0x80, dtype=np.uint8)
    one = np.full((3, 2), 0x38, dtype=np.uint8)  # 1.0
    got, general, taken = _both(monkeypatch, neg_zero, one, np.float32(1.0), np.float32(1.0), fa, fb)
    assert taken == [True]
    assert not np.signbit(got).any() and not np.signbit(general).any()
    tiny = np.array([[0x81]], dtype=np.uint8)  # -2^-9
    got, general, taken = _both(monkeypatch, tiny, one[:1, :1], np.float32(2.0**-149), np.float32(2.0**-10),
                                fa, fb)
    assert taken == [True]
    assert got[0, 0] == 0.0 and np.signbit(got[0, 0]) and np.signbit(general[0, 0])


def test_other_scales_take_the_general_path(monkeypatch) -> None:
    rng = np.random.default_rng(8)
    a, b = _finite_codes(rng, fp8ref.E4M3, (4, 16)), _finite_codes(rng, fp8ref.E4M3, (16, 3))
    for sa in (np.float32(0.3), np.float32(np.inf)):
        _, _, taken = _both(monkeypatch, a, b, sa, np.float32(1.0), fp8ref.E4M3, fp8ref.E4M3)
        assert taken == [False]
    nan = a.copy()
    nan[0, 0] = 0x7F
    got, general, taken = _both(monkeypatch, nan, b, np.float32(1.0), np.float32(1.0), fp8ref.E4M3,
                                fp8ref.E4M3)
    assert taken == [False] and np.isnan(got[0]).all()


@pytest.mark.parametrize("k", [1500, 4096])
def test_pow2_tensorwise_k_chunks(monkeypatch, k) -> None:
    """E4M3 x E5M2 with the gradient-like E5M2 range of a trained model (log2 ratios 17.8 + 24.8): K is cut
    into exact chunks of 2^10 summed as a double-double, without the plan's pieces."""
    rng = np.random.default_rng(k)
    fa, fb = fp8ref.E4M3, fp8ref.E5M2
    a = _finite_codes(rng, fa, (6, k))
    b = (rng.integers(0, 0x60, (k, 5)) | (rng.integers(0, 2, (k, 5)) << 7)).astype(np.uint8)
    monkeypatch.setattr(ex, "cached_plan", lambda *x: pytest.fail("the K-chunk path builds no plan"))
    got, general, taken = _both(monkeypatch, a, b, np.float32(2.0**-3), np.float32(2.0**-20), fa, fb)
    assert taken == [True]
    np.testing.assert_array_equal(got.view(np.uint32), general.view(np.uint32))
    want = scaled_mm_oracle(a[:2], fa, b[:, :2], fb, np.full((2, k), 2.0**-3), np.full((k, 2), 2.0**-20),
                            None, None, fp8ref.FP32)
    np.testing.assert_array_equal(got[:2, :2].astype(np.float64), want)
