"""Row-wise Numba kernels: one scalar evaluation of the model per output element.

Every kernel here loops over outputs and calls the scalar primitives of :mod:`fp8ref.accum.primitives`
for each: the block models' GEMM (any parameters: the fallback of the tiled kernel) and row-wise dot
products (``.dots``), with fast accumulation or promotion (the loop of ``primitives.block_dot``), the
sequential model with a TwoSum
rounding per addition, and the exact superaccumulator. Each kernel exists in a serial and a parallel build
(``primitives.twins``, rows or tiles of 4 rows in ``prange``); :mod:`fp8ref.accum.dispatch` picks one.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from fp8ref.accum.primitives import NLIMBS, add_round, bfma_chain, limbs_add, limbs_round, twins

TI = 4  # rows per task of the GEMM kernel (its column loop reads each row of B once for all of them)


def _block_gemm_py(A, EA, BT, EBT, C, badA, badB, p):
    M, K = A.shape
    N = BT.shape[0]
    out = np.empty((M, N), dtype=np.float64)
    promoted = p.every > 0  # else fast accumulation: one group, the whole K, chained from C
    step = p.every if promoted else max(K, 1)
    for t in prange((M + TI - 1) // TI):
        for j in range(N):
            b, eb = BT[j], EBT[j]
            for i in range(t * TI, min(t * TI + TI, M)):
                a, ea, special, d = A[i], EA[i], badA[i] or badB[j], C[i, j]
                for g0 in range(0, K, step):
                    part = bfma_chain(a, ea, b, eb, g0, min(g0 + step, K), 0.0 if promoted else d, special, p)
                    d = add_round(d, part, p.acc_mbits, p.acc_emin, p.acc_emax) if promoted else part
                out[i, j] = d
    return out


def _block_dots_py(A, EA, B, EB, c, badA, badB, p):
    L, K = A.shape
    out = np.empty(L, dtype=np.float64)
    promoted = p.every > 0
    step = p.every if promoted else max(K, 1)
    for i in prange(L):
        d = c[i]
        for g0 in range(0, K, step):
            part = bfma_chain(A[i], EA[i], B[i], EB[i], g0, min(g0 + step, K), 0.0 if promoted else d,
                              badA[i] or badB[i], p)
            d = add_round(d, part, p.acc_mbits, p.acc_emin, p.acc_emax) if promoted else part
        out[i] = d
    return out


def _sequential_py(A, BT, C, acc):
    M, K = A.shape
    N = BT.shape[0]
    out = np.empty((M, N), dtype=np.float64)
    for i in prange(M):
        a = A[i]
        for j in range(N):
            b = BT[j]
            c = C[i, j]
            d = add_round(c, -0.0, acc.mbits, acc.emin, acc.emax) if c != 0.0 else c
            for k in range(K):
                d = add_round(d, a[k] * b[k], acc.mbits, acc.emin, acc.emax)
            out[i, j] = d
    return out


def _exact_py(A, BT, C, badA, badB, acc):
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
                limbs_add(limbs, c)
            for k in range(K):
                x = a[k] * b[k]
                if x != 0.0:
                    limbs_add(limbs, x)
                    allnegzero = False
                elif allnegzero and math.copysign(1.0, x) > 0.0:
                    allnegzero = False
            r = limbs_round(limbs, acc)
            if r == 0.0 and allnegzero:
                r = -0.0
            out[i, j] = r
    return out


def _add_round_py(x, y, acc):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = add_round(x[i], y[i], acc.mbits, acc.emin, acc.emax)
    return out


BLOCK_GEMM = twins(_block_gemm_py)
BLOCK_DOTS = twins(_block_dots_py)
SEQUENTIAL = twins(_sequential_py)
EXACT = twins(_exact_py)
ADD_ROUND = njit(cache=True)(_add_round_py)  # element-wise RN(x + y) (c_mode "last")
