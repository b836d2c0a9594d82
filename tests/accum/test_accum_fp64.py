"""The f64 matrix instructions (NVIDIA mma .f64 from sm_80, AMD's f64 MFMA on CDNA2/3; docs/accumulation.md
§4.3): which GPUs have them, the fp64 FMA chain kernel against the exact oracle on random, adversarial and
special operands, the IEEE rules it must keep, MMA-Sim where it is importable, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fp8ref import accum
from fp8ref.accum import dispatch
from fp8ref.formats import E4M3, FP32, FP64

from .helpers import random_vectors, same

FP64_GPUS = ("A100", "A2", "Ada", "L40S", "H100", "H200", "B200", "RTX5090", "MI250X", "MI300X")
CHAIN = accum.Sequential(FP64, in_format=FP64)


def test_which_gpus_have_fp64_and_their_instruction():
    for g in accum.GPUS:
        if g in FP64_GPUS:
            m = accum.tensor_core(g, "fp64", "fp64")
            assert m == CHAIN and m.out_format == FP64 and m.in_format == FP64
            # H100 / H200 (wgmma) and B200 (tcgen05) have no f64 form: None takes their mma (DMMA)
            ins = "mfma" if g.startswith("MI") else "mma"
            assert m.name in (f"{g}-fp64-fp64", f"{g}-{ins}-fp64-fp64")
            assert accum.tensor_core(g, FP64, FP64, instruction=ins) == m
        else:
            with pytest.raises(ValueError, match="(?i)fp64"):
                accum.tensor_core(g, "fp64", "fp64")
    assert accum.tensor_core("H100", "fp64", "fp64").name == "H100-mma-fp64-fp64"
    assert accum.tensor_core("A100", "fp64", "fp64").name == "A100-fp64-fp64"


def test_unfused_rounding_would_differ():
    """One rounding of the exact a*b + c: (1 + 2**-30)**2 - 1 keeps the 2**-60 bit a product rounded first
    loses."""
    x = 1 + 2.0 ** -30
    want = 2.0 ** -29 + 2.0 ** -60
    assert x * x - 1 != want
    for m in (CHAIN, accum.tensor_core("MI300X", "fp64", "fp64")):
        assert m.dot([x], [x], -1.0) == want and m.dot_exact([x], [x], -1.0) == want


def test_k_order_and_c_first():
    """c enters first, then each product in k order, one rounding each: big + 1 - big is 0 in that order."""
    big = 2.0 ** 53
    assert CHAIN.dot([1.0, 1.0], [big, -big], 1.0) == 0.0  # (1 + 2**53) rounds to 2**53, then - 2**53
    assert CHAIN.dot([1.0, 1.0], [-big, big], 1.0) == 1.0  # 1 - 2**53 is exact, then + 2**53


@pytest.mark.parametrize("a,b,c,want", [
    ([0.0], [math.inf], 1.0, math.nan),  # 0 * Inf
    ([math.inf, 1.0], [1.0, -math.inf], 0.0, math.nan),  # Inf - Inf
    ([-0.0], [1.0], -0.0, -0.0),  # -0 + -0
    ([0.0], [-1.0], 0.0, 0.0),  # -0 + +0
    ([1.0], [-1.0], 1.0, 0.0),  # an exact zero sum is +0
    ([2.0 ** 1000], [2.0 ** 1000], 0.0, math.inf),  # overflow
    ([-(2.0 ** 1000)], [2.0 ** 1000], 1.0, -math.inf),
    ([2.0 ** -600], [2.0 ** -600], 0.0, 0.0),  # underflow to +0
    ([-(2.0 ** -537)], [2.0 ** -537], 0.0, -(2.0 ** -1074)),  # the smallest subnormal, exactly
    ([3 * 2.0 ** -538], [2.0 ** -537], 0.0, 2.0 ** -1073),  # 1.5 ulp: ties to even
    ([math.nan], [1.0], 1.0, math.nan),
    ([1.0], [1.0], math.inf, math.inf),
])
def test_ieee_rules(a, b, c, want):
    for m in (CHAIN, accum.tensor_core("H100", "fp64", "fp64")):
        for got in (m.dot(a, b, c), m.dot_exact(a, b, c)):
            assert same(got, want), (a, b, c, got, want)


@pytest.mark.parametrize("narrow", [True, False])
@pytest.mark.parametrize("specials", [False, True])
def test_gemm_equals_exact_random(narrow, specials):
    rng = np.random.default_rng(11 + narrow + 2 * specials)
    A, B, c = random_vectors(rng, CHAIN, 24, 37, narrow=narrow, specials=specials)
    C = np.tile(c[:, None], (1, 24))
    G = CHAIN.gemm(A, B.T, C)
    for i in range(24):
        for j in range(0, 24, 5):
            assert same(G[i, j], CHAIN.dot_exact(A[i], B[j], C[i, j])), (i, j)


def test_cancellation_probes():
    """Probe-style rows: a large product and its negation around a small one, products straddling the
    accumulator's last bit, c at a rounding midpoint."""
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(50):
        e = int(rng.integers(-200, 200))
        big, small = math.ldexp(1.0 + rng.random(), e), math.ldexp(1.0 + rng.random(), e - 60)
        rows.append(([big, -big, small, 1.0], [1.0, 1.0, 1.0, math.ldexp(1.0, e - 53)], big))
        rows.append(([1.0, 1.0], [math.ldexp(1.0, e - 53), math.ldexp(1.0, e - 54)], math.ldexp(1.0, e)))
    for a, b, c in rows:
        want = CHAIN.dot_exact(a, b, c)
        assert same(CHAIN.dot(a, b, c), want), (a, b, c)


