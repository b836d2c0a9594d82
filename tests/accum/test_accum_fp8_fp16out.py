"""FP8 inputs with fp16 output on H100/H200/B200 (mma.sync m16n8k32 .f16): two k16 fp16 block FMAs over
the pairs k = 4j, 4j+1, then k = 4j+2, 4j+3, chained from 0; c added last (docs/accumulation.md §2.3, §5)."""

from __future__ import annotations

import numpy as np
import pytest

from fp8ref import accum
from fp8ref.accum import hwcheck
from fp8ref.accum.presets import K32_PAIRS_ORDER
from fp8ref.formats import E4M3, E5M2, FP16

from .helpers import finite_values

P = np.ldexp


@pytest.mark.parametrize("gpu", ["H100", "H200", "B200"])
@pytest.mark.parametrize("fmt", ["E4M3", "E5M2"])
def test_fp8_fp16_row(gpu, fmt):
    m = accum.tensor_core(gpu, fmt, "fp16", instruction="mma")
    assert (m.nfma, m.frac_bits, m.out_frac_bits, m.rounding, m.e_floor) == (16, 25, 10, "rne", -21)
    assert m.c_mode == "last" and m.k_order == K32_PAIRS_ORDER and m.confirmed
    assert K32_PAIRS_ORDER[:6] == (0, 1, 4, 5, 8, 9) and K32_PAIRS_ORDER[16:20] == (2, 3, 6, 7)


def test_pair_order_decides_the_first_rounding():
    m = accum.tensor_core("H100", "E4M3", "fp16", instruction="mma")
    a = np.zeros(32)
    b = np.zeros(32)
    a[0] = b[0] = 1.0
    a[1:4] = b[1:4] = P(1, -6)  # three products 2^-12
    # block 1 = {k0, k1}: 1 + 2^-12 -> 1; block 2 = {k2, k3}: 1 + 2^-11 (a tie) -> 1
    for f in (m.dot, m.dot_exact):
        assert f(a, b) == 1.0
    natural = accum.BlockFMA(16, 25, 10, "rne", -21, in_format=E4M3, out_format=FP16, c_mode="last")
    # {k0..k3} in one block: 1 + 0.75 ulp
    assert natural.dot(a, b) == natural.dot_exact(a, b) == 1 + P(1, -10)


def test_c_is_added_after_the_chain():
    m = accum.tensor_core("B200", "E4M3", "fp16", instruction="mma")
    a = np.zeros(32)
    b = np.zeros(32)
    a[0], b[0] = P(1, -6), P(1, -5)  # 2^-11 in block 1
    a[2], b[2] = P(1, -6), P(1, -5)  # 2^-11 in block 2
    for f in (m.dot, m.dot_exact):
        assert f(a, b, 1.0) == 1 + P(1, -10)  # 2^-11 + 2^-11 = 2^-10, then 1 + 2^-10 exactly
    aligned = accum.BlockFMA(16, 25, 10, "rne", -21, in_format=E4M3, out_format=FP16, k_order=K32_PAIRS_ORDER)
    assert aligned.dot(a, b, 1.0) == aligned.dot_exact(a, b, 1.0) == 1.0  # 1 + 2^-11 is a tie, twice
    assert m.dot(a, b, -0.0) == P(1, -10)
    assert m.dot(np.zeros(32), np.zeros(32), -0.0) == 0.0 and np.signbit(m.dot(a * 0, b, -0.0)) == np.False_


def _rand(rng, fmt, shape):
    v = finite_values(fmt)
    return rng.choice(v[np.abs(v) <= 64], size=shape)


@pytest.mark.parametrize("k", [7, 32, 40, 64])
def test_fast_paths_equal_the_oracle(k):
    rng = np.random.default_rng(k)
    m = accum.tensor_core("H200", "E4M3", "fp16", instruction="mma").for_inputs(E4M3, E5M2)
    A = _rand(rng, E4M3, (6, k))
    B = _rand(rng, E5M2, (k, 5))
    C = rng.standard_normal((6, 5)).astype(np.float16).astype(np.float64)
    G = m.gemm(A, B, C)
    D = m.dots(A, np.ascontiguousarray(B.T[:1].repeat(6, 0)), C[:, 0])
    for i in range(6):
        assert D[i] == G[i, 0]
        for j in range(5):
            assert G[i, j] == m.dot_exact(A[i], B[:, j], C[i, j]), (i, j)


def test_k_order_rules():
    m = accum.BlockFMA(4, 13, k_order=[1, 0])
    assert m.k_order == (1, 0) and list(m.k_permutation(5)) == [1, 0, 3, 2, 4]
    assert list(accum.BlockFMA(4, 13, k_order=(2, 0, 1)).k_permutation(5)) == [2, 0, 1, 3, 4]
    for bad in ((0, 0), (), (1, 2), ("x",)):
        with pytest.raises(ValueError, match="k_order"):
            accum.BlockFMA(4, 13, k_order=bad)
    with pytest.raises(ValueError, match="inner"):
        accum.Promoted(accum.tensor_core("H100", "E4M3", "fp16", instruction="mma"), 128)


def test_oracle_reproduces_measured_lines(hwdata_dir):
    for gpu in ("H100", "H200", "B200"):
        for fmt in ("E4M3", "E5M2"):
            A, B, c, d = hwcheck.load_set(hwdata_dir / gpu / fmt, gpu, fmt, "fp16")
            c16 = c.astype(np.float16).astype(np.float64)
            m = accum.tensor_core(gpu, fmt, "fp16", instruction="mma")
            for i in range(40):
                assert m.dot_exact(A[i], B[i], c16[i]) == d[i], (gpu, fmt, i)
