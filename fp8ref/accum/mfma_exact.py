"""The exact rules of AMD's matrix-core (MFMA) dot products, CDNA1-3 (the specification of
:mod:`fp8ref.accum.mfma_kernels`; docs/accumulation.md §10).

Source of every rule: MMA-Sim (microsoft/MMA-Sim @ c78513835c8b2ae61b35062afce4c4255bc6901c,
``mmasim/simulator/amd.py`` and ``mmasim/simulator/arithmetic.py``; Xie et al., arXiv 2511.10909), a
bit-accurate model fitted to measurements on MI100 (CDNA1), MI250X (CDNA2) and MI300X (CDNA3). Three rules:

* ``FMA`` (fp32 on CDNA1-3): a chain of fp32 fused multiply-adds from ``c`` in k order
  (:func:`fp8ref.accum.exact.sequential_dot` in fp32).
* ``PAIRWISE`` (fp16 / bf16 on CDNA1-2, :func:`pairwise_dot`): each group of ``group`` (4, or 2 for the
  non-``_1k`` bf16 instructions) products rounded to fp32, summed by a pairwise tree of fp32 additions, the
  group sum added to the accumulator in fp32; CDNA2 flushes subnormals (``flush``).
* ``FUSED`` (CDNA3 fp16 / bf16 / xf32 / FP8, :func:`fused_dot`): each group of ``group`` products aligned to
  their largest exponent and truncated at ``frac_bits`` = 24 fraction bits, the sum and ``c`` rounded down at
  31 and 24 fraction bits below the larger exponent, then one fp32 round to nearest even; FP8 (``split``)
  sums the even and the odd products of a group of 16 separately first.

Values travel as Python floats (NaN, +-Inf and -0.0 keep their meaning); every exact step is a
``fractions.Fraction`` or an integer, every rounding :func:`fp8ref.rounding.round_rational` (through
:func:`fp8ref.accum.exact.round_fraction`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

from fp8ref.accum.exact import exponent, fp32_add, round_to, sequential_dot, special_sum
from fp8ref.formats import FP32, TF32, pow2

FMA, PAIRWISE, FUSED = 0, 1, 2  # the rules (MmaParams.rule)
RULE_NAMES = ("fma", "pairwise", "fused")
# MMA-Sim arithmetic.py extract_significand_exponent: a zero operand (of any format) gets the exponent -126
# (it takes part in the maximum exponent of a fused group)
ZERO_EXP = -126
PAD_EXP = 2 * ZERO_EXP  # exponent of the product of two zeros (K padded with zeros)
ACC_BITS = 31  # the fused group sum is rounded down at 31 fraction bits below the group's exponent
C_BITS = 24  # the accumulator input c is rounded down at 24 fraction bits below it
C_DROP = 25  # FP8 (split): c is dropped when its exponent lies more than 25 below the group's exponent
BIG = 128  # fused rules: a finite product of magnitude >= 2**128 counts as an infinity of its sign
C_EMIN = FP32.emin  # the accumulator c is an fp32 value: a subnormal c keeps the exponent -126
FLUSH_EXP = FP32.emin  # pairwise with flush: fp32 results below 2**-126 are flushed to zero (sign kept)


class MfmaParams(NamedTuple):
    """One MFMA rule as the kernels and the oracle read it (flat, for Numba).

    ``rule``: ``FMA`` / ``PAIRWISE`` / ``FUSED``; ``group``: products per group (the pairwise tree's leaves,
    or one fused sum); ``frac_bits``: fraction bits kept per aligned product (fused); ``split``: the fused
    FP8 rule (even and odd products separately); ``flush``: CDNA2's subnormal flushing (pairwise);
    ``truncate``: xf32 (fp32 operands truncated to tf32 first); ``emin_a`` / ``emin_b``: smallest normal
    exponents of the operand formats (subnormal operands keep them; flushing threshold)."""

    rule: int
    group: int
    frac_bits: int
    split: bool
    flush: bool
    truncate: bool
    emin_a: int
    emin_b: int


# --------------------------------------------------------------------------------------------------
# helpers
def truncate_tf32(x: float) -> float:
    """xf32: an fp32 value truncated (toward zero) to tf32's 10 fraction bits; specials and zeros kept."""
    if x == 0 or not math.isfinite(x):
        return x
    return round_to(Fraction(x), TF32, "rz")


