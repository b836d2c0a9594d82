"""Numba kernels of the accumulation models (the fast paths; tested equal to :mod:`fp8ref.accum.exact`).

Block FMA without big integers (docs/accumulation.md §6 proves each step exact):

* inputs are float64 holding values of formats with <= 24-bit significands and <= 8 exponent bits, so every
  product ``a*b`` is exact in float64 and ``|a*b| < 2**256``;
* the alignment exponent ``E`` is an integer computed from precomputed per-element exponents
  (``max(floor(log2|x|), emin)``; zero gets a sentinel far below every real exponent);
* ``trunc((a*b) * 2**(F-E))`` is the aligned, truncated term: multiplying by a power of two is exact (no
  float64 overflow, and a result in float64's subnormal range is < 1 and truncates to 0 either way), and
  ``trunc`` is exact; every term is an integer < 2**(F+2) <= 2**50 and the block sum of <= NFMA + 1 terms
  is an integer below 2**53 (checked on construction of the parameters), so float64 addition is exact in any
  order;
* the final rounding works on that integer with ``frexp``/``ldexp`` (exact power-of-two scaling).

Sequential / promoted additions round ``x + y`` (float64 operands, exact product) to the accumulator
format through TwoSum (``s + err == x + y`` exactly) and a midpoint correction (§6).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

NEG = -(1 << 20)  # exponent sentinel of a zero element (sums of two stay far below every real exponent)
NO_TERMS = -(1 << 19)


# --------------------------------------------------------------------------------------------------
# preparation (NumPy)
def exponents(X: np.ndarray, emin: int) -> np.ndarray:
    """int32 array of ``max(floor(log2|x|), emin)``; zeros and non-finite elements get ``NEG``."""
    _, e = np.frexp(X)
    ex = np.maximum(e.astype(np.int32) - 1, np.int32(emin))
    ok = np.isfinite(X) & (X != 0)
    return np.where(ok, ex, np.int32(NEG)).astype(np.int32)


def _nonfinite_rows(X: np.ndarray) -> np.ndarray:
    return ~np.isfinite(X).all(axis=1)


# --------------------------------------------------------------------------------------------------
# scalar helpers (inlined into the kernels)
@njit(cache=True, inline="always")
def _ldexp(x, e):
    # np.ldexp for scalars, exact for the ranges used here
    return math.ldexp(x, e)


@njit(cache=True, inline="always")
def _floor_log2(x):
    _, e = math.frexp(abs(x))
    return e - 1


@njit(cache=True, inline="always")
def _round_int(S, q0, frac_bits, emin, emax, rz):
    """Round the value ``S * 2**q0`` (``S`` an integer-valued float64, |S| < 2**53) to ``frac_bits``
    fraction bits in ``[emin, emax]``; RZ or RNE; Inf when the rounded magnitude >= 2**(emax+1)."""
    if S == 0.0:
        return 0.0
    neg = S < 0.0
    m = -S if neg else S
    ev = _floor_log2(m) + q0
    t = ev if ev > emin else emin
    q = t - frac_bits
    sh = q - q0
    if sh <= 0:
        r = m
        qq = q0
    else:
        y = _ldexp(m, -sh)
        r = math.floor(y)
        if not rz:
            diff = y - r
            if diff > 0.5 or (diff == 0.5 and r - 2.0 * math.floor(0.5 * r) != 0.0):
                r += 1.0
        qq = q
    if r == 0.0:
        return -0.0 if neg else 0.0
    if _floor_log2(r) + qq > emax:
        return -np.inf if neg else np.inf
    v = _ldexp(r, qq)
    return -v if neg else v


@njit(cache=True, inline="always")
def _round_pair(s, err, mbits, emin, emax):
    """RNE of the exact value ``s + err`` (``s = fl64(s + err)`` from TwoSum) to ``mbits`` fraction bits in
    ``[emin, emax]``; only the sign of ``err`` matters (it decides float64 midpoints)."""
    if s == 0.0 or not np.isfinite(s):
        return s
    _, e = math.frexp(abs(s))
    ex = e - 1
    q = (ex if ex > emin else emin) - mbits
    y = _ldexp(s, -q)
    r = math.floor(y)
    diff = y - r
    if diff > 0.5:
        r += 1.0
    elif diff == 0.5:
        if err > 0.0:
            r += 1.0
        elif err == 0.0 and r - 2.0 * math.floor(0.5 * r) != 0.0:
            r += 1.0
    if r == 0.0:
        return math.copysign(0.0, s)
    if _floor_log2(r) + q > emax:
        return math.copysign(np.inf, s)
    return _ldexp(r, q)


@njit(cache=True, inline="always")
def _add_round(x, y, mbits, emin, emax):
    """IEEE ``RN_fmt(x + y)`` for float64 operands whose exact sum is wanted (TwoSum + midpoint fix)."""
    s = x + y
    if not np.isfinite(s):
        if np.isnan(s):
            return np.nan
        return s
    if s == 0.0:
        return s  # exact cancellation (+0) or the sum of two zeros (IEEE sign rule of float64 addition)
    bb = s - x
    err = (x - (s - bb)) + (y - bb)
    return _round_pair(s, err, mbits, emin, emax)


@njit(cache=True)
def _add_round_flat(x, y, mbits, emin, emax):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _add_round(x[i], y[i], mbits, emin, emax)
    return out


def add_round_arrays(x: np.ndarray, y: np.ndarray, mbits: int, emin: int, emax: int) -> np.ndarray:
    """Element-wise IEEE ``RN(x + y)`` to ``mbits`` fraction bits in ``[emin, emax]`` (``c_mode="last"``)."""
    xf = np.ascontiguousarray(x, dtype=np.float64)
    yf = np.ascontiguousarray(np.broadcast_to(np.asarray(y, dtype=np.float64), xf.shape))
    return _add_round_flat(xf.ravel(), yf.ravel(), int(mbits), int(emin), int(emax)).reshape(xf.shape)


# --------------------------------------------------------------------------------------------------
# block FMA
@njit(cache=True, inline="always")
def _bfma_block(a, ea, b, eb, k0, k1, d, special, F, ofb, rz, floor, emin_c, oemin, oemax, sep):
    if special or not np.isfinite(d):
        s = d
        for k in range(k0, k1):
            s += a[k] * b[k]
        if not np.isfinite(s):
            if np.isnan(s):
                return np.nan
            return s
    E = NEG
    for k in range(k0, k1):
        e = ea[k] + eb[k]
        if e > E:
            E = e
    if d != 0.0 and not sep:
        ec = _floor_log2(d)
        if ec < emin_c:
            ec = emin_c
        if ec > E:
            E = ec
    if E < NO_TERMS:
        if sep:
            return _add_round(d, 0.0, ofb, oemin, oemax)
        return 0.0
    if E < floor:
        E = floor
    scale = _ldexp(1.0, F - E)
    S0 = 0.0
    S1 = 0.0
    k = k0
    while k + 1 < k1:
        S0 += math.trunc((a[k] * b[k]) * scale)
        S1 += math.trunc((a[k + 1] * b[k + 1]) * scale)
        k += 2
    if k < k1:
        S0 += math.trunc((a[k] * b[k]) * scale)
    if sep:
        return _add_round(d, _round_int(S0 + S1, E - F, ofb, oemin, oemax, rz), ofb, oemin, oemax)
    S = S0 + S1 + math.trunc(d * scale)
    return _round_int(S, E - F, ofb, oemin, oemax, rz)


@njit(cache=True, inline="always")
def _bfma_chain(a, ea, b, eb, k0, k1, d, special, nfma, F, ofb, rz, floor, emin_c, oemin, oemax, sep):
    for s0 in range(k0, k1, nfma):
        s1 = min(s0 + nfma, k1)
        d = _bfma_block(a, ea, b, eb, s0, s1, d, special, F, ofb, rz, floor, emin_c, oemin, oemax, sep)
    return d


def _bfma_gemm_kernel_py(A, EA, BT, EBT, C, badA, badB, nfma, F, ofb, rz, floor, emin_c, oemin, oemax, sep):
    M, K = A.shape
    N = BT.shape[0]
    out = np.empty((M, N), dtype=np.float64)
    TI = 4
    ntiles = (M + TI - 1) // TI
    for t in prange(ntiles):
        i0 = t * TI
        i1 = min(i0 + TI, M)
        for j in range(N):
            b = BT[j]
            eb = EBT[j]
            for i in range(i0, i1):
                out[i, j] = _bfma_chain(A[i], EA[i], b, eb, 0, K, C[i, j], badA[i] or badB[j], nfma, F, ofb,
                                        rz, floor, emin_c, oemin, oemax, sep)
    return out


def _bfma_dots_kernel_py(A, EA, B, EB, c, badA, badB, nfma, F, ofb, rz, floor, emin_c, oemin, oemax, sep):
    L, K = A.shape
    out = np.empty(L, dtype=np.float64)
    for i in prange(L):
        out[i] = _bfma_chain(A[i], EA[i], B[i], EB[i], 0, K, c[i], badA[i] or badB[i], nfma, F, ofb, rz,
                             floor, emin_c, oemin, oemax, sep)
    return out


def _promoted_gemm_kernel_py(A, EA, BT, EBT, C, badA, badB, nfma, F, ofb, rz, floor, emin_c, oemin, oemax,
                          sep, every, am, aemin, aemax):
    M, K = A.shape
    N = BT.shape[0]
    out = np.empty((M, N), dtype=np.float64)
    TI = 4
    ntiles = (M + TI - 1) // TI
    for t in prange(ntiles):
        i0 = t * TI
        i1 = min(i0 + TI, M)
        for j in range(N):
            b = BT[j]
            eb = EBT[j]
            for i in range(i0, i1):
                special = badA[i] or badB[j]
                main = C[i, j]
                for g0 in range(0, K, every):
                    g1 = min(g0 + every, K)
                    part = _bfma_chain(A[i], EA[i], b, eb, g0, g1, 0.0, special, nfma, F, ofb, rz, floor,
                                       emin_c, oemin, oemax, sep)
                    main = _add_round(main, part, am, aemin, aemax)
                out[i, j] = main
    return out


def _promoted_dots_kernel_py(A, EA, B, EB, c, badA, badB, nfma, F, ofb, rz, floor, emin_c, oemin, oemax, sep,
                             every, am, aemin, aemax):
    L, K = A.shape
    out = np.empty(L, dtype=np.float64)
    for i in prange(L):
        special = badA[i] or badB[i]
        main = c[i]
        for g0 in range(0, K, every):
            g1 = min(g0 + every, K)
            part = _bfma_chain(A[i], EA[i], B[i], EB[i], g0, g1, 0.0, special, nfma, F, ofb, rz, floor,
                               emin_c, oemin, oemax, sep)
            main = _add_round(main, part, am, aemin, aemax)
        out[i] = main
    return out


def _check_bfma_params(params: tuple, K: int) -> None:
    nfma, F = params[0], params[1]
    # |term| < 2**(F+2), at most nfma + 1 terms per block: the float64 sum must stay exact
    if (nfma + 1) * 2.0 ** (F + 2) >= 2.0**53:
        raise ValueError(f"nfma={nfma} with frac_bits={F} exceeds the exact float64 block sum "
                         "((nfma+1) * 2**(frac_bits+2) must be < 2**53)")


def _prep(A: np.ndarray, B: np.ndarray, fa, fb):
    BT = np.ascontiguousarray(B.T)
    EA = exponents(A, fa.emin)
    EBT = exponents(BT, fb.emin)
    return BT, EA, EBT, _nonfinite_rows(A), _nonfinite_rows(BT)


def bfma_gemm(A, B, C, params, fa, fb) -> np.ndarray:
    _check_bfma_params(params, A.shape[1])
    from fp8ref.accum import tiled

    if tiled.usable(params, 0):
        return tiled.gemm(A, B, C, params, 0, (23, -126, 127), fa, fb)
    BT, EA, EBT, badA, badB = _prep(A, B, fa, fb)
    return _pick(_BFMA_GEMM, A.size * B.shape[1])(A, EA, BT, EBT, C, badA, badB, *params)


def bfma_dots(A, B, c, params, fa, fb) -> np.ndarray:
    _check_bfma_params(params, A.shape[1])
    EA = exponents(A, fa.emin)
    EB = exponents(B, fb.emin)
    return _pick(_BFMA_DOTS, A.size)(A, EA, B, EB, c, _nonfinite_rows(A), _nonfinite_rows(B), *params)


def promoted_gemm(A, B, C, params, every, acc, fa, fb) -> np.ndarray:
    _check_bfma_params(params, A.shape[1])
    from fp8ref.accum import tiled

    if tiled.usable(params, int(every)):
        return tiled.gemm(A, B, C, params, int(every), acc, fa, fb)
    BT, EA, EBT, badA, badB = _prep(A, B, fa, fb)
    return _pick(_PROMOTED_GEMM, A.size * B.shape[1])(A, EA, BT, EBT, C, badA, badB, *params, int(every),
                                                        *acc)


# --------------------------------------------------------------------------------------------------
# sequential
def _sequential_kernel_py(A, BT, C, am, aemin, aemax):
    M, K = A.shape
    N = BT.shape[0]
    out = np.empty((M, N), dtype=np.float64)
    for i in prange(M):
        a = A[i]
        for j in range(N):
            b = BT[j]
            acc = _add_round(C[i, j], -0.0, am, aemin, aemax) if C[i, j] != 0.0 else C[i, j]
            for k in range(K):
                acc = _add_round(acc, a[k] * b[k], am, aemin, aemax)
            out[i, j] = acc
    return out


def promoted_dots(A, B, c, params, every, acc, fa, fb) -> np.ndarray:
    _check_bfma_params(params, A.shape[1])
    EA = exponents(A, fa.emin)
    EB = exponents(B, fb.emin)
    return _pick(_PROMOTED_DOTS, A.size)(A, EA, B, EB, c, _nonfinite_rows(A), _nonfinite_rows(B), *params,
                                         int(every), *acc)


def sequential_gemm(A, B, C, acc) -> np.ndarray:
    return _pick(_SEQUENTIAL, A.size * B.shape[1])(A, np.ascontiguousarray(B.T), C, *acc)


# --------------------------------------------------------------------------------------------------
# exact: a fixed-point superaccumulator of signed 24-bit limbs
LIMB = 24
LIMB_MASK = (1 << LIMB) - 1
LO = -600  # weight of bit 0 of limb 0: below every product / accumulator bit (>= -2*(149+24))
NLIMBS = (600 + 300 + 40) // LIMB + 2  # up to 2**(300+40): above every |sum| (products < 2**256, K < 2**38)


@njit(cache=True, inline="always")
def _acc_add(limbs, x):
    """Add the float64 ``x`` (finite, nonzero, >= 2**LO granularity) exactly to the limbs."""
    neg = x < 0.0
    m, e = math.frexp(abs(x))
    M = np.int64(_ldexp(m, 53))  # integer significand, x = M * 2**(e-53)
    pos = e - 53 - LO
    lo = M & LIMB_MASK
    hi = M >> LIMB  # < 2**29
    for part, p in ((lo, pos), (hi, pos + LIMB)):
        if part == 0:
            continue
        idx = p // LIMB
        off = p - idx * LIMB
        v = part << off  # < 2**(29+23)
        v0 = v & LIMB_MASK
        v1 = (v >> LIMB) & LIMB_MASK
        v2 = v >> (2 * LIMB)
        if neg:
            limbs[idx] -= v0
            limbs[idx + 1] -= v1
            limbs[idx + 2] -= v2
        else:
            limbs[idx] += v0
            limbs[idx + 1] += v1
            limbs[idx + 2] += v2


@njit(cache=True, inline="always")
def _acc_round(limbs, mbits, emin, emax):
    n = limbs.shape[0]
    for i in range(n - 1):
        carry = limbs[i] >> LIMB
        limbs[i] -= carry << LIMB
        limbs[i + 1] += carry
    neg = limbs[n - 1] < 0
    if neg:
        for i in range(n):
            limbs[i] = -limbs[i]
        for i in range(n - 1):
            carry = limbs[i] >> LIMB
            limbs[i] -= carry << LIMB
            limbs[i + 1] += carry
    t = n - 1
    while t >= 0 and limbs[t] == 0:
        t -= 1
    if t < 0:
        return 0.0
    if t < 2:
        # tiny values: at most 48 bits, exact in float64
        v = 0.0
        for i in range(t, -1, -1):
            v = v * float(1 << LIMB) + float(limbs[i])
        s = _ldexp(v, LO)
        err = 0.0
    else:
        hi = float((limbs[t] << LIMB) | limbs[t - 1])  # < 2**48, exact
        mid = float(limbs[t - 2])
        x = hi * float(1 << LIMB)
        s0 = x + mid
        bb = s0 - x
        err = (x - (s0 - bb)) + (mid - bb)
        if err == 0.0:
            for i in range(t - 3, -1, -1):
                if limbs[i] != 0:
                    err = 1.0
                    break
        scale = LO + LIMB * (t - 2)
        s = _ldexp(s0, scale)
    if neg:
        s = -s
        err = -err
    return _round_pair(s, err, mbits, emin, emax)


def _exact_kernel_py(A, BT, C, badA, badB, am, aemin, aemax):
    M, K = A.shape
    N = BT.shape[0]
    out = np.empty((M, N), dtype=np.float64)
    for i in prange(M):
        a = A[i]
        limbs = np.zeros(NLIMBS, dtype=np.int64)
        for j in range(N):
            b = BT[j]
            c = C[i, j]
            if badA[i] or badB[j] or not np.isfinite(c):
                s = c
                for k in range(K):
                    s += a[k] * b[k]
                if not np.isfinite(s):
                    out[i, j] = np.nan if np.isnan(s) else s
                    continue
            limbs[:] = 0
            allnegzero = c == 0.0 and math.copysign(1.0, c) < 0.0
            if c != 0.0:
                _acc_add(limbs, c)
            for k in range(K):
                p = a[k] * b[k]
                if p != 0.0:
                    _acc_add(limbs, p)
                    allnegzero = False
                elif allnegzero and math.copysign(1.0, p) > 0.0:
                    allnegzero = False
            r = _acc_round(limbs, am, aemin, aemax)
            if r == 0.0 and allnegzero:
                r = -0.0
            out[i, j] = r
    return out


def exact_gemm(A, B, C, acc) -> np.ndarray:
    BT = np.ascontiguousarray(B.T)
    return _pick(_EXACT, A.size * B.shape[1])(A, BT, C, _nonfinite_rows(A), _nonfinite_rows(BT), *acc)


# every kernel in a serial and a parallel (prange over rows) build: small problems skip the thread start-up
_SERIAL_WORK = 1 << 18


def _twins(fn):
    return njit(cache=True)(fn), njit(cache=True, parallel=True)(fn)


_BFMA_GEMM = _twins(_bfma_gemm_kernel_py)
_BFMA_DOTS = _twins(_bfma_dots_kernel_py)
_PROMOTED_GEMM = _twins(_promoted_gemm_kernel_py)
_PROMOTED_DOTS = _twins(_promoted_dots_kernel_py)
_SEQUENTIAL = _twins(_sequential_kernel_py)
_EXACT = _twins(_exact_kernel_py)


def _pick(pair, work: int):
    return pair[1] if work >= _SERIAL_WORK else pair[0]
