"""The kernel of block-scaled instructions that sum groups of products exactly (``kind::mxf4nvf4``).

:func:`fp8ref.accum.dispatch.group_scaled_gemm` forms the exact group sums ``G[g] = A[:, g] @ B[g, :]`` (16
E2M1 products: multiples of 2^-2 below 2^10, exact in float64 in any order) and calls :data:`STEP` once per
instruction: for every output, the accumulator ``d`` and the instruction's group terms
``G * sa * sb`` (<= 20 significant bits: exact) are aligned at ``F`` fraction bits below
``E = max(e_floor, exponent(d), e(sa) + e(sb) of every group)``, truncated (``trunc(t * 2**(F-E))``, exact
power-of-two scaling), summed (integers below 2**53) and rounded once (:func:`primitives.round_int`).
Specials: the float64 sum of ``d`` and the terms decides first (a NaN scale gives NaN, an infinite ``d``
stays). Same rule as :func:`fp8ref.accum.exact.scaled_chain` with ``group > 0``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from fp8ref.accum.primitives import float_exponent, ldexp, round_int, twins


def _step_py(D, G, SA, SB, ESA, ESB, gcol, p):
    M, N = D.shape
    ng = G.shape[0]
    F = p.frac_bits
    for i in prange(M):
        for j in range(N):
            d = D[i, j]
            s = d
            E = p.e_floor
            if d != 0.0 and np.isfinite(d):
                ec = float_exponent(d)
                ec = ec if ec > p.emin_c else p.emin_c
                E = ec if ec > E else E
            for g in range(ng):
                q = gcol[g]
                s += G[g, i, j] * SA[i, q] * SB[q, j]
                e = ESA[i, q] + ESB[q, j]
                E = e if e > E else E
            if not np.isfinite(s):
                D[i, j] = np.nan if np.isnan(s) else s
                continue
            sc = ldexp(1.0, F - E)
            S = math.trunc(d * sc)
            for g in range(ng):
                q = gcol[g]
                S += math.trunc(G[g, i, j] * SA[i, q] * SB[q, j] * sc)
            D[i, j] = round_int(S, E - F, p.out_frac_bits, p.out_emin, p.out_emax, p.rz)
    return D


STEP = twins(_step_py)
