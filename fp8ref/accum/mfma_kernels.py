"""Numba kernels of the AMD MFMA rules (:mod:`fp8ref.accum.mfma_exact` is their specification;
docs/accumulation.md §10) and the one function that picks among them (:func:`gemm`).

* ``FUSED`` (CDNA3): each task is one row of A times a block of ``JB`` columns of B; per group the exponent
  maximum (int32) and the truncated aligned products (integers held exactly in float64, < 2**30) run with the
  column index innermost over contiguous rows of B (the vector steps of :mod:`fp8ref.accum.tiled`), then
  the group's rounding-down and fp32 rounding run in one branch-free pass per column on exact float64
  integers and powers of two (built from their bit patterns with the bit casts :func:`_bits` / :func:`_float`,
  which vectorise).
  Outputs whose row or column holds NaN/Inf, whose group exponent allows a product >= 2**128, or whose
  accumulator becomes non-finite are recomputed by the scalar rule (:func:`fused_one`).
* ``PAIRWISE`` (CDNA1-2): the same tasks in float32 arithmetic: every step of the rule is one IEEE fp32
  multiplication or addition (round to nearest even, specials, signed zeros), the fmaf leaf's +0 added
  where a zero operand makes the product an exact zero.
* ``FMA``: one fp32 fused multiply-add per product, rounded through round-to-odd (:func:`_fma_gemm_py`), one
  pass per product row.

Exactness of the fused steps: products of two operands (<= 24-bit significands) are exact in float64;
``2**(F-E)`` scalings stay inside float64's normal range (exponents of operands >= -126 - 23, of groups
<= 127 on this path); every truncated term is an integer < 2**26 and a group's sum < 2**30; the rounded
sums ``< 2**38`` and the final scaling by ``2**(M-31)`` are exact, so one float64 -> float32 conversion is
the single RNE rounding of the rule.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from fp8ref.accum.dispatch import SERIAL_WORK, nonfinite_rows
from fp8ref.accum.mfma_exact import (
    ACC_BITS,
    BIG,
    C_BITS,
    C_DROP,
    C_EMIN,
    FLUSH_EXP,
    FMA,
    PAD_EXP,
    PAIRWISE,
    ZERO_EXP,
    MfmaParams,
)
from fp8ref.accum.primitives import float_exponent, twins
from fp8ref.accum.tiled import _vacc, _vmax

JB = 128  # columns per task
_TINY32 = np.float32(2.0**FLUSH_EXP)


@intrinsic
def _bits(typingctx, x):
    """The IEEE bit pattern of a float64 as an int64 (a bit cast, vectorisable)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _float(typingctx, x):
    """The float64 of an int64 bit pattern (a bit cast, vectorisable)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(cache=True, inline="always")
def _pow2(e):
    """``2.0**e`` for an integer ``e`` in float64's normal range, from its bit pattern."""
    return _float(np.int64(e + 1023) << 52)


@njit(cache=True, inline="always")
def _task(t, nj, N):
    """Row ``i`` and columns ``j0 .. j1-1`` of task ``t`` (``nj`` blocks of ``JB`` columns per row)."""
    i = t // nj
    j0 = (t - i * nj) * JB
    return i, j0, min(j0 + JB, N)


# --------------------------------------------------------------------------------------------------
# fused (CDNA3)
@njit(cache=True, inline="always")
def _finish(S0, E0, S1, E1, d, ec, split, F):
    """The end of a fused group: ``S0`` (units ``2**(E0-F)``) and, ``split``, ``S1`` (units ``2**(E1-F)``)
    combined, rounded down at ``ACC_BITS`` below ``2**M``, ``M = max(E, ec)``, the finite fp32 ``d`` rounded
    down at ``C_BITS`` (dropped for ``split`` below ``M - C_DROP``), one fp32 RNE rounding."""
    if split:
        E = max(E0, E1)
        s = np.floor(S0 * _pow2(E0 - E)) + np.floor(S1 * _pow2(E1 - E))
    else:
        E = E0
        s = S0
    M = max(E, ec)
    t = np.floor(s * _pow2(E - F + ACC_BITS - M))
    if (not split) or ec >= M - C_DROP:
        t += np.floor(d * _pow2(C_BITS - M)) * _pow2(ACC_BITS - C_BITS)
    return np.float64(np.float32(t * _pow2(M - ACC_BITS)))


