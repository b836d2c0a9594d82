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

from fp8ref.cast.encode import encode_f32
from fp8ref.cast.kernels import SMALL, threads_for  # noqa: F401 - re-exported


@njit(cache=True, inline="always")
def _max_bits(us, mask, inf_bits, ignore_nan, m):  # pragma: no cover - compiled
    """``max(m, max(us & mask))`` over the 1-D slice ``us``; NaN patterns (``> inf_bits``) count as 0 when
    ``ignore_nan``. One loop per policy, so that each vectorises."""
    zero = us.dtype.type(0)
    if ignore_nan:
        for i in range(us.size):
            v = us[i] & mask
            m = max(m, v if v <= inf_bits else zero)
    else:
        for i in range(us.size):
            m = max(m, us[i] & mask)
    return m


@njit(cache=True, parallel=True)
def amax_bits(u, mask, inf_bits, ignore_nan):  # pragma: no cover - compiled
    """Max of ``u & mask`` over a 1-D signed-integer view (int32 of float32, int64 of float64); NaN
    patterns (``> inf_bits``) count as 0 when ``ignore_nan``."""
    n = u.size
    nchunks = 64
    chunk = (n + nchunks - 1) // nchunks
    part = np.zeros(nchunks, dtype=u.dtype)
    for c in prange(nchunks):
        lo = c * chunk
        part[c] = _max_bits(u[lo:min(n, lo + chunk)], mask, inf_bits, ignore_nan, u.dtype.type(0))
    return part.max()


@njit(cache=True)
def amax_bits_serial(u, mask, inf_bits, ignore_nan):  # pragma: no cover - compiled
    """:func:`amax_bits` on the calling thread (small arrays: no parallel region to launch)."""
    return _max_bits(u, mask, inf_bits, ignore_nan, u.dtype.type(0))


@njit(cache=True, parallel=True)
def amax_bits_blocks(u, br, bc, mask, inf_bits, ignore_nan):  # pragma: no cover - compiled
    """Per-block max of ``u & mask`` over a 2-D signed-integer view, blocks ``(br, bc)``; partial edge
    blocks take the max over the elements present. Returns the ``(ceil(M/br), ceil(N/bc))`` grid."""
    m_rows, n_cols = u.shape
    gm = (m_rows + br - 1) // br
    gn = (n_cols + bc - 1) // bc
    out = np.zeros((gm, gn), dtype=u.dtype)
    for bi in prange(gm):
        for i in range(bi * br, min(m_rows, (bi + 1) * br)):
            for bj in range(gn):
                us = u[i, bj * bc:min(n_cols, (bj + 1) * bc)]
                out[bi, bj] = _max_bits(us, mask, inf_bits, ignore_nan, out[bi, bj])
    return out


# ---- the fused scale-and-cast kernels ----------------------------------------------------------------
# Loops over the float32 encoder of the encoding layer (fp8ref.cast.encode.encode_f32: nearest-even or the
# other deterministic modes, by the record; LLVM compiles one vectorised loop per branch).
@njit(cache=True, parallel=True)
def scaled_cast_flat(x, q, p, out):  # pragma: no cover - compiled
    """``out[i] = encode(float32(x[i] * q))`` over 1-D float32 ``x``."""
    for i in prange(x.size):
        out[i] = encode_f32(x[i] * q, p)


@njit(cache=True, parallel=True)
def scaled_cast_amax_flat(x, q, p, out):  # pragma: no cover - compiled
    """One pass over memory: ``out[i] = encode(float32(x[i] * q))`` and the amax of ``x`` (NaN ignored, as
    TransformerEngine's ``fmaxf``), returned as the float32 bit pattern. Each 4096-element tile is encoded
    and then reduced while it is in cache, so both loops vectorise."""
    n = x.size
    tile = 4096
    ntiles = (n + tile - 1) // tile
    part = np.zeros(ntiles, dtype=np.int32)
    bits = x.view(np.int32)
    for c in prange(ntiles):
        lo = c * tile
        hi = min(n, lo + tile)
        xs, os, bs = x[lo:hi], out[lo:hi], bits[lo:hi]  # slices: the loops below vectorise
        for i in range(xs.size):
            os[i] = encode_f32(xs[i] * q, p)
        part[c] = _max_bits(bs, np.int32(0x7FFFFFFF), np.int32(0x7F800000), True, np.int32(0))
    return part.max() if ntiles else np.int32(0)


@njit(cache=True, parallel=True)
def scaled_cast_blocks(x, qgrid, br, bc, p, out):  # pragma: no cover - compiled
    """``out[i, j] = encode(float32(x[i, j] * qgrid[i // br, j // bc]))`` over 2-D float32 ``x``."""
    m_rows, n_cols = x.shape
    gn = qgrid.shape[1]
    for i in prange(m_rows):
        bi = i // br
        for bj in range(gn):
            q = qgrid[bi, bj]
            lo = bj * bc
            hi = min(n_cols, lo + bc)
            xs, os = x[i, lo:hi], out[i, lo:hi]
            for j in range(xs.size):
                os[j] = encode_f32(xs[j] * q, p)
