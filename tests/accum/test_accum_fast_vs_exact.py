"""The Numba kernels equal the slow exact implementation of the same rule (the specification)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fp8ref import accum

from .helpers import all_models, random_vectors, same

MODELS = all_models()
EXTRA = [
    ("promoted-every-64-fp16out", accum.Promoted(accum.tensor_core("Ada", "E4M3", "fp16"), every=64)),
    ("promoted-every-48-bf16acc",
     accum.Promoted(accum.tensor_core("Ada", "E5M2"), every=48, acc_format="bf16")),
    ("promoted-b200-every-64", accum.Promoted(accum.tensor_core("B200", "E4M3"), every=64)),
    ("blockfma-rne-floor-none", accum.BlockFMA(8, 20, 18, "rne", None, in_format="E5M2")),
    ("blockfma-mixed", accum.BlockFMA(4, 16, 23, "rz", -126, in_format="E4M3", in_format_b="E5M2")),
    ("seq-fp32-e5m2", accum.Sequential("fp32", in_format="E5M2")),
    ("seq-fp16-bf16in", accum.Sequential("fp16", in_format="bf16")),
    ("exact-bf16-out", accum.Exact("bf16", in_format="E5M2")),
    ("exact-fp32-bf16in", accum.Exact("fp32", in_format="bf16")),
]


def _check(model, A, B, c, label):
    if hasattr(model, "dots"):
        fast = model.dots(A, B, c)
    else:
        fast = np.array([model.dot(A[i], B[i], c[i]) for i in range(len(A))])
    for i in range(len(A)):
        ref = model.dot_exact(A[i], B[i], c[i])
        assert same(fast[i], ref), (label, i, A[i].tolist(), B[i].tolist(), c[i], fast[i], ref)


@pytest.mark.parametrize("name,model", MODELS + EXTRA, ids=[n for n, _ in MODELS + EXTRA])
def test_fast_equals_exact_random(name, model):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    nf = getattr(model, "nfma", getattr(getattr(model, "inner", None), "nfma", 8))
    for K, narrow in ((3, True), (2 * nf + 3, True), (40, False)):
        A, B, c = random_vectors(rng, model, 12, K, narrow=narrow)
        _check(model, A, B, c, name)


@pytest.mark.parametrize("name,model", MODELS + EXTRA, ids=[n for n, _ in MODELS + EXTRA])
def test_fast_equals_exact_specials(name, model):
    rng = np.random.default_rng(1 + zlib.crc32(name.encode()))
    A, B, c = random_vectors(rng, model, 12, 37, specials=True)
    _check(model, A, B, c, name)


@given(st.data())
@settings(max_examples=150)
def test_fast_equals_exact_hypothesis(data):
    name, model = data.draw(st.sampled_from(MODELS + EXTRA))
    seed = data.draw(st.integers(0, 2**32 - 1))
    K = data.draw(st.integers(1, 80))
    narrow = data.draw(st.booleans())
    specials = data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    A, B, c = random_vectors(rng, model, 2, K, narrow=narrow, specials=specials)
    _check(model, A, B, c, name)


@pytest.mark.parametrize("name", ["h100-fp8", "h100-fp8-fastaccum", "fp32", "fp16", "bf16", "exact",
                                  "b200-fp8", "b200-fp8-mma", "rtx5090-fp8", "h100-fp8-wgmma-fp16"])
def test_gemm_equals_dot_exact(name):
    model = accum.get(name)
    rng = np.random.default_rng(5)
    A, _, _ = random_vectors(rng, model, 7, 300, narrow=False)
    _, Bt, _ = random_vectors(rng, model, 5, 300, narrow=False)
    C = np.zeros((7, 5))
    C[0] = [1.5, -2.0, 0.0, 3.25, -0.0]
    G = model.gemm(A, Bt.T, C)
    assert G.shape == (7, 5)
    for i in range(7):
        for j in range(5):
            assert same(G[i, j], model.dot_exact(A[i], Bt[j], C[i, j])), (name, i, j)


def test_gemm_parallel_path_equals_serial():
    model = accum.get("h100-fp8")
    rng = np.random.default_rng(11)
    A, _, _ = random_vectors(rng, model, 64, 256, narrow=False)
    _, Bt, _ = random_vectors(rng, model, 48, 256, narrow=False)
    big = model.gemm(A, Bt.T)  # 64*256*48 work: the parallel kernel
    for i in range(0, 64, 9):
        row = model.gemm(A[i:i + 1], Bt.T)  # serial kernel
        assert np.array_equal(big[i], row[0])


@pytest.mark.parametrize("name,model", MODELS + EXTRA, ids=[n for n, _ in MODELS + EXTRA])
def test_gemm_kernel_equals_row_kernel(name, model):
    """The tiled GEMM kernel equals the row-wise kernel (itself tested against the oracle) element by element,
    on wide-range values (subnormal and overflowing outputs), specials and accumulator inputs."""
    rng = np.random.default_rng(zlib.crc32(name.encode()) + 7)
    for K, narrow, specials in ((70, False, False), (33, True, False), (40, False, True)):
        A, _, c = random_vectors(rng, model, 9, K, narrow=narrow, specials=specials)
        _, Bt, _ = random_vectors(rng, model, 37, K, narrow=narrow, specials=specials)
        C = np.resize(c, (9, 37))
        G = model.gemm(A, Bt.T, C)
        if not hasattr(model, "dots"):
            continue
        for j in range(37):
            col = model.dots(A, np.repeat(Bt[j][None, :], 9, axis=0), C[:, j])
            for i in range(9):
                assert same(G[i, j], col[i]), (name, i, j, G[i, j], col[i])


SEQ = [("fp32", accum.get("fp32")), ("fp16", accum.get("fp16")), ("bf16", accum.get("bf16")),
       ("seq-fp32-e5m2", accum.Sequential("fp32", in_format="E5M2")),
       ("seq-bf16-e5m2", accum.Sequential("bf16", in_format="E5M2")),
       ("seq-fp32-fp16", accum.Sequential("fp32", in_format="fp16")),
       ("seq-fp16-e5m2", accum.Sequential("fp16", in_format="E5M2"))]


@pytest.mark.parametrize("name,model", SEQ, ids=[n for n, _ in SEQ])
def test_sequential_gemm_equals_exact(name, model):
    """Both sequential GEMM kernels (vectorised float64-sum path where §6 allows it, TwoSum path otherwise)
    equal the exact oracle, including overflow, underflow, specials and signed zeros."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for narrow, specials in ((False, False), (True, False), (False, True)):
        A, _, c = random_vectors(rng, model, 6, 40, narrow=narrow, specials=specials)
        _, Bt, _ = random_vectors(rng, model, 9, 40, narrow=narrow, specials=specials)
        C = np.resize(c, (6, 9))
        G = model.gemm(A, Bt.T, C)
        for i in range(6):
            for j in range(9):
                assert same(G[i, j], model.dot_exact(A[i], Bt[j], C[i, j])), (name, i, j)
