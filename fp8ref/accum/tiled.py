"""Tiled GEMM kernels (the fast paths of ``BlockFMA.gemm`` / ``Promoted.gemm`` and ``Sequential.gemm``) and
the conditions under which they apply.

Same arithmetic as the scalar primitives of :mod:`fp8ref.accum.primitives` (docs/accumulation.md §6),
reorganised for SIMD: for a tile of rows of A and a block of ``JB`` columns of B, each K-block of ``nfma``
products is processed with the column index innermost, so the exponent maximum (int32) and the
``trunc((a*b) * 2**(F-E))`` sums (float64, exact) run over contiguous rows of B. ``2**(F-E)`` is built from
its IEEE bit pattern. Outputs whose inputs hold NaN/Inf, or whose chain meets a non-finite block result, are
flagged and recomputed by :func:`fixup` with the scalar primitives. :mod:`fp8ref.accum.dispatch` decides
when these kernels run (:func:`usable`, :func:`sequential_usable`) and prepares their operands.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from fp8ref.accum.primitives import NEG, NO_TERMS, add_round, block_dot, fma64, round_int, twins

JB = 128  # columns per block
TI = 4  # rows per tile


@njit(cache=True, inline="always")
def _vmax(E, eak, eb):
    for jj in range(E.shape[0]):
        v = eak + eb[jj]
        E[jj] = v if v > E[jj] else E[jj]


@njit(cache=True, inline="always")
def _vacc(S, ak, b, sc):
    for jj in range(S.shape[0]):
        S[jj] += np.trunc((ak * b[jj]) * sc[jj])


@njit(cache=True, inline="always")
def _vmax32(P, pak, pb):
    for jj in range(P.shape[0]):
        v = pak * pb[jj]
        P[jj] = v if v > P[jj] else P[jj]


@njit(cache=True, inline="always")
def _vadd32(main, acc, redo):
    """Promotion ``main = RN_fp32(main + acc)`` as a float32 addition (both operands float32 values); a
    non-finite sum is flagged in ``redo`` and left 0; ``acc`` restarts at 0."""
    for jj in range(main.shape[0]):
        m = np.float64(np.float32(main[jj]) + np.float32(acc[jj]))
        fin = np.isfinite(m)
        redo[jj] = redo[jj] or not fin
        main[jj] = m if fin else 0.0
        acc[jj] = 0.0


@njit(cache=True, inline="always")
def _vacc32(S, ak, b, sc):
    for jj in range(S.shape[0]):
        S[jj] += np.trunc((ak * b[jj]) * sc[jj])


@njit(cache=True, inline="always")
def _prologue(E, d, d_bits, scale_bits, scale, S, F, floor, emin_c, sep):
    """Per column: fold the accumulator's exponent (aligned mode) and the floor into E, set the scale
    2**(F-E) from its bit pattern and start S with the truncated accumulator (branch-free)."""
    for jj in range(E.shape[0]):
        e = np.int64(E[jj])
        ed = ((d_bits[jj] >> 52) & 0x7FF) - 1023
        ed = ed if ed > emin_c else np.int64(emin_c)
        e = ed if ((d[jj] != 0.0) and (not sep) and ed > e) else e
        has = e >= NO_TERMS
        e = floor if (has and e < floor) else e
        E[jj] = np.int32(e)
        scale_bits[jj] = ((F - e + 1023) << 52) if has else np.int64(0)
    for jj in range(E.shape[0]):
        S[jj] = 0.0 if sep else np.trunc(d[jj] * scale[jj])


@njit(cache=True, inline="always")
def _epilogue(E, S_bits, out, ok, rb, rbf, sb, sbf, F, ofb, oemin, oemax, rz):
    """Vectorised final rounding of S * 2**(E-F) to ofb fraction bits where the result is a normal value of
    the output range (mantissa rounding on the IEEE bit pattern of the integer S < 2**53, then an exact
    power-of-two scaling); ok[j] = 0 leaves zero, subnormal and overflowing lanes to the scalar rounding."""
    shift = 52 - ofb
    mask = (np.int64(1) << shift) - 1
    half = (np.int64(1) << (shift - 1)) if shift > 0 else np.int64(0)
    for jj in range(E.shape[0]):
        bits = S_bits[jj]
        sign = bits & np.int64(-0x8000000000000000)
        mag = bits & np.int64(0x7FFFFFFFFFFFFFFF)
        if rz or shift == 0:
            magr = mag & ~mask
        else:
            magr = (mag + (half - 1) + ((mag >> shift) & 1)) & ~mask
        q0 = np.int64(E[jj]) - F
        es = (mag >> 52) - 1023
        er = (magr >> 52) - 1023
        good = (mag != 0) and (es + q0 >= oemin) and (er + q0 <= oemax) and (E[jj] >= NO_TERMS)
        ok[jj] = 1 if good else 0
        rb[jj] = (sign | magr) if good else np.int64(0)
        sb[jj] = ((q0 + 1023) << 52) if good else np.int64(0)
    for jj in range(E.shape[0]):
        out[jj] = rbf[jj] * sbf[jj] if ok[jj] else out[jj]


@njit(cache=True, inline="always")
def epilogue_buffers():
    """Per-task work arrays of :func:`_prologue` / :func:`_epilogue` (``JB`` lanes): the lane flags, the
    rounded bits and the scale bits with their float64 views, the alignment scale ``2**(F-E)`` bits and
    view."""
    okv = np.empty(JB, dtype=np.int8)
    rb = np.empty(JB, dtype=np.int64)
    sb = np.empty(JB, dtype=np.int64)
    scale_bits = np.empty(JB, dtype=np.int64)
    return okv, rb, rb.view(np.float64), sb, sb.view(np.float64), scale_bits, scale_bits.view(np.float64)


@njit(cache=True, inline="always")
def _n_tiles(M, N):
    """Tiles of ``TI`` rows x ``JB`` columns covering an (M, N) output."""
    return ((M + TI - 1) // TI) * ((N + JB - 1) // JB)


@njit(cache=True, inline="always")
def _tile(t, M, N):
    """Rows ``i0 .. i1-1`` and columns ``j0 .. j1-1`` of tile ``t`` (row tiles outer, column blocks inner)."""
    nj = (N + JB - 1) // JB
    it = t // nj
    i0 = it * TI
    j0 = (t - it * nj) * JB
    return i0, min(i0 + TI, M), j0, min(j0 + JB, N)


def _tiled_py(A, EA, B, EB, B32, PA, PB, f32, p32, C, p):
    """The block model ``p`` (a :class:`~fp8ref.accum.params.BlockParams`). ``p.every == 0``: fast
    accumulation (the accumulator starts at C and chains through every block); ``p.every > 0``: each group of
    ``every`` K-elements starts from 0 and is added to the ``acc`` accumulator (started at C) with one RNE
    addition. ``f32``: the products' terms are summed in float32
    from ``B32`` (B as float32), exact under the conditions of :func:`float32_terms`, and the block exponent
    ``E = max(ea + eb)`` is read from the float32 maximum of the exact powers of two ``PA * PB``
    (``PA = 2**EA``, ``PB = 2**EB``, 0 for a zero element). ``p32``: the accumulator is FP32 and C, every
    block result and hence every promotion operand is a float32 value, so the promotion is a float32
    addition."""
    nfma, F, ofb, rz, floor, emin_c = p.nfma, p.frac_bits, p.out_frac_bits, p.rz, p.e_floor, p.emin_c
    oemin, oemax, sep, every = p.out_emin, p.out_emax, p.separate, p.every
    am, aemin, aemax = p.acc_mbits, p.acc_emin, p.acc_emax
    M, K = A.shape
    N = B.shape[1]
    out = np.empty((M, N), dtype=np.float64)
    redo = np.zeros((M, N), dtype=np.bool_)
    for t in prange(_n_tiles(M, N)):
        i0, i1, j0, j1 = _tile(t, M, N)
        w = j1 - j0
        acc = np.zeros((TI, JB))
        main = np.zeros((TI, JB))
        E = np.empty(JB, dtype=np.int32)
        S = np.empty(JB)
        S_bits = S.view(np.int64)
        acc_bits = acc.view(np.int64)
        okv, rb, rbf, sb, sbf, scale_bits, scale = epilogue_buffers()
        S32 = np.empty(JB, dtype=np.float32)
        sc32 = np.empty(JB, dtype=np.float32)
        P32 = np.empty(JB, dtype=np.float32)
        P32_bits = P32.view(np.int32)
        for ii in range(i1 - i0):
            for jj in range(w):
                c = C[i0 + ii, j0 + jj]
                if every > 0:
                    main[ii, jj] = c
                else:
                    acc[ii, jj] = c
        g_end = every if every > 0 else K
        for k0 in range(0, K, nfma):
            k1 = min(k0 + nfma, K)
            if every > 0 and k0 >= g_end:
                g_end += every
            kb_end = min(k1, g_end)  # every % nfma == 0: blocks never straddle a promotion boundary
            for ii in range(i1 - i0):
                i = i0 + ii
                a = A[i]
                ea = EA[i]
                Ew = E[:w]
                if f32:
                    pa = PA[i]
                    P32w = P32[:w]
                    for jj in range(w):
                        P32w[jj] = np.float32(0.0)
                    for k in range(k0, kb_end):
                        if a[k] != 0.0:
                            _vmax32(P32w, pa[k], PB[k, j0:j1])
                    for jj in range(w):
                        pbits = P32_bits[jj]
                        Ew[jj] = ((pbits >> 23) & 0xFF) - 127 if pbits != 0 else NEG
                else:
                    for jj in range(w):
                        E[jj] = NEG
                    for k in range(k0, kb_end):
                        if a[k] != 0.0:
                            _vmax(Ew, ea[k], EB[k, j0:j1])
                _prologue(Ew, acc[ii, :w], acc_bits[ii, :w], scale_bits[:w], scale[:w], S[:w], F, floor,
                          emin_c, sep)
                Sw = S[:w]
                sw = scale[:w]
                if f32:
                    S32w = S32[:w]
                    sc32w = sc32[:w]
                    for jj in range(w):
                        S32w[jj] = np.float32(0.0)
                        sc32w[jj] = np.float32(sw[jj])
                    for k in range(k0, kb_end):
                        if a[k] != 0.0:
                            _vacc32(S32w, np.float32(a[k]), B32[k, j0:j1], sc32w)
                    for jj in range(w):
                        Sw[jj] += np.float64(S32w[jj])
                else:
                    for k in range(k0, kb_end):
                        if a[k] != 0.0:
                            _vacc(Sw, a[k], B[k, j0:j1], sw)
                if sep:
                    for jj in range(w):
                        d = acc[ii, jj]
                        e = E[jj]
                        if e < NO_TERMS:
                            r = add_round(d, 0.0, ofb, oemin, oemax)
                        else:
                            p = round_int(S[jj], e - F, ofb, oemin, oemax, rz)
                            r = add_round(d, p, ofb, oemin, oemax)
                        if not np.isfinite(r):
                            redo[i, j0 + jj] = True
                            r = 0.0
                        acc[ii, jj] = r
                else:
                    _epilogue(Ew, S_bits[:w], acc[ii, :w], okv[:w], rb[:w], rbf[:w], sb[:w], sbf[:w], F, ofb,
                              oemin, oemax, rz)
                    for jj in range(w):
                        if okv[jj] == 0:
                            e = E[jj]
                            r = round_int(S[jj], e - F, ofb, oemin, oemax, rz) if e >= NO_TERMS else 0.0
                            if not np.isfinite(r):
                                redo[i, j0 + jj] = True
                                r = 0.0
                            acc[ii, jj] = r
            if every > 0 and (kb_end == g_end or kb_end == K):
                for ii in range(i1 - i0):
                    if p32:
                        _vadd32(main[ii, :w], acc[ii, :w], redo[i0 + ii, j0:j1])
                        continue
                    for jj in range(w):
                        m = add_round(main[ii, jj], acc[ii, jj], am, aemin, aemax)
                        if not np.isfinite(m):
                            redo[i0 + ii, j0 + jj] = True
                            m = 0.0
                        main[ii, jj] = m
                        acc[ii, jj] = 0.0
        for ii in range(i1 - i0):
            for jj in range(w):
                out[i0 + ii, j0 + jj] = main[ii, jj] if every > 0 else acc[ii, jj]
    return out, redo


@njit(cache=True)
def fixup(out, redo, A, EA, BT, EBT, C, badA, badB, p):
    """Recompute with the scalar primitives the outputs flagged in ``redo`` and those whose row of A,
    column of B or C holds NaN/Inf."""
    M, K = A.shape
    N = BT.shape[0]
    for i in range(M):
        for j in range(N):
            if redo[i, j] or badA[i] or badB[j] or not np.isfinite(C[i, j]):
                out[i, j] = block_dot(A[i], EA[i], BT[j], EBT[j], K, C[i, j], True, p)


BLOCK = twins(_tiled_py)


def usable(p) -> bool:
    """Whether the tiled kernel covers the block model ``p`` (else the row-wise kernel runs)."""
    return (p.every == 0 or p.every % p.nfma == 0) and p.e_floor < 700


def float32_terms(p, fa, fb) -> bool:
    """Whether each block's product terms ``trunc((a*b) * 2**(F-E))`` and their sum are exact in float32:
    every product is a float32 normal (significand bits and exponent range), every term's scale
    ``2**(F-E)`` (E >= max(floor, emin_a + emin_b)) is at most 2**127, a scale below 2**-126 (E raised by
    the accumulator) leaves every term below 1 (truncated to 0 either way), and ``nfma`` terms of magnitude
    < 2**(F+2) sum below 2**24."""
    nfma, F, floor = p.nfma, p.frac_bits, p.e_floor
    lo = (fa.emin - fa.mbits) + (fb.emin - fb.mbits)  # lowest product bit
    hi = fa.emax + fb.emax + 2  # above the highest product bit
    return (fa.precision + fb.precision <= 24 and lo >= -126 and hi <= 126
            and F - max(floor, fa.emin + fb.emin) <= 127 and nfma * 2.0 ** (F + 2) <= 2.0**24)


def float32_promotion(p, C: np.ndarray) -> bool:
    """Whether the promotion ``RN_acc(main + block)`` is a float32 addition: the accumulator is FP32, every
    block result is a float32 value (output format inside FP32) and so is every element of C."""
    if ((p.acc_mbits, p.acc_emin, p.acc_emax) != (23, -126, 127) or p.out_frac_bits > 23 or p.out_emin < -126
            or p.out_emax > 127):
        return False
    with np.errstate(over="ignore"):
        return bool(np.array_equal(C.astype(np.float32).astype(np.float64), C, equal_nan=True))


def pow2_f32(E: np.ndarray) -> np.ndarray:
    """``2**E`` as float32 (exact for the exponents allowed by :func:`float32_terms`); the zero sentinel gives
    0 and exponents of non-finite elements (recomputed by the scalar kernel) stay finite."""
    return np.ldexp(1.0, np.clip(E, -200, 127)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# sequential accumulation, vectorised over columns, for input/accumulator formats where the float64 sum
# of the accumulator and an exact product, rounded once to the accumulator format, is correct (§6), and
# for the fp64 accumulator, where one fused multiply-add per step is the rule itself
@njit(cache=True, inline="always")
def _seq_round(s, mbits, emin, emax, fp32):
    """RNE of the float64 ``s`` to (mbits, emin, emax): float32 conversion for fp32, else the magic-constant
    addition ``(s + C) - C`` with ``C = 1.5 * 2**(q+52)`` (q the weight of the last kept bit); specials pass,
    zeros keep the sign of ``s``, overflow gives Inf."""
    if fp32:
        return np.float64(np.float32(s))
    _, e = math.frexp(s)
    ex = e - 1
    q = (ex if ex > emin else emin) - mbits
    C = 1.5 * math.ldexp(1.0, q + 52)
    r = (s + C) - C
    r = math.copysign(0.0, s) if r == 0.0 else r
    r = math.copysign(np.inf, s) if abs(r) >= math.ldexp(1.0, emax + 1) else r
    return r if np.isfinite(s) else s


def _seq_py(A, B, C, acc, fp32, fp64):
    """``fp32``: the float32 conversion rounds; ``fp64``: the fp64 accumulator, one ``fma64`` per step (the
    exact ``a*b + acc`` rounded once; any float64 operands); else the magic-constant rounding of
    :func:`_seq_round`."""
    mbits, emin, emax = acc.mbits, acc.emin, acc.emax
    M, K = A.shape
    N = B.shape[1]
    out = np.empty((M, N), dtype=np.float64)
    for t in prange(_n_tiles(M, N)):
        i0, i1, j0, j1 = _tile(t, M, N)
        w = j1 - j0
        tmp = np.empty(JB)
        tb = tmp.view(np.int64)
        cb = np.empty(JB, dtype=np.int64)
        cf = cb.view(np.float64)
        big = math.ldexp(1.0, emax + 1)
        for i in range(i0, i1):
            acc = np.empty(w)
            for jj in range(w):
                acc[jj] = C[i, j0 + jj] if fp64 else _seq_round(C[i, j0 + jj], mbits, emin, emax, fp32)
            a = A[i]
            for k in range(K):
                ak = a[k]
                bk = B[k, j0:j1]
                if fp64:
                    for jj in range(w):
                        acc[jj] = fma64(ak, bk[jj], acc[jj])
                    continue
                if fp32:
                    for jj in range(w):
                        acc[jj] = np.float64(np.float32(acc[jj] + ak * bk[jj]))
                    continue
                for jj in range(w):
                    tmp[jj] = acc[jj] + ak * bk[jj]
                for jj in range(w):
                    ex = ((tb[jj] >> 52) & 0x7FF) - 1023
                    q = (ex if ex > emin else np.int64(emin)) - mbits
                    cb[jj] = ((q + 52 + 1023) << 52) | (np.int64(1) << 51)  # 1.5 * 2**(q+52)
                for jj in range(w):
                    sv = tmp[jj]
                    r = (sv + cf[jj]) - cf[jj]
                    r = math.copysign(0.0, sv) if r == 0.0 else r
                    r = math.copysign(np.inf, sv) if abs(r) >= big else r
                    acc[jj] = r if np.isfinite(sv) else sv
            for jj in range(w):
                out[i, j0 + jj] = acc[jj]
    return out


SEQUENTIAL = twins(_seq_py)


def sequential_usable(fa, fb, acc) -> bool:
    """True when one rounding of the float64 sum ``acc + a*b`` equals the rounding of the exact sum for
    every accumulator value and product: either every product is a value of the accumulator format (then
    ``53 >= 2*p_acc + 2`` makes the double rounding innocuous, Figueroa 1995), or the float64 sum is exact
    (its bit span, from the lowest possible bit to the highest, is at most 53)."""
    p_acc = acc.mbits + 1
    if 53 < 2 * p_acc + 2:
        return False
    prod_bits = fa.precision + fb.precision
    lo = (fa.emin - fa.mbits) + (fb.emin - fb.mbits)  # lowest product bit
    hi = fa.emax + fb.emax + 2  # above the highest product bit
    in_acc = prod_bits <= p_acc and lo >= acc.emin - acc.mbits and hi <= acc.emax + 1
    span = max(hi, acc.emax + 2) - min(lo, acc.emin - acc.mbits)
    return in_acc or span <= 53