@given(st.lists(st.tuples(st.floats(width=64), st.floats(width=64)), min_size=1, max_size=9),
       st.floats(width=64))
def test_dot_equals_exact_hypothesis(pairs, c):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    assert same(CHAIN.dot(a, b, c), CHAIN.dot_exact(a, b, c))


def test_parallel_kernel_equals_serial_and_oracle():
    rng = np.random.default_rng(9)
    A, B, c = random_vectors(rng, CHAIN, 96, 64, narrow=True)
    Bm = np.ascontiguousarray(B[:80].T)  # (K, N) = (64, 80): 96*64*80 multiply-adds, above SERIAL_WORK
    assert A.size * Bm.shape[1] > dispatch.SERIAL_WORK
    C = np.zeros((96, 80))
    par = CHAIN.gemm(A, Bm, C)
    from fp8ref.accum import tiled
    from fp8ref.accum.params import acc_params

    ser = tiled.SEQUENTIAL[0](A, Bm, C, acc_params(FP64), False, True)
    assert np.array_equal(par, ser, equal_nan=True)
    for i, j in ((0, 0), (95, 79), (40, 17)):
        assert same(par[i, j], CHAIN.dot_exact(A[i], Bm[:, j], 0.0))


def test_small_formats_in_an_fp64_accumulator():
    """Sequential(FP64) also takes the small formats (their products are exact; the FMA rounds once)."""
    m = accum.Sequential(FP64, in_format=E4M3)
    rng = np.random.default_rng(2)
    A, B, c = random_vectors(rng, m, 8, 40, narrow=False)
    for i in range(8):
        assert same(m.dot(A[i], B[i], c[i]), m.dot_exact(A[i], B[i], c[i]))


def test_mmasim_agrees():
    """MMA-Sim's own f64 instructions (NVIDIA mma m8n8k4 .f64 on Ampere, AMD f64 MFMA on CDNA3) agree with
    the chain on random operands."""
    nv = pytest.importorskip("mmasim.simulator.nv_ptx", reason="MMA-Sim is not importable (github.com/"
                             "microsoft/MMA-Sim, pure Python; put its checkout on PYTHONPATH to run this "
                             "cross-check)")
    amd_sim = pytest.importorskip("mmasim.simulator.amd")
    rng = np.random.default_rng(3)
    sims = ((nv.mma("Ampere", "m8n8k4.f64.f64.f64.f64"), accum.tensor_core("A100", "fp64", "fp64")),
            (amd_sim.mfma("CDNA3", "f64_16x16x4_f64"), accum.tensor_core("MI300X", "fp64", "fp64")))
    for sim, model in sims:
        A, B, c = random_vectors(rng, model, 20, sim.k, narrow=True)
        for i in range(20):
            got = sim.dotadd(A[i].tolist(), B[i].tolist(), float(c[i]))
            assert same(got, model.dot(A[i], B[i], c[i])), (A[i].tolist(), B[i].tolist(), c[i], got)


@pytest.mark.parametrize("call,match", [
    (lambda: accum.Sequential(FP32, in_format=FP64), r"in_format=FP64: .*FP64 inputs: Sequential\(FP64"),
    (lambda: accum.Exact(FP64), r"out_format=FP64: .*\(FP64: Sequential\(FP64\)"),
    (lambda: accum.tensor_core("A100", "fp64"), "out_format: A100 mma has no model for fp64 inputs with fp32 "
                                                "output; valid: fp64"),
    (lambda: accum.tensor_core("MI300X", "fp64"), "out_format FP32: .*valid: fp64"),
    (lambda: accum.tensor_core("V100", "fp64", "fp64"), "in_format: V100 mma takes fp16 inputs, not fp64"),
    (lambda: accum.tensor_core("MI100", "fp64", "fp64"), "in_format FP64: MI100 .*take fp32, fp16, bf16"),
    (lambda: accum.tensor_core("H100", "fp64", "fp64", instruction="wgmma"), "H100 wgmma takes .* not fp64"),
    (lambda: accum.tensor_core("A100", "fp16", "fp64"),
     "out_format: A100 mma has no model for fp16 inputs with fp64 output; valid: fp32, fp16"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
