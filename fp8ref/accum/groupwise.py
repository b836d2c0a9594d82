"""The kernel of block-scaled instructions that sum groups of products exactly (``kind::mxf4nvf4``).

Same rule as :func:`fp8ref.accum.exact.scaled_chain` with ``group > 0`` (docs/accumulation.md §4.2), tiled
like :mod:`fp8ref.accum.tiled`: a task takes ``TI`` rows and ``JB`` columns; per row and instruction
(``p.nfma`` elements of K) the group sums ``G = sum a_k * B[k, j]`` are accumulated over contiguous rows of
``B`` (E2M1 x E2M1: multiples of 2^-2 below 2^10, exact in float64 in any order), then per output the
accumulator ``d`` and the group terms ``G * sa * sb`` (<= 20 significant bits: exact) are aligned at
``F`` fraction bits below ``E = max(e_floor, exponent(d), e(sa) + e(sb) of every group)``, truncated
(``trunc(t * 2**(F-E))``, exact power-of-two scaling), summed (integers below 2**53) and rounded once
(:func:`primitives.round_int`). Specials: the float64 sum of ``d`` and the terms decides first (a NaN scale
gives NaN, an infinite ``d`` stays).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fp8ref.accum.primitives import float_exponent, round_int, twins
from fp8ref.accum.tiled import JB, _epilogue, _n_tiles, _tile, epilogue_buffers

MAX_GROUPS = 8  # groups per instruction the kernel's buffer holds (kind::mxf4nvf4: 64 / 16 = 4)


def _group_gemm_py(A, B, C, SA, SB, ESA, ESB, block, group, p):
    M, K = A.shape
    N = B.shape[1]
    F, floor = p.frac_bits, p.e_floor
    out = np.empty((M, N), dtype=np.float64)
    for t in prange(_n_tiles(M, N)):
        i0, i1, j0, j1 = _tile(t, M, N)
        w = j1 - j0
        G = np.zeros((MAX_GROUPS, JB))
        d = np.empty(JB)
        s = np.empty(JB)
        E = np.empty(JB, dtype=np.int32)
        S = np.empty(JB)
        S_bits = S.view(np.int64)
        okv, rb, rbf, sb, sbf, scale_bits, scale = epilogue_buffers()
        for i in range(i0, i1):
            for jj in range(w):
                d[jj] = C[i, j0 + jj]
            for k0 in range(0, K, p.nfma):
                k1 = min(k0 + p.nfma, K)
                ng = (k1 - k0 + group - 1) // group
                for g in range(ng):
                    Gg = G[g]
                    for jj in range(w):
                        Gg[jj] = 0.0
                    for k in range(k0 + g * group, min(k0 + (g + 1) * group, k1)):
                        ak = A[i, k]
                        if ak != 0.0:
                            bk = B[k, j0:j1]
                            for jj in range(w):
                                Gg[jj] += ak * bk[jj]
                # the accumulator's exponent (at least emin_c) and the floor
                for jj in range(w):
                    dv = d[jj]
                    s[jj] = dv
                    ec = float_exponent(dv) if dv != 0.0 and np.isfinite(dv) else floor
                    ec = ec if ec > p.emin_c else p.emin_c
                    E[jj] = ec if ec > floor else floor
                # the group terms G * sa * sb (exact) and their scale exponents
                for g in range(ng):
                    q = (k0 + g * group) // block
                    sa, ea = SA[i, q], ESA[i, q]
                    Gg = G[g]
                    sbq, ebq = SB[q, j0:j1], ESB[q, j0:j1]
                    for jj in range(w):
                        v = Gg[jj] * sa * sbq[jj]
                        Gg[jj] = v
                        s[jj] += v
                        e = ea + ebq[jj]
                        E[jj] = e if e > E[jj] else E[jj]
                for jj in range(w):
                    scale_bits[jj] = np.int64(F - E[jj] + 1023) << 52
                for jj in range(w):
                    S[jj] = np.trunc(d[jj] * scale[jj]) if np.isfinite(s[jj]) else 0.0
                for g in range(ng):
                    Gg = G[g]
                    for jj in range(w):
                        S[jj] += np.trunc(Gg[jj] * scale[jj]) if np.isfinite(s[jj]) else 0.0
                _epilogue(E[:w], S_bits[:w], d[:w], okv[:w], rb[:w], rbf[:w], sb[:w], sbf[:w], F,
                          p.out_frac_bits, p.out_emin, p.out_emax, p.rz)
                for jj in range(w):
                    if not np.isfinite(s[jj]):
                        d[jj] = np.nan if np.isnan(s[jj]) else s[jj]
                    elif okv[jj] == 0:
                        d[jj] = round_int(S[jj], E[jj] - F, p.out_frac_bits, p.out_emin, p.out_emax, p.rz)
            for jj in range(w):
                out[i, j0 + jj] = d[jj]
    return out


GROUP_GEMM = twins(_group_gemm_py)
