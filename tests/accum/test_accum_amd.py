"""AMD MFMA models (MI100 / MI250X / MI300X, docs/accumulation.md §10): the table, the kernels against the
exact oracle on random and adversarial operands, values derived by hand from MMA-Sim's rules, bad input."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from fp8ref import accum
from fp8ref.accum import amd
from fp8ref.formats import BF16, E4M3FNUZ, E5M2FNUZ, FP16, FP32

from .helpers import random_vectors, same

SPECS = [(g, f) for g in amd.GPUS for f in ("fp32", "fp16", "bf16", "xf32", "E4M3FNUZ", "E5M2FNUZ")
         if f in amd._IN_NAMES[amd.ARCH[g]]]


def _models() -> list[tuple[str, accum.Mfma]]:
    out = [(f"{g}:{f}", accum.tensor_core(g, f)) for g, f in SPECS]
    fp8 = accum.tensor_core("MI300X", "E4M3FNUZ")
    out += [("MI300X:E4M3FNUZxE5M2FNUZ", fp8.for_inputs(E4M3FNUZ, E5M2FNUZ)),
            ("MI300X:E5M2FNUZxE4M3FNUZ", fp8.for_inputs(E5M2FNUZ, E4M3FNUZ)),
            ("MI250X:bf16:group2", accum.Mfma("pairwise", 2, in_format=BF16, flush=True)),
            ("MI300X:fp16:group4", accum.Mfma("fused", 4, in_format=FP16)),
            ("MI300X:bf16:group4", accum.Mfma("fused", 4, in_format=BF16))]
    return out


MODELS = _models()
IDS = [n for n, _ in MODELS]


def _value(fmt, x: float) -> float:
    """``x`` if it is a value of ``fmt`` (else the nearest power of two inside the format's range)."""
    try:
        accum.models.check_representable(np.array([x]), fmt, "x")
        return x
    except ValueError:
        e = min(max(math.floor(math.log2(abs(x))), fmt.emin - fmt.mbits), math.floor(math.log2(fmt.max)))
        return math.copysign(2.0**e, x)


def adversarial(model, K: int = 20) -> list[tuple[list[float], list[float], float]]:
    """Probe-style operand sets: cancellation, wide exponent spread, subnormals, Inf/NaN, signed zeros."""
    fa, fb = model.in_format, model.format_b

    def va(x):
        return _value(fa, x)

    def vb(x):
        return _value(fb, x)

    big_a, big_b = va(fa.max), vb(fb.max)
    tiny_a, tiny_b = va(fa.min_subnormal), vb(fb.min_subnormal)
    one = 1.0
    sets = [
        # massive cancellation: large +x and -x around a small term, at every position parity
        ([big_a, tiny_a, -big_a] + [0.0] * (K - 3), [big_b, tiny_b, big_b] + [0.0] * (K - 3), 0.0),
        ([tiny_a, big_a, va(0.75), -big_a], [tiny_b, big_b, vb(0.5), big_b], -0.0),
        ([va(2.0**k) * (-1) ** k for k in range(K)], [one] * K, 0.0),
        # wide exponent spread
        ([va(2.0 ** (fa.emin - fa.mbits + k * (fa.emax - fa.emin) // K)) for k in range(K)],
         [vb(2.0 ** (fb.emax - k * (fb.emax - fb.emin) // K)) for k in range(K)], 2.0**-100),
        # subnormal operands and accumulator
        ([tiny_a] * K, [tiny_b] * K, 2.0**-140),
        ([va(2.0 ** (fa.emin - 1)), -tiny_a] * (K // 2), [vb(2.0 ** (fb.emin - 1)), tiny_b] * (K // 2),
         -(2.0**-149)),
        # c far above / below the products, round-down of negative values
        ([one] * K, [vb(2.0**-3)] * K, -(2.0**-30)),
        ([va(-1.5), one], [vb(0.5), vb(2.0**-7)], 2.0**20),
        ([va(0.5)] * 3, [vb(-0.75)] * 3, 2.0**100),
        # signed zeros
        ([-0.0] * 4, [one] * 4, -0.0),
        ([-0.0, 0.0], [one, -one], 0.0),
        ([tiny_a], [-tiny_b], -0.0),
        # zero operands beside huge ones (their exponent takes part in the group maximum)
        ([0.0, va(2.0**-6)], [big_b, vb(2.0**-6)], 0.0),
    ]
    if fa.nan != "none":
        sets += [([math.nan, one], [one, one], 0.0), ([one], [one], math.nan)]
    if fa.has_inf:
        sets += [([math.inf, one], [one, one], 0.0), ([math.inf, -math.inf], [one, one], 0.0),
                 ([math.inf], [0.0], 0.0), ([one], [one], -math.inf), ([math.inf], [one], -math.inf)]
    if fa.emax + fb.emax >= 127:  # bf16 / fp32 products can reach 2**128
        sets += [([big_a, one], [big_b, one], 0.0), ([big_a, -big_a], [big_b, big_b], 0.0),
                 ([va(2.0**100)], [vb(2.0**28)], 0.0), ([va(2.0**64)], [vb(2.0**63)], 2.0**127)]
    if fa == FP32:  # xf32 truncation and the fp32 FMA
        u = 1 + 2.0**-23
        sets += [([u, -u, 3 + 2.0**-22], [u, u, -1.0], 0.0),
                 ([1 + 2.0**-11, 2.0**-24], [1 + 2.0**-12, 1.0], -1.0)]
    return sets


def _gemm_vs_exact(model, A, B, C, label):
    G = model.gemm(A, B, C)
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            ref = model.dot_exact(A[i], B[:, j], C[i, j])
            assert same(G[i, j], ref), (label, i, j, A[i].tolist(), B[:, j].tolist(), C[i, j], G[i, j], ref)


@pytest.mark.parametrize("name,model", MODELS, ids=IDS)
def test_gemm_equals_exact_random(name, model):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for K, narrow, specials in ((3, True, False), (2 * model.group + 5, True, False), (40, False, False),
                                (37, False, True), (33, True, True)):
        A, _, c = random_vectors(rng, model, 6, K, narrow=narrow, specials=specials)
        _, Bt, _ = random_vectors(rng, model, 5, K, narrow=narrow, specials=specials)
        _gemm_vs_exact(model, A, Bt.T, np.resize(c, (6, 5)), name)


@pytest.mark.parametrize("name,model", MODELS, ids=IDS)
def test_dot_equals_exact_adversarial(name, model):
    for n, (a, b, c) in enumerate(adversarial(model)):
        got, ref = model.dot(a, b, c), model.dot_exact(a, b, c)
        assert same(got, ref), (name, n, a, b, c, got, ref)


@pytest.mark.parametrize("name,model", MODELS, ids=IDS)
def test_gemm_equals_exact_adversarial(name, model):
    """All adversarial sets as rows of A against each other as columns of B (every pairing, C mixed)."""
    sets = adversarial(model)
    K = max(len(a) for a, _, _ in sets)
    A = np.array([a + [0.0] * (K - len(a)) for a, _, _ in sets])
    B = np.array([b + [0.0] * (K - len(b)) for _, b, _ in sets]).T
    C = np.array([[sets[(i + j) % len(sets)][2] for j in range(B.shape[1])] for i in range(A.shape[0])])
    _gemm_vs_exact(model, A, B, C, name)


@pytest.mark.parametrize("spec", ["MI300X:E4M3FNUZ", "MI300X:bf16", "MI300X:xf32", "MI250X:fp16",
                                  "MI100:fp32"])
def test_parallel_kernel_equals_serial(spec):
    model = accum.tensor_core(*spec.split(":"))
    rng = np.random.default_rng(3)
    A, _, _ = random_vectors(rng, model, 64, 256, narrow=False)
    _, Bt, _ = random_vectors(rng, model, 48, 256, narrow=False)
    big = model.gemm(A, Bt.T)  # 64*256*48 multiply-adds: the parallel build
    for i in range(0, 64, 13):
        assert np.array_equal(big[i], model.gemm(A[i:i + 1], Bt.T)[0], equal_nan=True)


# --------------------------------------------------------------------------------------------------
# values derived from MMA-Sim's rules (mmasim/simulator/amd.py, arithmetic.py @ c785138); each one also
# reproduced by running MMA-Sim itself (test_mmasim_agrees below when it is importable)
HAND = [
    # CDNA3 fp16: 1 + 2**-20 keeps 24 fraction bits below the group exponent 0
    ("MI300X", "fp16", [1.0, 2.0**-20], [1.0, 1.0], 0.0, 1.0 + 2.0**-20),
    # CDNA3 fp16: the product -1.5*2**-25 is truncated at 2**-24 to 0 (RNE of the exact sum: 1 - 2**-24)
    ("MI300X", "fp16", [1.0, -1.5 * 2.0**-12], [1.0, 2.0**-13], 0.0, 1.0),
    # CDNA3: c = -2**-21 rounded down at 24 bits below 2**4: -2**-20; 16 - 2**-20 is an fp32 value (exact: 16)
    ("MI300X", "fp16", [4.0], [4.0], -(2.0**-21), 16.0 - 2.0**-20),
    # CDNA3 FP8 with c = 0.5: 32 products of 1 in two groups of 16
    ("MI300X", "E4M3FNUZ", [1.0] * 32, [1.0] * 32, 0.5, 32.5),
    # CDNA3 FP8 split: the odd sum -2**-20 (exponent -14) rounded down at 24 bits below the even sum's 2**6:
    # -2**-18, so 64 - 2**-18 (one joint truncation would give 64, as would RNE of the exact sum)
    ("MI300X", "E4M3FNUZ", [8.0, -(2.0**-10)], [8.0, 2.0**-10], 0.0, 64.0 - 2.0**-18),
    # CDNA3 FP8 drops a c 30 binades below the products (fp16 rounds it down to -2**-24 instead)
    ("MI300X", "E4M3FNUZ", [1.0], [1.0], -(2.0**-30), 1.0),
    ("MI300X", "fp16", [1.0], [1.0], -(2.0**-30), 1.0 - 2.0**-24),
    # CDNA3 bf16: the zero operand times 2**127 has exponent -126 + 127 = 1 and truncates 2**-120 away
    ("MI300X", "bf16", [0.0, 2.0**-60], [2.0**127, 2.0**-60], 0.0, 0.0),
    # CDNA3 bf16: finite products >= 2**128 are infinities
    ("MI300X", "bf16", [2.0**100], [2.0**30], 0.0, math.inf),
    ("MI300X", "bf16", [2.0**100, -(2.0**100)], [2.0**30, 2.0**30], 0.0, math.nan),
    ("MI300X", "bf16", [2.0**127], [2.0], 0.0, math.inf),
    # xf32 truncates 1 + 2**-23 to 1; the fp32 FMA chain keeps it
    ("MI300X", "xf32", [1.0 + 2.0**-23], [1.0], 0.0, 1.0),
    ("MI300X", "fp32", [1.0 + 2.0**-23], [1.0], 0.0, 1.0 + 2.0**-23),
    # CDNA3: an exact zero is +0; the fp32 FMA keeps -0 + -0 = -0
    ("MI300X", "fp16", [-0.0], [1.0], -0.0, 0.0),
    ("MI300X", "fp32", [-0.0], [1.0], -0.0, -0.0),
    # CDNA1 fp16 pairwise: (2**24 + 1 -> 2**24) + (-2**24 + 1) = 1 (exact: 2)
    ("MI100", "fp16", [4096.0, 1.0, -4096.0, 1.0], [4096.0, 1.0, 4096.0, 1.0], 0.0, 1.0),
    # group 2 (MI100 bf16) adds 1 to c = 2**24 twice (each rounds away), group 4 (MI250X bf16_1k) adds 2
    ("MI100", "bf16", [1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0], 2.0**24, 2.0**24),
    ("MI250X", "bf16", [1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0], 2.0**24, 2.0**24 + 2),
    # CDNA2 flushes the subnormal fp16 operand 2**-15, CDNA1 keeps it
    ("MI100", "fp16", [2.0**-15], [2.0**10], 0.0, 2.0**-5),
    ("MI250X", "fp16", [2.0**-15], [2.0**10], 0.0, 0.0),
    # CDNA2 flushes the fp32-subnormal product 2**-130 (leaf), CDNA1 keeps it
    ("MI100", "bf16", [2.0**-100], [2.0**-30], 0.0, 2.0**-130),
    ("MI250X", "bf16", [-(2.0**-100)], [2.0**-30], 0.0, 0.0),
    # pairwise: the leaf fmaf(-0, 1, +0) is +0, so -0 + +0 = +0
    ("MI100", "fp16", [-0.0], [1.0], -0.0, 0.0),
]


@pytest.mark.parametrize("gpu,fmt,a,b,c,want", HAND, ids=[f"{h[0]}-{h[1]}-{n}" for n, h in enumerate(HAND)])
def test_rules_by_hand(gpu, fmt, a, b, c, want):
    m = accum.tensor_core(gpu, fmt)
    for got in (m.dot(a, b, c), m.dot_exact(a, b, c)):
        assert same(got, want), (gpu, fmt, got, want)


_QUALIFIER = {"fp16": "f32_16x16x16_f16", "bf16": "f32_16x16x16_bf16", "xf32": "f32_16x16x8_xf32",
              "fp32": "f32_16x16x4_f32", "E4M3FNUZ": "f32_16x16x32_fp8_fp8"}


def test_mmasim_agrees():
    """MMA-Sim's own simulator agrees with the CDNA3 models on the cases above, K padded with zeros to the
    instruction's K as its ``dotadd`` does (its CDNA1/2 path asserts fp32 operands in ``pairwise_dot`` and
    runs only under ``python -O``; those values are derived by hand above)."""
    sim = pytest.importorskip("mmasim.simulator.amd", reason="MMA-Sim is not importable (github.com/"
                              "microsoft/MMA-Sim, pure Python; put its checkout on PYTHONPATH to run this "
                              "cross-check)")
    for gpu, fmt, a, b, c, _want in HAND:
        if gpu != "MI300X":
            continue
        m = sim.mfma("CDNA3", _QUALIFIER[fmt])
        pad = [0.0] * (m.k - len(a))
        got = m.dotadd(list(a) + pad, list(b) + pad, c)
        ours = accum.tensor_core(gpu, fmt).dot(list(a) + pad, list(b) + pad, c)
        assert same(got, ours), (fmt, a, b, c, got, ours)
    rng = np.random.default_rng(4)
    for qual, fa, fb in (("f32_16x16x16_f16", "fp16", "fp16"), ("f32_16x16x16_bf16", "bf16", "bf16"),
                         ("f32_16x16x8_xf32", "xf32", "xf32"),
                         ("f32_16x16x32_fp8_bf8", "E4M3FNUZ", "E5M2FNUZ"),
                         ("f32_16x16x32_bf8_bf8", "E5M2FNUZ", "E5M2FNUZ")):
        m = sim.mfma("CDNA3", qual)
        model = accum.tensor_core("MI300X", fa)
        model = model.for_inputs(model.in_format, accum.tensor_core("MI300X", fb).in_format)
        A, B, c = random_vectors(rng, model, 10, m.k, narrow=True)
        for i in range(10):
            got = m.dotadd(A[i].tolist(), B[i].tolist(), float(c[i]))
            assert same(got, model.dot(A[i], B[i], c[i])), (qual, A[i].tolist(), B[i].tolist(), c[i], got)


# --------------------------------------------------------------------------------------------------
def test_table_and_names():
    assert accum.tensor_core("mi300x", "E4M3FNUZ") == accum.tensor_core("MI300X", "e4m3fnuz", "fp32",
                                                                        instruction="mfma")
    fp16 = accum.tensor_core("MI300X", "fp16")
    assert fp16.rule == "fused" and fp16.group == 8 and not fp16.split
    assert accum.tensor_core("MI250X", "bf16").flush and accum.tensor_core("MI250X", "bf16").group == 4
    assert accum.tensor_core("MI100", "bf16").group == 2 and not accum.tensor_core("MI100", "fp16").flush
    assert accum.tensor_core("MI300X", "xf32").truncate and accum.tensor_core("MI300X", "E5M2FNUZ").split
    m = accum.get("mi300x-fp8")
    assert m.name == "mi300x-fp8" and m.in_format == E4M3FNUZ and m.out_format == FP32
    assert accum.resolve("mi300x-fp8") is m


@pytest.mark.parametrize("call,match", [
    (lambda: accum.tensor_core("MI400", "fp16"), "unknown gpu 'MI400'; valid: .*MI100, MI250X, MI300X"),
    (lambda: accum.tensor_core("MI300X", "fp16", instruction="wgmma"),
     "instruction 'wgmma'.*valid: None, 'mfma'"),
    (lambda: accum.tensor_core("MI100", "E4M3FNUZ"), "in_format E4M3FNUZ: MI100 .*take fp32, fp16, bf16"),
    (lambda: accum.tensor_core("MI250X", "xf32"), "in_format xf32: MI250X .*valid: fp32, fp16, bf16"),
    (lambda: accum.tensor_core("MI300X", "E4M3"), "in_format E4M3: MI300X .*E4M3FNUZ, E5M2FNUZ"),
    (lambda: accum.tensor_core("MI300X", "fp16", "fp16"), "out_format FP16: .*valid: fp32"),
    (lambda: accum.tensor_core("MI300X", "E4M3FNUZ").for_inputs("E4M3FNUZ", "fp16"),
     "b_format=FP16: .*takes E4M3FNUZ, E5M2FNUZ"),
    (lambda: accum.tensor_core("MI300X", "fp16").for_inputs("fp16", "bf16"), "b_format=BF16"),
    (lambda: accum.block_scaled("MI300X", "mma"), "instruction 'mma' does not exist on MI300X"),
    (lambda: accum.tensor_core("H100", "fp16", instruction="mfma"),
     "instruction: H100 has no 'mfma' instruction; valid for H100: mma, wgmma"),
    (lambda: accum.Mfma("fused", 6, in_format=FP16), "group must be a power of two"),
    (lambda: accum.Mfma("pairwise", 8, in_format=FP16), "group must be 2 or 4 for rule 'pairwise'"),
    (lambda: accum.Mfma("dot", 4, in_format=FP16), "rule must be one of fma, pairwise, fused"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_operands_must_be_values_of_the_format():
    m = accum.tensor_core("MI300X", "E4M3FNUZ")
    with pytest.raises(ValueError, match="not a value of E4M3FNUZ"):
        m.dot([241.0], [1.0])
    with pytest.raises(ValueError, match="not a value of E4M3FNUZ"):
        m.dot([math.inf], [1.0])


def test_scaled_mm_mi300x_fp8_preset():
    """``scaled_mm(accumulate="mi300x-fp8")`` takes FNUZ codes (mixed pairs too): the model's accumulator
    times the tensorwise scales in float32 (docs/matmul.md §3)."""
    import fp8ref

    rng = np.random.default_rng(9)
    a = rng.integers(0, 256, (5, 40), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    a[a == 0x80] = 0  # no NaN
    b[b == 0x80] = 1
    for fa, fb in ((E4M3FNUZ, E4M3FNUZ), (E4M3FNUZ, E5M2FNUZ)):
        out = fp8ref.scaled_mm(a, b, scale_a=2.0, scale_b=0.5, a_format=fa, b_format=fb, out_dtype=np.float32,
                               accumulate="mi300x-fp8")
        A = fp8ref.dequantize(a, fa, dtype=np.float64)
        B = fp8ref.dequantize(b, fb, dtype=np.float64)
        acc = accum.get("mi300x-fp8").for_inputs(fa, fb).gemm(A, B).astype(np.float32)
        assert np.array_equal(out, acc * (np.float32(2.0) * np.float32(0.5)))
    with pytest.raises(ValueError, match="cannot take E4M3 x E4M3"):
        fp8ref.scaled_mm(a, b, scale_a=1.0, scale_b=1.0, a_format="E4M3", b_format="E4M3",
                         out_dtype=np.float32, accumulate="mi300x-fp8")