@njit(cache=True, inline="always")
def _lane(S0, e0, S1, e1, d, split, F):
    """:func:`_finish` of one lane without branches (powers of two from their bit patterns): ``(r, ok)``;
    ``ok`` is false (and ``r`` 0) when ``d`` is not finite, the group exponent allows a product >= 2**128 or
    the result is not finite (the output then takes the scalar path)."""
    ed = ((_bits(d) >> 52) & 0x7FF) - 1023
    ec = max(ed, C_EMIN)  # a zero d: its bits give -1023, so C_EMIN (= ZERO_EXP)
    e0, e1 = np.int64(e0), np.int64(e1)
    ok = (ed < 1024) & (e0 < BIG - 1) & (e1 < BIG - 1)
    e0 = e0 if ok else 0
    e1 = e1 if ok else 0
    d = d if ok else 0.0
    E = max(e0, e1) if split else e0
    M = max(E, ec) if ok else 0
    s = np.floor(S0 * _pow2(e0 - E)) + np.floor(S1 * _pow2(e1 - E)) if split else S0
    keep = (not split) or ec >= M - C_DROP  # split: c far below the products is dropped
    cterm = np.floor(d * _pow2(C_BITS - M)) * _pow2(ACC_BITS - C_BITS)
    t = np.floor(s * _pow2(E - F + ACC_BITS - M)) + (cterm if keep else 0.0)
    r = np.float64(np.float32(t * _pow2(M - ACC_BITS)))
    ok = ok & np.isfinite(r)
    return (r if ok else 0.0), ok


@njit(cache=True, inline="always")
def _vfinish(S0, E0, S1, E1, D, bad, split, F):
    """:func:`_lane` over the columns; a failing lane is flagged in ``bad`` and left 0."""
    for jj in range(D.shape[0]):
        r, ok = _lane(S0[jj], E0[jj], S1[jj], E1[jj], D[jj], split, F)
        bad[jj] = bad[jj] | (not ok)
        D[jj] = r


@njit(cache=True, inline="always")
def _group4(a, ea, B, EB, g0, j0, j1, D, bad, F):
    """A whole group of 4 products (not split; xf32 and ``group=4``) in one pass over the columns: exponent
    maximum, aligned truncated sum and :func:`_lane` in registers."""
    a0, a1, a2, a3 = a[g0], a[g0 + 1], a[g0 + 2], a[g0 + 3]
    e0, e1, e2, e3 = ea[g0], ea[g0 + 1], ea[g0 + 2], ea[g0 + 3]
    b0, b1, b2, b3 = B[g0, j0:j1], B[g0 + 1, j0:j1], B[g0 + 2, j0:j1], B[g0 + 3, j0:j1]
    f0, f1, f2, f3 = EB[g0, j0:j1], EB[g0 + 1, j0:j1], EB[g0 + 2, j0:j1], EB[g0 + 3, j0:j1]
    for jj in range(j1 - j0):
        E = max(max(e0 + f0[jj], e1 + f1[jj]), max(e2 + f2[jj], e3 + f3[jj]))
        sc = _pow2(F - E)
        S = (np.trunc((a0 * b0[jj]) * sc) + np.trunc((a1 * b1[jj]) * sc)) + \
            (np.trunc((a2 * b2[jj]) * sc) + np.trunc((a3 * b3[jj]) * sc)) + 0.0
        r, ok = _lane(S, E, 0.0, PAD_EXP, D[jj], False, F)
        bad[jj] = bad[jj] | (not ok)
        D[jj] = r


