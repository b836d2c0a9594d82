"""Numba kernels of the scaling package (compiled on first use, cached).

amax works on the bit patterns: for IEEE binary floats, ``bits & ~sign`` orders non-negative values like
the values themselves, and every NaN pattern lies above the pattern of +Inf. An integer max over
``bits & ~sign`` is therefore the absolute maximum, and it is a NaN pattern exactly when a NaN was
present (NaN propagates for free; the "ignore" policy maps NaN patterns to 0 first). Integer max
reductions vectorise, so this pass runs at memory speed.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def amax_bits(u, mask, inf_bits, ignore_nan):  # pragma: no cover - compiled
    """Max of ``u & mask`` over a 1-D unsigned array; NaN patterns (``> inf_bits``) count as 0 when
    ``ignore_nan``."""
    n = u.size
    nchunks = 64
    chunk = (n + nchunks - 1) // nchunks
    part = np.zeros(nchunks, dtype=u.dtype)
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        m = u.dtype.type(0)
        if ignore_nan:
            for i in range(lo, hi):
                v = u[i] & mask
                v = v if v <= inf_bits else u.dtype.type(0)
                m = v if v > m else m
        else:
            for i in range(lo, hi):
                v = u[i] & mask
                m = v if v > m else m
        part[c] = m
    m = u.dtype.type(0)
    for c in range(nchunks):
        m = part[c] if part[c] > m else m
    return m


@njit(cache=True, parallel=True)
def amax_bits_blocks(u, br, bc, mask, inf_bits, ignore_nan):  # pragma: no cover - compiled
    """Per-block max of ``u & mask`` over a 2-D unsigned array, blocks ``(br, bc)``; partial edge blocks
    take the max over the elements present. Returns the ``(ceil(M/br), ceil(N/bc))`` grid."""
    m_rows, n_cols = u.shape
    gm = (m_rows + br - 1) // br
    gn = (n_cols + bc - 1) // bc
    out = np.zeros((gm, gn), dtype=u.dtype)
    zero = u.dtype.type(0)
    for bi in prange(gm):
        for i in range(bi * br, min(m_rows, (bi + 1) * br)):
            for bj in range(gn):
                m = out[bi, bj]
                for j in range(bj * bc, min(n_cols, (bj + 1) * bc)):
                    v = u[i, j] & mask
                    if ignore_nan and v > inf_bits:
                        v = zero
                    m = v if v > m else m
                out[bi, bj] = m
    return out