def _pad(a: Sequence[float], b: Sequence[float], group: int) -> tuple[list[float], list[float]]:
    """K padded with zeros to a multiple of ``group`` (a GEMM runs whole instructions along K)."""
    n = -len(a) % group
    return list(a) + [0.0] * n, list(b) + [0.0] * n


def _exp(x: float, emin: int) -> int:
    return ZERO_EXP if x == 0 else exponent(Fraction(x), emin)


def _floor(v: Fraction) -> int:
    return v.numerator // v.denominator


def _trunc(v: Fraction) -> int:
    return -_floor(-v) if v < 0 else _floor(v)


# --------------------------------------------------------------------------------------------------
# pairwise (CDNA1, CDNA2)
def _flush(x: float, p: MfmaParams) -> float:
    """CDNA2: an fp32 result below ``2**-126`` in magnitude becomes a zero of its sign."""
    return math.copysign(0.0, x) if p.flush and abs(x) < 2.0**FLUSH_EXP else x


def _leaf(x: float, y: float, p: MfmaParams) -> float:
    """``fmaf(x, y, +0)``: the product rounded to fp32 (RNE); an exact zero product gives +0, a nonzero
    product that rounds to zero keeps its sign (IEEE fma)."""
    v = x * y
    if math.isnan(v) or math.isinf(v):
        return v
    if v == 0:
        return 0.0
    return _flush(round_to(Fraction(v), FP32, "rne"), p)


def _tree(leaves: list[float], p: MfmaParams) -> float:
    """MMA-Sim ``pairwise_dot``: split at ``n // 2``, both halves summed the same way, one fp32 addition."""
    if len(leaves) == 1:
        return leaves[0]
    m = len(leaves) // 2
    return _flush(fp32_add(_tree(leaves[:m], p), _tree(leaves[m:], p)), p)


def pairwise_dot(a: Sequence[float], b: Sequence[float], c: float, p: MfmaParams, in_emin_a: int,
                 in_emin_b: int) -> float:
    """CDNA1/CDNA2 fp16 and bf16 (MMA-Sim ``operation_type == "pairwise"``).

    1. With ``flush`` (CDNA2): operands below ``2**emin`` of their format (``in_emin_a`` / ``in_emin_b``)
       and a ``c`` below ``2**-126`` become +0 (the sign of a flushed operand is lost).
    2. K is padded with zeros to a multiple of ``p.group``; ``d = c``.
    3. Per group: leaves ``fmaf(a_k, b_k, +0)`` (fp32), the pairwise tree of fp32 RNE additions, each result
       flushed with ``flush``; then ``d = RN_fp32(d + group sum)``, flushed with ``flush``.
    IEEE specials throughout (0*Inf and Inf-Inf are NaN).
    """
    if p.flush:
        a = [0.0 if abs(x) < 2.0**in_emin_a else x for x in a]
        b = [0.0 if abs(x) < 2.0**in_emin_b else x for x in b]
        c = 0.0 if abs(c) < 2.0**FLUSH_EXP else c
    a, b = _pad(a, b, p.group)
    d = c
    for g0 in range(0, len(a), p.group):
        leaves = [_leaf(x, y, p) for x, y in zip(a[g0:g0 + p.group], b[g0:g0 + p.group], strict=True)]
        d = _flush(fp32_add(d, _tree(leaves, p)), p)
    return d


# --------------------------------------------------------------------------------------------------
# fused (CDNA3)
def _aligned_sum(terms: list[tuple[Fraction, int]], frac_bits: int) -> tuple[int, int]:
    """MMA-Sim ``fused_sum``: ``(S, E)`` with ``E`` the largest term exponent and ``S`` the exact integer sum
    of every term truncated toward zero to ``frac_bits`` fraction bits below ``2**E`` (units
    ``2**(E - frac_bits)``)."""
    E = max(e for _, e in terms)
    u = pow2(E - frac_bits)
    return sum(_trunc(t / u) for t, _ in terms), E


