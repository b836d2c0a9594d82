"""Each documented rule of docs/accumulation.md pinned by a test."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from fp8ref import accum
from fp8ref.accum import exact
from fp8ref.formats import BF16, E4M3, E5M2, FP16, FP32

from .helpers import same

P = math.ldexp
H100 = accum.tensor_core("H100", "E4M3")


# ---- rounding helper ----------------------------------------------------------------------------
def test_round_fraction_modes_and_ties():
    one = Fraction(1)
    half_ulp = Fraction(1, 2**24)
    assert exact.round_fraction(one + half_ulp, 23, -126, 127, "rne") == 1.0  # tie to even
    assert exact.round_fraction(one + 3 * half_ulp, 23, -126, 127, "rne") == 1 + 2 * P(1, -23)
    assert exact.round_fraction(one + 3 * half_ulp, 23, -126, 127, "rz") == 1 + P(1, -23)
    assert exact.round_fraction(-(one + 3 * half_ulp), 23, -126, 127, "rz") == -(1 + P(1, -23))


def test_round_fraction_subnormal_overflow_and_zero_sign():
    assert exact.round_fraction(Fraction(3, 2**150), 23, -126, 127, "rne") == P(1, -148)  # 1.5 ulp -> 2
    assert exact.round_fraction(Fraction(3, 2**150), 23, -126, 127, "rz") == P(1, -149)
    big = Fraction(2**128)
    assert exact.round_fraction(big, 23, -126, 127, "rz") == math.inf  # overflow -> Inf for RZ too
    assert exact.round_fraction(big - 1, 23, -126, 127, "rz") == FP32.max
    assert exact.round_fraction(-big, 13, -126, 127, "rz") == -math.inf
    r = exact.round_fraction(Fraction(-1, 2**160), 23, -126, 127, "rz")
    assert r == 0 and math.copysign(1, r) < 0  # nonzero rounding to zero keeps its sign
    with pytest.raises(ValueError, match="rounding"):
        exact.round_fraction(Fraction(1), 23, -126, 127, "rd")


# ---- block FMA -------------------------------------------------------------------------------------
def test_bfma_truncates_each_term_toward_zero():
    # P5: 1 + 2^-7 * -2^-7: the negative term truncates toward zero (to 0), not down to -2^-13
    assert H100.dot([1.0, P(1, -7)], [1.0, -P(1, -7)]) == 1.0
    assert accum.get("b200-fp8-mma").dot([1.0, P(1, -7)], [1.0, -P(1, -7)]) == 1 - P(1, -14)


def test_bfma_e8m13_output_and_c_truncation():
    # P1: the accumulator passes through the instruction truncated to 13 fraction bits
    z = np.zeros(32)
    assert H100.dot(z, z, 1 + P(1, -13)) == 1 + P(1, -13)
    assert H100.dot(z, z, 1 + P(1, -14)) == 1.0
    assert accum.get("b200-fp8-mma").dot(z, z, 1 + P(1, -23)) == 1 + P(1, -23)


def test_bfma_block_boundaries_and_chaining():
    # P3: a0 b0 = 1 and a_{k-1} b_{k-1} = 2^-13 with c = 1 + 2^-13 share a block iff k <= NFMA
    ada = accum.tensor_core("Ada", "E4M3")
    for k, h100, adav in ((16, 2 + P(1, -12), 2 + P(1, -12)), (17, 2 + P(1, -12), 2.0)):
        a = np.zeros(32)
        b = np.zeros(32)
        a[0] = b[0] = 1.0
        a[k - 1], b[k - 1] = P(1, -6), P(1, -7)
        assert H100.dot(a, b, 1 + P(1, -13)) == h100
        assert ada.dot(a, b, 1 + P(1, -13)) == adav


def test_bfma_final_rounding_rz_and_rne():
    c = 1 + P(1, -12) + P(1, -13)
    assert H100.dot([1.0] * 3, [1.0] * 3, c) == 4.0
    assert H100.dot([-1.0] * 3, [1.0] * 3, -c) == -4.0
    rne = accum.BlockFMA(32, 13, 13, "rne", -133)
    assert rne.dot([1.0] * 3, [1.0] * 3, c) == 4 + P(1, -11)


def test_bfma_e_floor():
    # Z2: sixteen products 2^-153 (bf16 2^-133 * 2^-20) with floor -133 keep 2^-149; floor -126 loses them
    m = accum.tensor_core("H100", "bf16")
    a = [P(1, -133)] * 16
    b = [P(1, -20)] * 16
    assert m.dot(a, b) == P(1, -149)
    assert accum.BlockFMA(16, 25, 23, "rz", -126, in_format=BF16).dot(a, b) == 0.0
    # Z1 (fp16 output): floor -21 makes the tie round to even (0); no floor keeps the low term
    h16 = accum.tensor_core("H100", "fp16", "fp16")
    a, b = [P(1, -17), P(1, -24)], [P(1, -8), P(1, -23)]
    assert h16.dot(a, b) == 0.0
    assert accum.BlockFMA(16, 25, 10, "rne", None, in_format=FP16, out_format=FP16).dot(a, b) == P(1, -24)


def test_bfma_subnormal_inputs_use_emin_exponent():
    # a subnormal operand is aligned with exponent emin of its format (not its own leading bit)
    m = accum.BlockFMA(4, 3, 13, "rz", None, in_format=E4M3)
    # 2^-9 (subnormal, exponent -6) * 1: E = -6, grid 2^-9: kept; 2^-9 * 1.125 -> bits below 2^-9 lost
    assert m.dot([P(1, -9)], [1.0]) == P(1, -9)
    assert m.dot([P(1, -9)], [1.125]) == P(1, -9)


def test_bfma_special_values_and_zero_signs():
    nan, inf = math.nan, math.inf
    assert math.isnan(H100.dot([0.0], [1.0], nan))
    m5 = H100.for_inputs(E5M2)
    assert math.isnan(m5.dot([inf, 0.0], [0.0, 1.0]))  # 0 * Inf
    assert math.isnan(m5.dot([inf, -inf], [1.0, 1.0]))
    assert m5.dot([inf, 1.0], [2.0, 1.0]) == inf
    assert H100.dot([0.0], [0.0], -inf) == -inf
    assert math.isnan(H100.dot([1.0], [1.0], nan))
    # chained: an infinite block result meets the opposite infinity in a later block -> NaN
    a = np.zeros(64)
    a[0], a[40] = inf, -inf
    assert math.isnan(m5.dot(a, np.ones(64)))
    # exact zero sums are +0, also for c = -0 and empty products
    r = H100.dot([1.0, -1.0], [1.0, 1.0])
    assert r == 0 and math.copysign(1, r) > 0
    r = H100.dot([0.0], [-1.0], -0.0)
    assert r == 0 and math.copysign(1, r) > 0


def test_bfma_separate_c_mode_adds_c_with_rne():
    b200 = accum.get("b200-fp8-mma")
    c = 1 + P(1, -12) + P(1, -13)
    assert b200.dot([1.0] * 3, [1.0] * 3, c) == 4 + 3 * P(1, -13)
    # c not aligned with the products: a tiny product next to a large c survives the block sum
    assert b200.dot([P(1, -9)], [P(1, -9)], 128.0) == 128.0  # then rounded away by the fp32 addition
    assert b200.dot([P(1, -9)], [P(1, -9)], 0.0) == P(1, -18)


# ---- Promoted / fast accumulation -----------------------------------------------------------------
@pytest.mark.parametrize("every,expected", [(None, 1.0), (128, 1 + 128 * P(1, -14)),
                                            (64, 1 + 192 * P(1, -14)), (32, 1 + 224 * P(1, -14))])
def test_promotion_interval_probe(every, expected):
    a = np.full(256, P(1, -7))
    a[0] = 1.0
    model = H100 if every is None else accum.Promoted(H100, every)
    assert model.dot(a, a) == expected
    assert model.gemm(a[None, :], a[:, None])[0, 0] == expected


def test_promoted_uses_fp32_rne_addition():
    m = accum.Promoted(H100, 32)
    a = np.zeros(64)
    b = np.zeros(64)
    a[0] = b[0] = 1.0
    a[32], b[32] = P(1, -9), P(1, -9)  # the second partial 2^-18 is added to 1 in fp32 exactly
    assert m.dot(a, b) == 1 + P(1, -18)
    assert H100.dot(a, b) == 1.0
    assert m.dot(a, b, 2.0**25) == 2.0**25  # c starts the fp32 accumulator; RNE drops the 1


# ---- Sequential -------------------------------------------------------------------------------------
def test_sequential_single_rounding_beyond_float64():
    # fp32 inputs: p = (1 - 2^-15) * 2^-24 (1 + 2^-15) = 2^-24 - 2^-54 is exact in float64, but
    # c + p = 1 + 2^-23 + 2^-24 - 2^-54 rounds in float64 to the fp32 midpoint 1 + 2^-23 + 2^-24, which a
    # second rounding sends to even (1 + 2^-22). The model rounds the exact sum once: 1 + 2^-23.
    s = accum.Sequential(FP32, in_format=FP32)
    a, b, c = 1 - P(1, -15), P(1, -24) * (1 + P(1, -15)), 1 + P(1, -23)
    assert float(np.float32(c + a * b)) == 1 + P(1, -22)  # the double rounding the model avoids
    assert s.dot([a], [b], c) == 1 + P(1, -23)
    assert s.dot_exact([a], [b], c) == 1 + P(1, -23)
    assert s.gemm(np.array([[a]]), np.array([[b]]), c)[0, 0] == 1 + P(1, -23)
    # the same for a promoted fp32 addition of partial sums
    assert accum.Exact(FP32, in_format=FP32).dot([a], [b], c) == 1 + P(1, -23)


def test_sequential_is_k_ordered_fma():
    s16 = accum.get("fp16")
    # (16*16 + 2^-9) - 16*16 in k order: the small product is lost in fp16
    assert s16.dot([16.0, P(1, -9), -16.0], [16.0, 1.0, 16.0]) == 0.0
    assert accum.get("exact").dot([16.0, P(1, -9), -16.0], [16.0, 1.0, 16.0]) == P(1, -9)
    # each product is exact (not rounded to fp16 before the addition): 1.125 * 1.125 = 1.265625 (7 bits)
    assert s16.dot([1.125], [1.125]) == 1.265625
    assert accum.get("bf16").dot([1.125, 1.0], [1.125, P(1, -9)]) == 1.265625  # 1.267578125 -> bf16


def test_sequential_zero_signs_and_specials():
    s16 = accum.get("fp16")
    r = s16.dot([-0.0], [1.0], -0.0)
    assert r == 0 and math.copysign(1, r) < 0
    r = s16.dot([1.0, -1.0], [1.0, 1.0])
    assert r == 0 and math.copysign(1, r) > 0
    assert s16.dot([256.0, 256.0], [256.0, 1.0]) == math.inf  # 65536 overflows fp16
    r = accum.Sequential(FP16, in_format=BF16).dot([-P(1, -15)], [P(1, -15)])  # -2^-30 underflows to -0
    assert r == 0 and math.copysign(1, r) < 0


# ---- Exact ----------------------------------------------------------------------------------------
def test_exact_single_rounding_and_order_independence():
    e = accum.get("exact")
    a = [448.0, P(1, -9), -448.0]
    b = [448.0, P(1, -9), 448.0]
    assert e.dot(a, b) == P(1, -18)
    assert e.dot(a[::-1], b[::-1]) == P(1, -18)
    r = e.dot([-0.0, 0.0], [1.0, -1.0], -0.0)
    assert r == 0 and math.copysign(1, r) < 0  # every term -0
    eb = accum.Exact(BF16)
    assert eb.dot([1.0, P(1, -9)], [1.0, P(1, -1)]) == 1.0  # 1 + 2^-10 -> bf16 1


# ---- presets, tensor_core, errors ---------------------------------------------------------------
def test_presets_and_unknown_names():
    assert isinstance(accum.get("h100-fp8"), accum.Promoted)
    assert accum.get("h100-fp8").every == 128
    assert accum.get("H100-FP8-FASTACCUM") == H100.__class__(**{**H100.__dict__})
    with pytest.raises(ValueError, match="valid: exact, fp32"):
        accum.get("h100")
    with pytest.raises(TypeError):
        accum.get(3)
    assert accum.resolve("fp32") is accum.get("fp32")


def test_tensor_core_table_and_unsupported():
    assert accum.tensor_core("h100", "e4m3").frac_bits == 13
    assert accum.tensor_core("A100", "fp16", "fp16").out_frac_bits == 10
    assert accum.tensor_core("B200", "E4M3").confirmed
    assert accum.tensor_core("H100", "E4M3", "fp16").confirmed
    assert accum.tensor_core("B200", "E5M2", "fp16", instruction="mma").c_mode == "last"
    for args in (("V100", "bf16"), ("A100", "E4M3"), ("H100", "bf16", "fp16"), ("P100", "fp16"),
                 ("H100", "fp32"), ("H100", "fp16", "bf16")):
        with pytest.raises(ValueError):
            accum.tensor_core(*args)


def test_bad_inputs_raise_named_errors():
    with pytest.raises(ValueError, match="not a value of E4M3"):
        H100.dot([0.3], [1.0])
    with pytest.raises(ValueError, match="same length"):
        H100.dot([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="inner dimensions"):
        H100.gemm(np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="C must have shape"):
        H100.gemm(np.ones((2, 3)), np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(TypeError, match="A must hold real numbers"):
        H100.gemm(np.array([["x"]]), np.ones((1, 1)))
    with pytest.raises(ValueError, match="c"):
        H100.dot([1.0], [1.0], 1 + P(1, -30))  # not an fp32 value
    with pytest.raises(ValueError, match="nfma"):
        accum.BlockFMA(0, 13)
    with pytest.raises(ValueError, match="rounding"):
        accum.BlockFMA(4, 13, 13, "rd")
    with pytest.raises(ValueError, match="out_frac_bits"):
        accum.BlockFMA(4, 13, 24)
    with pytest.raises(ValueError, match="c_mode"):
        accum.BlockFMA(4, 13, c_mode="late")
    with pytest.raises(ValueError, match="exact float64 block sum"):
        accum.BlockFMA(4096, 48).dot([1.0], [1.0])
    with pytest.raises(ValueError, match="every"):
        accum.Promoted(H100, 0)
    with pytest.raises(TypeError, match="inner"):
        accum.Promoted("h100", 128)


def test_gemm_broadcast_c_and_describe():
    G = H100.gemm(np.ones((2, 32)), np.ones((32, 3)), 1.0)
    assert np.all(G == 33.0)
    assert "nfma=32" in H100.describe() and "h100-fp8" in accum.get("h100-fp8").describe()
    assert same(accum.get("exact").gemm(np.zeros((1, 0)), np.zeros((0, 1)))[0, 0], 0.0)