@njit(cache=True, inline="always")
def _half(a, ea, b, eb, k0, k1, step, F):
    E = PAD_EXP
    for k in range(k0, k1, step):
        E = max(E, ea[k] + eb[k])
    sc = _pow2(F - E)
    S = 0.0
    for k in range(k0, k1, step):
        S += np.trunc((a[k] * b[k]) * sc)
    return S, E


@njit(cache=True)
def fused_one(a, ea, b, eb, c, p):
    """One output of the fused rule, every case (specials, products >= 2**128): the scalar path."""
    d = c
    K = a.shape[0]
    for k0 in range(0, K, p.group):
        k1 = min(k0 + p.group, K)
        s = d
        for k in range(k0, k1):
            s += a[k] * b[k]
        if not np.isfinite(s):  # NaN, or an infinite operand / c (a finite float64 sum cannot overflow)
            d = s
            continue
        pos = neg = False
        for k in range(k0, k1):
            v = a[k] * b[k]
            pos = pos or v >= 2.0**BIG
            neg = neg or v <= -(2.0**BIG)
        if pos or neg:
            d = np.nan if (pos and neg) else (np.inf if pos else -np.inf)
            continue
        if p.split:
            S0, E0 = _half(a, ea, b, eb, k0, k1, 2, p.frac_bits)
            S1, E1 = _half(a, ea, b, eb, k0 + 1, k1, 2, p.frac_bits)
        else:
            S0, E0 = _half(a, ea, b, eb, k0, k1, 1, p.frac_bits)
            S1, E1 = 0.0, PAD_EXP
        ec = ZERO_EXP if d == 0.0 else max(float_exponent(d), C_EMIN)
        d = _finish(S0, E0, S1, E1, d, ec, p.split, p.frac_bits)
    return d


@njit(cache=True, inline="always")
def _vhalf(a, ea, B, EB, k0, k1, step, j0, j1, E, S, scale, F):
    """Vector :func:`_half` over the columns ``j0 .. j1-1`` (``k0 < k1``): the first product starts the
    exponent maximum and, scaled, the sum."""
    w = j1 - j0
    eb, eak = EB[k0, j0:j1], ea[k0]
    for jj in range(w):
        E[jj] = max(eak + eb[jj], PAD_EXP)
    for k in range(k0 + step, k1, step):
        _vmax(E[:w], ea[k], EB[k, j0:j1])
    b, ak = B[k0, j0:j1], a[k0]
    for jj in range(w):
        sc = _pow2(F - E[jj])
        scale[jj] = sc
        S[jj] = np.trunc((ak * b[jj]) * sc) + 0.0  # + 0.0: a sum of zero terms is +0, as the rule says
    for k in range(k0 + step, k1, step):
        _vacc(S[:w], a[k], B[k, j0:j1], scale[:w])


def _fused_gemm_py(A, EA, B, EB, C, p):
    M, K = A.shape
    N = B.shape[1]
    F, G, split = p.frac_bits, p.group, p.split
    out = np.empty((M, N), dtype=np.float64)
    redo = np.zeros((M, N), dtype=np.bool_)
    nj = (N + JB - 1) // JB
    for t in prange(M * nj):
        i, j0, j1 = _task(t, nj, N)
        w = j1 - j0
        D = np.empty(JB)
        bad = np.zeros(JB, dtype=np.bool_)
        E0 = np.empty(JB, dtype=np.int32)
        E1 = np.full(JB, PAD_EXP, dtype=np.int32)
        S0 = np.empty(JB)
        S1 = np.zeros(JB)
        sc = np.empty(JB)
        for jj in range(w):
            D[jj] = C[i, j0 + jj]
        a, ea = A[i], EA[i]
        for g0 in range(0, K, G):
            g1 = min(g0 + G, K)
            if G == 4 and not split and g1 - g0 == 4:
                _group4(a, ea, B, EB, g0, j0, j1, D[:w], bad[:w], F)
                continue
            if split:
                _vhalf(a, ea, B, EB, g0, g1, 2, j0, j1, E0, S0, sc, F)
                if g0 + 1 < g1:
                    _vhalf(a, ea, B, EB, g0 + 1, g1, 2, j0, j1, E1, S1, sc, F)
                else:  # a last group of one product: the odd half holds only padding
                    E1[:] = PAD_EXP
                    S1[:] = 0.0
            else:
                _vhalf(a, ea, B, EB, g0, g1, 1, j0, j1, E0, S0, sc, F)
            _vfinish(S0[:w], E0[:w], S1[:w], E1[:w], D[:w], bad[:w], split, F)
        for jj in range(w):
            out[i, j0 + jj] = D[jj]
            redo[i, j0 + jj] = bad[jj]
    return out, redo


