"""Block-scaled instructions (kind::mxf8f6f4, kind::mxf4nvf4) and the instruction resolution of
``tensor_core``: the fast kernels equal the exact oracle, the rules of docs/accumulation.md §4.2 on
hand-derived probes, and the errors of bad input."""

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import numpy as np
import pytest

from fp8ref import accum
from fp8ref.formats import E4M3, E5M2, E8M0

from .helpers import random_vectors, same, scaled_models

SCALED = scaled_models()
P = math.ldexp


def _scales(rng: np.random.Generator, model, shape: tuple[int, ...], *, specials: bool) -> np.ndarray:
    if model.scale_format == E8M0:
        s = np.ldexp(1.0, rng.integers(-20, 21, size=shape))
        s[rng.random(shape) < 0.05] = P(1, 127)
        s[rng.random(shape) < 0.05] = P(1, -127)
    else:
        v = E4M3.values()
        s = rng.choice(v[np.isfinite(v)], size=shape)  # signs, zeros and subnormals included
    if specials:
        s[rng.random(shape) < 0.05] = np.nan
    return s


@pytest.mark.parametrize("name,model", SCALED, ids=[n for n, _ in SCALED])
@pytest.mark.parametrize("specials", [False, True])
def test_gemm_equals_exact_oracle(name, model, specials):
    rng = np.random.default_rng(zlib.crc32(name.encode()) + specials)
    for K in (5, model.k, 2 * model.k + 17):
        M, N = 4, 3
        A, _, _ = random_vectors(rng, model, M, K, narrow=bool(K % 2))
        Bt, _, c = random_vectors(rng, model, N, K, narrow=False)
        nb = -(-K // model.block_size)
        sa = _scales(rng, model, (M, nb), specials=specials)
        sb = _scales(rng, model, (nb, N), specials=specials)
        C = np.resize(c, (M, N))
        if specials:
            C[0, 0] = np.inf
            C[1, 1] = np.nan
        G = model.gemm(A, Bt.T, C, scale_a=sa, scale_b=sb)
        for i in range(M):
            for j in range(N):
                ref = model.dot_exact(A[i], Bt[j], C[i, j], scale_a=sa[i], scale_b=sb[:, j])
                assert same(G[i, j], ref), (name, K, i, j, G[i, j], ref)
                if i == j == 0:
                    got = model.dot(A[i], Bt[j], C[i, j], scale_a=sa[i], scale_b=sb[:, j])
                    assert same(got, ref)


MX8 = accum.tensor_core("B200", "E4M3", block_size=32)
NV4 = accum.tensor_core("B200", "E2M1", block_size=16, scale_format="E4M3")
MX4 = accum.tensor_core("RTX5090", "E2M1", block_size=32, scale_format="E8M0")


@pytest.mark.parametrize("model", [MX8, MX8.for_inputs(E4M3, E5M2)])
def test_mxf8f6f4_scale_exponents_join_the_product_exponent(model):
    one = [1.0]
    # F = 25 below the product's exponent 0, c truncated toward zero, then RZ to fp32
    assert model.dot(one, one, -P(1, -26), scale_a=[1.0], scale_b=[1.0]) == 1.0
    assert model.dot(one, one, -P(1, -25), scale_a=[1.0], scale_b=[1.0]) == 1 - P(1, -24)
    # scale 2^10: the product's exponent is 10, so c keeps bits down to 2^(10-25) only
    assert model.dot(one, one, -P(1, -16), scale_a=[P(1, 10)], scale_b=[1.0]) == 1024.0
    assert model.dot(one, one, -P(1, -15), scale_a=[P(1, 5)], scale_b=[P(1, 5)]) == 1024 - P(1, -14)
    # the two scales multiply each product exactly, also into the subnormal / huge range
    assert model.dot(one, one, scale_a=[P(1, -127)], scale_b=[P(1, -20)]) == P(1, -147)
    assert model.dot(one, one, scale_a=[P(1, -127)], scale_b=[P(1, -30)]) == 0.0
    assert model.dot(one, one, scale_a=[P(1, 127)], scale_b=[P(1, 1)]) == math.inf
    assert math.isnan(model.dot(one, one, scale_a=[np.nan], scale_b=[1.0]))


def test_mxf4nvf4_groups_align_by_their_scale_exponents():
    a = np.full(16, 6.0)
    # the group sum 576 is not normalised: the group's exponent is that of its scales (0), so c keeps bits
    # down to 2^-35 (a normalised sum, exponent 9, would drop c = -2^-35)
    assert NV4.dot(a, a, -P(1, -35), scale_a=[1.0], scale_b=[1.0]) == 576 - P(1, -14)
    assert NV4.dot(a, a, -P(1, -36), scale_a=[1.0], scale_b=[1.0]) == 576.0
    # each group of 16 is summed exactly before scaling: 36 + 0.25 - 36 keeps the 0.25
    x = np.zeros(16)
    x[:3] = [6.0, 0.5, -6.0]
    assert NV4.dot(x, np.abs(x), scale_a=[1.0], scale_b=[1.0]) == 0.25
    # UE4M3 scales: the sign is ignored; a zero scale silences its group
    assert NV4.dot(a, a, scale_a=[-2.0], scale_b=[0.5]) == 576.0
    assert NV4.dot(a, a, scale_a=[0.0], scale_b=[448.0]) == 0.0
    # block 16: two groups with their own scales; a NaN scale gives NaN
    b = np.ones(32)
    assert NV4.dot(b, b, scale_a=[1.0, 2.0], scale_b=[1.0, 4.0]) == 16 + 16 * 8
    assert math.isnan(NV4.dot(b, b, scale_a=[1.0, np.nan], scale_b=[1.0, 1.0]))


def test_mxf4nvf4_block32_shares_one_scale_between_two_groups():
    b = np.ones(64)
    assert MX4.dot(b, b, scale_a=[2.0, 4.0], scale_b=[1.0, 1.0]) == 32 * 2 + 32 * 4
    # a zero group still enters the alignment with its scales' exponent (MMA-Sim): group 2 has scale 2^40,
    # so the tiny group 1 (sum 16, exponent 0) keeps bits down to 2^(40-35) only and is dropped
    z = np.ones(64)
    z[32:] = 0.0
    assert MX4.dot(z, b, scale_a=[1.0, P(1, 40)], scale_b=[1.0, 1.0]) == 0.0
    assert MX4.dot(z, b, scale_a=[1.0, P(1, 30)], scale_b=[1.0, 1.0]) == 32.0


def test_default_instructions_and_measured_paths():
    assert accum.instructions("H100") == ("mma", "wgmma")
    assert accum.instructions("b200") == ("mma", "tcgen05")
    assert accum.instructions("T4") == ("mma",)
    # B200 FP8: tcgen05 (default) aligns c with the products; the measured mma path adds c afterwards
    tc, mma = accum.tensor_core("B200", "E4M3"), accum.tensor_core("B200", "E4M3", instruction="mma")
    assert (tc.c_mode, mma.c_mode) == ("aligned", "separate")
    assert tc.dot([P(1, -9)], [P(1, -9)], 128.0) == 128.0
    # c = 1 - 2^-24 and one product 1: aligned, 2 - 2^-24 rounds toward zero; separate, the fp32 RNE
    # addition of c ties to even
    c = 1 - P(1, -24)
    assert tc.dot([1.0], [1.0], c) == 2 - P(1, -23) and mma.dot([1.0], [1.0], c) == 2.0
    # H100 FP8 -> fp16: wgmma (default, F = 13) differs from the measured mma.sync path (F = 25, c last)
    wg, ms = accum.tensor_core("H100", "E4M3", "fp16"), accum.tensor_core("H100", "E4M3", "fp16",
                                                                         instruction="mma")
    # 2 + 2^-10 (a tie of fp16) + 2^-14 in one block: F = 25 keeps 2^-14 and rounds up, F = 13 (below the
    # exponent 1) truncates it and the tie goes to even
    x = [2.0, P(1, -5), 0.0, 0.0, P(1, -7)]
    y = [1.0, P(1, -5), 0.0, 0.0, P(1, -7)]
    assert wg.dot(x, y) == 2.0 and ms.dot(x, y) == 2 + P(1, -9)
    assert (wg.nfma, wg.frac_bits, ms.nfma, ms.frac_bits) == (32, 13, 16, 25)
    # sm_120 and T4
    r = accum.tensor_core("RTX5090", "E2M1")
    assert (r.nfma, r.frac_bits, r.rounding, r.c_mode) == (32, 25, "rz", "aligned")
    t4 = accum.tensor_core("t4", "fp16", "fp16")
    assert (t4.nfma, t4.frac_bits, t4.out_frac_bits, t4.rounding) == (8, 24, 10, "rne")


@pytest.mark.parametrize("kwargs,match", [
    (dict(gpu="H100", instruction="mfma"),
     "instruction: H100 has no 'mfma' instruction; valid for H100: mma, wgmma"),
    (dict(gpu="H100", instruction="tcgen05"), "valid for H100: mma, wgmma"),
    (dict(gpu="B200", instruction="xmma"), "instruction: unknown instruction 'xmma'; valid: mma, wgmma"),
    (dict(gpu="B200", block_size=64), "block_size/scale_format: .*takes block_size=32 scale_format=E8M0"),
    (dict(gpu="B200", fmt="E2M1", block_size=32, scale_format="E4M3"), "block_size=16 scale_format=E4M3"),
    (dict(gpu="H100", block_size=32), "H100 wgmma has no block-scaled instruction; .*B200 tcgen05"),
    (dict(gpu="B200", scale_format="fp16"), "scale_format: FP16 is no block-scale format; valid: E8M0"),
    (dict(gpu="B200", out="fp16", block_size=32), "out_format: block-scaled instructions accumulate in fp32"),
    (dict(gpu="A100", fmt="E4M3"), "in_format: A100 mma takes fp16, bf16, tf32, fp64 inputs, not E4M3"),
    (dict(gpu="H100", instruction="mma"), "out_format: H100 mma has no model for E4M3 inputs with fp32"),
    (dict(gpu="P100"), "gpu: unknown gpu 'P100'; valid: V100, T4"),
])
def test_tensor_core_bad_arguments(kwargs, match):
    gpu = kwargs.pop("gpu")
    fmt = kwargs.pop("fmt", "E4M3")
    out = kwargs.pop("out", "fp32")
    with pytest.raises(ValueError, match=match):
        accum.tensor_core(gpu, fmt, out, **kwargs)


def test_scale_arguments_are_checked():
    one = np.ones(32)
    with pytest.raises(ValueError, match=r"scale_a: .*block-scaled .*pass scale_a of shape \(1,\)"):
        MX8.dot(one, one)
    with pytest.raises(ValueError, match=r"scale_b must have shape \(2,\)"):
        NV4.dot(one, one, scale_a=[1.0, 1.0], scale_b=[1.0])
    with pytest.raises(ValueError, match=r"scale_a must have shape \(3, 1\)"):
        MX8.gemm(np.ones((3, 32)), np.ones((32, 2)), scale_a=np.ones((1, 3)), scale_b=np.ones((1, 2)))
    with pytest.raises(ValueError, match="not a UE8M0 value"):
        MX8.dot(one, one, scale_a=[0.0], scale_b=[1.0])
    with pytest.raises(ValueError, match="not a value of E8M0"):
        MX8.dot(one, one, scale_a=[3.0], scale_b=[1.0])
    with pytest.raises(ValueError, match="not a value of E4M3"):
        NV4.dot(one, one, scale_a=[1.0, 0.3], scale_b=[1.0, 1.0])
    with pytest.raises(ValueError, match="scale_a: H100-E4M3-fp32 is not a block-scaled instruction"):
        accum.tensor_core("H100", "E4M3").dot(one, one, scale_a=[1.0])
    with pytest.raises(ValueError, match="scale_b: .*takes no scales"):
        accum.get("fp32").gemm(np.ones((1, 1)), np.ones((1, 1)), scale_b=np.ones((1, 1)))
    with pytest.raises(ValueError, match="in_format: kind::mxf4nvf4 takes E2M1, not E4M3"):
        NV4.for_inputs(E4M3, E4M3)
    mixed = MX8.for_inputs(E4M3, "E2M1")
    assert mixed.dot(one, np.full(32, 6.0), scale_a=[1.0], scale_b=[0.5]) == 96.0


@pytest.mark.parametrize("name,model", SCALED, ids=[n for n, _ in SCALED])
def test_infer_scaled_recovers_the_rules(name, model):
    from fp8ref.accum import scaledprobes as sp

    inf = sp.infer_scaled(sp.dot_fn_of(model), model.in_format, model.block_size, model.scale_format)
    assert inf.frac_bits == model.frac_bits and inf.rounding == "toward zero (RZ)"
    assert inf.term_truncation == "toward zero" and inf.c_mode == "aligned with the products"
    assert inf.scales.startswith("group sums" if model.group else "each product's exponent")
    assert inf.k == (model.k if model.scale_format == E8M0 else None)
    assert "cannot be seen" in inf.summary()


@pytest.mark.parametrize("plain,rounding,c_mode", [
    (accum.tensor_core("B200", "E4M3", instruction="mma"), "not determined", "added after the products"),
    (accum.BlockFMA(32, 30, 23, "rne", in_format="E4M3"), "to nearest", "aligned"),
    (accum.BlockFMA(32, 30, 23, "rz", in_format="E4M3"), "toward zero", "aligned"),
])
def test_infer_scaled_tells_other_rules_apart(plain, rounding, c_mode):
    from fp8ref.accum import scaledprobes as sp

    wide = plain.for_inputs("fp32")  # the scaled products are fp32 values

    def box(a, b, c, sa, sb):  # a plain instruction with the block scales folded into its operands
        return wide.dot(a * np.repeat(sa, 32), b * np.repeat(sb, 32), c)

    inf = sp.infer_scaled(box, "E4M3", 32, "E8M0")
    assert inf.rounding.startswith(rounding) and inf.c_mode.startswith(c_mode), inf.summary()


# --------------------------------------------------------------------------------------------------
# zero products in kind::mxf8f6f4: dropped (default) or MMA-Sim's exponent -126 (zero_exponent)
MX8_SIM = replace(MX8, zero_exponent=-126)


def test_zero_products_drop_out_or_take_mmasims_exponent():
    """With large scales a zero element's MMA-Sim exponent (-126 + e(b) + e(sa) + e(sb)) lies far above an
    unscaled c: c = 1 is truncated away (+0); the default drops the zero products and keeps c."""
    zeros, ones = [0.0] * 32, [1.0] * 32
    big = [P(1, 100)]
    assert MX8.dot(zeros, ones, 1.0, scale_a=big, scale_b=big) == 1.0
    assert MX8_SIM.dot(zeros, ones, 1.0, scale_a=big, scale_b=big) == 0.0
    assert MX8_SIM.dot_exact(zeros, ones, 1.0, scale_a=big, scale_b=big) == 0.0
    # -126 + 0 + 70 + 70 = 14: c = 1 keeps its bits above 2^(14-25) = 2^-11
    c = 1 + P(1, -11) + P(1, -12)
    small = [P(1, 70)]
    assert MX8_SIM.dot(zeros, ones, c, scale_a=small, scale_b=small) == 1 + P(1, -11)
    assert MX8.dot(zeros, ones, c, scale_a=small, scale_b=small) == c
    assert "zero elements at exponent -126" in MX8_SIM.describe()


@pytest.mark.parametrize("model", [MX8_SIM, MX8_SIM.for_inputs(E5M2, E4M3),
                                   replace(accum.tensor_core("RTX5090", "E4M3", block_size=32),
                                           zero_exponent=-126)])
@pytest.mark.parametrize("specials", [False, True])
def test_zero_exponent_kernel_equals_oracle(model, specials):
    rng = np.random.default_rng(17 + specials)
    for K in (7, 32, 81):
        M, N = 5, 4
        A, _, _ = random_vectors(rng, model, M, K, narrow=True)
        _, Bt, c = random_vectors(rng, model, N, K, narrow=False)
        nb = -(-K // model.block_size)
        sa = _scales(rng, model, (M, nb), specials=specials)
        sb = _scales(rng, model, (nb, N), specials=specials)
        sa[0] = P(1, 90)  # a row whose zero elements outrank c
        C = np.resize(c, (M, N))
        G = model.gemm(A, Bt.T, C, scale_a=sa, scale_b=sb)
        for i in range(M):
            for j in range(N):
                ref = model.dot_exact(A[i], Bt[j], C[i, j], scale_a=sa[i], scale_b=sb[:, j])
                assert same(G[i, j], ref), (K, i, j, G[i, j], ref)


def test_zero_exponent_agrees_with_mmasim():
    """MMA-Sim's own mma_block_scale (RTX Blackwell m16n8k32 mxf8f6f4) equals ``zero_exponent=-126`` on
    random operands with zeros, large scales and small c."""
    nv = pytest.importorskip("mmasim.simulator.nv_ptx", reason="MMA-Sim is not importable (github.com/"
                             "microsoft/MMA-Sim, pure Python; put its checkout on PYTHONPATH to run this "
                             "cross-check)")
    sim = nv.mma_block_scale("RTX Blackwell", "m16n8k32.block32.f32.e4m3.e4m3.f32.ue8m0")
    model = replace(accum.tensor_core("RTX5090", "E4M3", block_size=32), zero_exponent=-126)
    rng = np.random.default_rng(23)
    A, B, c = random_vectors(rng, model, 40, 32, narrow=True)
    for i in range(40):
        s = [P(1, int(rng.integers(-40, 90)))], [P(1, int(rng.integers(-40, 90)))]
        got = sim.dotadd_with_block_scale(A[i].tolist(), B[i].tolist(), float(c[i]), *s)
        assert same(got, model.dot(A[i], B[i], c[i], scale_a=s[0], scale_b=s[1])), (i, got)


def test_zero_exponent_bad_values():
    with pytest.raises(ValueError, match="zero_exponent must be None or an int"):
        replace(MX8, zero_exponent=1.5)
    with pytest.raises(ValueError, match="zero_exponent: a grouped kind"):
        replace(NV4, zero_exponent=-126)