def fused_group(a: Sequence[float], b: Sequence[float], c: float, p: MfmaParams) -> float:
    """One CDNA3 group (MMA-Sim ``amd_fused_dot_rd_add``, ``n_fractional_bits = 24``), ``len(a) == group``.

    1. Specials: NaN if an operand or ``c`` is NaN, a product is 0*Inf or +Inf and -Inf meet; else an
       infinite product or ``c`` gives that infinity.
    2. A finite product of magnitude ``>= 2**128`` is an infinity of its sign (both signs: NaN).
    3. Terms: each product ``a_k*b_k`` (exact) with exponent ``ea + eb``, ``ex = max(floor(log2|x|), emin)``
       of its format, and ``ZERO_EXP = -126`` for a zero operand.
    4. Not ``split``: ``(S, E)`` = the aligned sum of all terms (:func:`_aligned_sum`), value ``S*2**(E-F)``.
       ``split`` (FP8): ``(S0, E0)`` of the even-indexed and ``(S1, E1)`` of the odd-indexed terms,
       ``E = max(E0, E1)``, each rounded down to ``F`` fraction bits below ``2**E`` and added.
    5. ``M = max(E, ec)`` (``ec``: exponent of ``c`` in fp32, ``ZERO_EXP`` for zero); the product sum is
       rounded down at 31 fraction bits below ``2**M``, ``c`` at 24 (``split``: ``c`` is dropped when
       ``ec < M - 25``); their exact sum is rounded once to fp32 (RNE; an exact zero is +0).
    """
    prods = [x * y for x, y in zip(a, b, strict=True)]
    sp = special_sum([*prods, c])
    if sp is not None:
        return sp
    big = [math.copysign(math.inf, v) for v in prods if abs(v) >= 2.0**BIG]
    sp = special_sum(big)
    if sp is not None:
        return sp
    F = p.frac_bits
    terms = [(Fraction(x) * Fraction(y), _exp(x, p.emin_a) + _exp(y, p.emin_b))
             for x, y in zip(a, b, strict=True)]
    if p.split:
        (S0, E0), (S1, E1) = _aligned_sum(terms[0::2], F), _aligned_sum(terms[1::2], F)
        E = max(E0, E1)
        s = (_floor(S0 * pow2(E0 - E)) + _floor(S1 * pow2(E1 - E))) * pow2(E - F)
    else:
        S, E = _aligned_sum(terms, F)
        s = S * pow2(E - F)
    fc = Fraction(c)
    ec = _exp(c, C_EMIN)
    M = max(E, ec)
    total = _floor(s / pow2(M - ACC_BITS)) * pow2(M - ACC_BITS)
    if not p.split or ec >= M - C_DROP:
        total += _floor(fc / pow2(M - C_BITS)) * pow2(M - C_BITS)
    return round_to(total, FP32, "rne")


def fused_dot(a: Sequence[float], b: Sequence[float], c: float, p: MfmaParams) -> float:
    """CDNA3: xf32 operands truncated to tf32 (``truncate``), K padded with zeros to a multiple of
    ``p.group``, then the groups chained in k order through the fp32 accumulator (:func:`fused_group`)."""
    if p.truncate:
        a, b = [truncate_tf32(x) for x in a], [truncate_tf32(x) for x in b]
    a, b = _pad(a, b, p.group)
    d = c
    for g0 in range(0, len(a), p.group):
        d = fused_group(a[g0:g0 + p.group], b[g0:g0 + p.group], d, p)
    return d


def mfma_dot(a: Sequence[float], b: Sequence[float], c: float, p: MfmaParams) -> float:
    """The exact rule ``p.rule`` for one dot product (the oracle of :class:`fp8ref.accum.amd.Mfma`)."""
    if p.rule == FMA:
        return sequential_dot(a, b, c, FP32)
    if p.rule == PAIRWISE:
        return pairwise_dot(a, b, c, p, p.emin_a, p.emin_b)
    return fused_dot(a, b, c, p)