_FUSED = twins(_fused_gemm_py)


@njit(cache=True)
def _fused_fixup(out, redo, A, EA, BT, EBT, C, badA, badB, p):
    M, N = out.shape
    for i in range(M):
        for j in range(N):
            if redo[i, j] or badA[i] or badB[j] or not np.isfinite(C[i, j]):
                out[i, j] = fused_one(A[i], EA[i], BT[j], EBT[j], C[i, j], p)


def exponents(X: np.ndarray, emin: int) -> np.ndarray:
    """int32 ``max(floor(log2|x|), emin)``; a zero gets ``ZERO_EXP``, a non-finite element 0 (its outputs
    take the scalar path)."""
    _, e = np.frexp(X)
    ex = np.maximum(e.astype(np.int32) - 1, np.int32(emin))
    ex = np.where(X == 0, np.int32(ZERO_EXP), ex)
    return np.where(np.isfinite(X), ex, np.int32(0)).astype(np.int32)


def truncate_tf32(X: np.ndarray) -> np.ndarray:
    """xf32: fp32 values (held in float64) with the 13 low fraction bits cleared (toward zero)."""
    bits = np.ascontiguousarray(X, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFFE000)
    return bits.view(np.float32).astype(np.float64)


# --------------------------------------------------------------------------------------------------
# fma (fp32 on CDNA1-3)
def _fma_gemm_py(A, B, C):
    """``d = fmaf(a_k, b_kj, d)`` in k order from ``C``: the product is exact in float64, TwoSum makes the
    float64 sum exact as ``s + err``, ``s`` rounded to odd (its last bit set when ``err != 0``), then one
    float64 -> float32 RNE conversion, a correct single rounding (Boldo & Melquiond 2008: 53 >= 24 + 2)."""
    M, K = A.shape
    N = B.shape[1]
    nj = (N + JB - 1) // JB
    out = np.empty((M, N), dtype=np.float64)
    for t in prange(M * nj):
        D = np.empty(JB)
        i, j0, j1 = _task(t, nj, N)
        w = j1 - j0
        for jj in range(w):
            D[jj] = C[i, j0 + jj]
        for k in range(K):
            ak = A[i, k]
            b = B[k, j0:j1]
            for jj in range(w):
                p = ak * b[jj]
                d = D[jj]
                s = p + d
                bb = s - p
                err = (p - (s - bb)) + (d - bb)
                bits = _bits(s)
                fix = (err != 0.0) & ((bits & 1) == 0) & np.isfinite(s)
                step = np.int64(1) if (err > 0.0) == (s > 0.0) else np.int64(-1)
                D[jj] = np.float64(np.float32(_float(bits + step) if fix else s))
        for jj in range(w):
            out[i, j0 + jj] = D[jj]
    return out


_FMA = twins(_fma_gemm_py)


# --------------------------------------------------------------------------------------------------
# pairwise (CDNA1, CDNA2)
@njit(cache=True, inline="always")
def _fl(x, flush):
    """CDNA2: an fp32 result below ``2**-126`` in magnitude becomes a zero of its sign."""
    return x * np.float32(0.0) if (flush and abs(x) < _TINY32) else x


@njit(cache=True, inline="always")
def _leaf(a, b, flush):
    """``fmaf(a, b, +0)``: the float32 product (one IEEE rounding); an exact zero product (a zero operand)
    gives +0, a nonzero product that underflows to zero keeps its sign."""
    v = a * b
    return _fl(v + np.float32(0.0) if (a == 0 or b == 0) else v, flush)


def _pairwise_gemm_py(A, B, C, p):
    """float32 operands (every step is one IEEE fp32 operation); K a multiple of ``p.group`` (2 or 4;
    :func:`gemm` pads it): per group one pass over the columns, leaves, tree and accumulation in registers."""
    M, K = A.shape
    N = B.shape[1]
    G, flush = p.group, p.flush
    out = np.empty((M, N), dtype=np.float32)
    nj = (N + JB - 1) // JB
    for t in prange(M * nj):
        i, j0, j1 = _task(t, nj, N)
        D = np.empty(j1 - j0, dtype=np.float32)
        for jj in range(j1 - j0):
            D[jj] = C[i, j0 + jj]
        for g0 in range(0, K, G):
            a0, a1 = A[i, g0], A[i, g0 + 1]
            b0, b1 = B[g0, j0:j1], B[g0 + 1, j0:j1]
            if G == 2:
                for jj in range(j1 - j0):
                    s = _fl(_leaf(a0, b0[jj], flush) + _leaf(a1, b1[jj], flush), flush)
                    D[jj] = _fl(D[jj] + s, flush)
            else:
                a2, a3 = A[i, g0 + 2], A[i, g0 + 3]
                b2, b3 = B[g0 + 2, j0:j1], B[g0 + 3, j0:j1]
                for jj in range(j1 - j0):
                    s01 = _fl(_leaf(a0, b0[jj], flush) + _leaf(a1, b1[jj], flush), flush)
                    s23 = _fl(_leaf(a2, b2[jj], flush) + _leaf(a3, b3[jj], flush), flush)
                    D[jj] = _fl(D[jj] + _fl(s01 + s23, flush), flush)
        for jj in range(j1 - j0):
            out[i, j0 + jj] = D[jj]
    return out


_PAIRWISE = twins(_pairwise_gemm_py)


def _flushed(X: np.ndarray, emin: int) -> np.ndarray:
    """CDNA2 operand flushing: magnitudes below ``2**emin`` (and -0) become +0."""
    return np.where(np.abs(X) < 2.0**emin, 0.0, X)


# --------------------------------------------------------------------------------------------------
def gemm(A: np.ndarray, B: np.ndarray, C: np.ndarray, p: MfmaParams) -> np.ndarray:
    """``C + A @ B`` under the MFMA rule ``p`` (checked float64 operands; the only kernel choice)."""
    work = A.size * B.shape[1]
    par = work >= SERIAL_WORK
    if p.rule == FMA:
        return _FMA[par](A, np.ascontiguousarray(B), np.ascontiguousarray(C))
    if p.rule == PAIRWISE:
        if p.flush:
            A, B, C = _flushed(A, p.emin_a), _flushed(B, p.emin_b), _flushed(C, FLUSH_EXP)
        pad = -A.shape[1] % p.group  # zero products: leaves +0, as the oracle's padding
        A32 = np.pad(A.astype(np.float32), ((0, 0), (0, pad)))  # fp16 / bf16 / fp32 values: exact
        B32 = np.pad(B.astype(np.float32), ((0, pad), (0, 0)))
        return _PAIRWISE[par](A32, B32, np.ascontiguousarray(C, dtype=np.float32), p).astype(np.float64)
    if p.truncate:
        A, B = truncate_tf32(A), truncate_tf32(B)
    B = np.ascontiguousarray(B)
    EA, EB = exponents(A, p.emin_a), exponents(B, p.emin_b)
    out, redo = _FUSED[par](A, EA, B, EB, C, p)
    badA, badB = nonfinite_rows(A), ~np.isfinite(B).all(axis=0)
    if redo.any() or badA.any() or badB.any() or not np.isfinite(C).all():
        BT = np.ascontiguousarray(B.T)
        _fused_fixup(out, redo, A, EA, BT, np.ascontiguousarray(EB.T), C, badA, badB, p)
    return out
