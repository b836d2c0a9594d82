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

from fp8ref.cast.kernels import SMALL, bits_to_f32, f32_to_bits, threads_for  # noqa: F401 - re-exported


@njit(cache=True, parallel=True)
def amax_bits(u, mask, inf_bits, ignore_nan):  # pragma: no cover - compiled
    """Max of ``u & mask`` over a 1-D signed-integer view (int32 of float32, int64 of float64); NaN
    patterns (``> inf_bits``) count as 0 when ``ignore_nan``."""
    n = u.size
    nchunks = 64
    chunk = (n + nchunks - 1) // nchunks
    part = np.zeros(nchunks, dtype=u.dtype)
    zero = u.dtype.type(0)
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        us = u[lo:hi]  # a slice: the loops below vectorise
        m = zero
        if ignore_nan:
            for i in range(us.size):
                v = us[i] & mask
                v = v if v <= inf_bits else zero
                m = max(m, v)
        else:
            for i in range(us.size):
                m = max(m, us[i] & mask)
        part[c] = m
    m = zero
    for c in range(nchunks):
        m = max(m, part[c])
    return m


@njit(cache=True)
def amax_bits_serial(u, mask, inf_bits, ignore_nan):  # pragma: no cover - compiled
    """:func:`amax_bits` on the calling thread (small arrays: no parallel region to launch)."""
    m = u.dtype.type(0)
    zero = m
    if ignore_nan:
        for i in range(u.size):
            v = u[i] & mask
            v = v if v <= inf_bits else zero
            m = max(m, v)
    else:
        for i in range(u.size):
            m = max(m, u[i] & mask)
    return m


@njit(cache=True, parallel=True)
def amax_bits_blocks(u, br, bc, mask, inf_bits, ignore_nan):  # pragma: no cover - compiled
    """Per-block max of ``u & mask`` over a 2-D signed-integer view, blocks ``(br, bc)``; partial edge
    blocks take the max over the elements present. Returns the ``(ceil(M/br), ceil(N/bc))`` grid."""
    m_rows, n_cols = u.shape
    gm = (m_rows + br - 1) // br
    gn = (n_cols + bc - 1) // bc
    out = np.zeros((gm, gn), dtype=u.dtype)
    zero = u.dtype.type(0)
    for bi in prange(gm):
        for i in range(bi * br, min(m_rows, (bi + 1) * br)):
            for bj in range(gn):
                us = u[i, bj * bc:min(n_cols, (bj + 1) * bc)]
                m = out[bi, bj]
                if ignore_nan:
                    for j in range(us.size):
                        v = us[j] & mask
                        v = v if v <= inf_bits else zero
                        m = max(m, v)
                else:
                    for j in range(us.size):
                        m = max(m, us[j] & mask)
                out[bi, bj] = m
    return out


# ---- the fused scale-and-cast kernels ----------------------------------------------------------------
# Float32 encoder: ``a = bits & 0x7FFFFFFF``; the significand ``sig`` (hidden bit included for normal
# float32) times ``2**(E - 23)`` is the value. In the target, the unit in the last place at exponent
# ``ex = max(E, emin)`` is ``2**(ex - mbits)``, so ``n = round(sig / 2**s)`` with ``s = ex - E + 23 - mbits``
# is the significand there, and the code of the magnitude is ``((ex - emin) << mbits) + n`` (the hidden
# bit of ``n`` lands in the exponent field; a rounding carry moves to the next binade by itself). The
# rounding is ``(sig + t) >> s`` with the increment ``t`` of the mode: nearest_even ``half - 1 + lsb``,
# nearest_away ``half``, toward_zero 0, toward_positive/negative ``one - 1`` on the matching sign.


def f32_encoder_params(fmt, saturate: bool, mode: int) -> tuple[int, ...] | None:
    """Parameters of :func:`encode_f32` for ``fmt``, ``saturate`` and the deterministic rounding ``mode``
    (0..4), or ``None`` where the float32 encoder does not apply (formats without zero, subnormals or NaN,
    ``emin < -126``, ``mbits > 22``, more than 8 bits). The mode becomes branch-free integer masks:
    the rounding increment is ``t = (half & kh) - k1 + (lsb & kodd) + ((one - 1) & (kpos or kneg))``
    (``kh``, ``kpos``, ``kneg`` are 0 or -1, ``k1`` and ``kodd`` 0 or 1)."""
    if not (fmt.has_zero and fmt.has_subnormals and fmt.signed and fmt.nan != "none"
            and fmt.emin >= -126 and fmt.mbits <= 22 and fmt.bits <= 8) or mode not in range(5):
        return None
    ovf = fmt.inf_code if fmt.inf_code is not None else fmt.nan_code
    kh, k1, kodd = {0: (-1, 1, 1), 1: (-1, 0, 0)}.get(mode, (0, 0, 0))
    kpos, kneg = -int(mode == 3), -int(mode == 4)
    clamp_pos = int(bool(saturate) or mode in (2, 4))  # finite overflow of a positive value -> max
    clamp_neg = int(bool(saturate) or mode in (2, 3))
    return (fmt.mbits, fmt.emin, fmt.max_code, fmt.sign_mask, fmt.sign_mask if fmt.has_negative_zero else 0,
            fmt.nan_code, ovf, int(bool(saturate)), kh, k1, kodd, kpos, kneg, clamp_pos, clamp_neg)


def f32_rne_params(fmt, saturate: bool) -> tuple[int, ...] | None:
    """Parameters of :func:`encode_f32_rne` (nearest-even), or ``None`` where it does not apply (as
    :func:`f32_encoder_params`, and the magic number below must be a normal float32)."""
    if (f32_encoder_params(fmt, saturate, 0) is None or not -126 <= fmt.emin - fmt.mbits + 23 <= 127
            or fmt.emax > 127):  # the magic number a finite float32; float32's Inf above the format's max
        return None
    sh = 23 - fmt.mbits
    rebias = (127 + fmt.emin - 1) << 23  # float32 biased exponent minus the target's, in place
    magic_bits = (fmt.emin - fmt.mbits + 23 + 127) << 23  # 2**(emin - mbits + 23)
    ovf = fmt.max_code if saturate else (fmt.inf_code if fmt.inf_code is not None else fmt.nan_code)
    return (sh, (1 << (sh - 1)) - 1 - rebias, magic_bits, (fmt.emin + 127) << 23, fmt.max_code, ovf,
            fmt.nan_code, fmt.sign_mask, fmt.sign_mask if fmt.has_negative_zero else 0)


@njit(cache=True, inline="always")
def encode_f32_rne(y, rp):  # pragma: no cover - compiled
    """Nearest-even code of the float32 ``y`` (:func:`f32_rne_params`). With ``a`` the bits of ``|y|``:
    a normal result is ``(a - rebias + half - 1 + lsb) >> sh`` (the target's exponent field and mantissa
    in one integer; a rounding carry moves into the exponent by itself); a result below the smallest
    normal is read off the float32 sum ``|y| + magic``, ``magic = 2**(emin - mbits + 23)``, whose ulp is
    the smallest subnormal of the target, so the FPU's nearest-even addition does the rounding. Values
    above max (and +-Inf) give ``ovf`` (max when saturating), NaN the NaN code, with the sign of ``y``."""
    u = np.int64(f32_to_bits(y))
    a = u & 0x7FFFFFFF
    nrm = (a + rp[1] + ((a >> rp[0]) & 1)) >> rp[0]
    sub = np.int64(f32_to_bits(abs(y) + bits_to_f32(np.int32(rp[2])))) - rp[2]
    mag = sub if a < rp[3] else nrm
    mag = rp[5] if mag > rp[4] else mag
    mag = rp[6] if a > 0x7F800000 else mag
    sb = rp[7] if mag != 0 else rp[8]
    return (mag | sb) if u < 0 else mag


@njit(cache=True, inline="always")
def encode_f32(y, fp):  # pragma: no cover - compiled
    """Code (int32) of the float32 ``y`` in the format and mode of ``fp`` (:func:`f32_encoder_params`)."""
    mbits = np.int32(fp[0])
    emin = np.int32(fp[1])
    maxcode = np.int32(fp[2])
    u = f32_to_bits(y)
    neg = u < np.int32(0)
    a = u & np.int32(0x7FFFFFFF)
    e32 = a >> np.int32(23)
    normal = e32 > np.int32(0)
    sig = (a & np.int32(0x7FFFFF)) | (np.int32(0x800000) if normal else np.int32(0))
    big_e = (e32 if normal else np.int32(1)) - np.int32(127)
    ex = max(big_e, emin)
    s = min(ex - big_e + np.int32(23) - mbits, np.int32(26))
    one = np.int32(1) << s
    t = (((one >> np.int32(1)) & np.int32(fp[8])) - np.int32(fp[9])
         + ((sig >> s) & np.int32(fp[10]))
         + ((one - np.int32(1)) & np.int32(fp[12] if neg else fp[11])))
    mag = ((ex - emin) << mbits) + ((sig + t) >> s)
    clamp = (fp[14] if neg else fp[13]) != 0
    if mag > maxcode:
        mag = maxcode if clamp else np.int32(fp[6])
    if e32 == np.int32(255):
        inf_code = maxcode if fp[7] != 0 else np.int32(fp[6])
        mag = np.int32(fp[5]) if (a & np.int32(0x7FFFFF)) != 0 else inf_code
    sb = np.int32(fp[3]) if mag != np.int32(0) else np.int32(fp[4])
    return (mag | sb) if neg else mag


@njit(cache=True, parallel=True)
def scaled_cast_flat_f32(x, q, fp, out):  # pragma: no cover - compiled
    """``out[i] = encode(float32(x[i] * q))`` over 1-D float32 ``x``."""
    for i in prange(x.size):
        out[i] = encode_f32(x[i] * q, fp)


@njit(cache=True, parallel=True)
def scaled_cast_amax_flat_f32(x, q, fp, out):  # pragma: no cover - compiled
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
            os[i] = encode_f32(xs[i] * q, fp)
        m = np.int32(0)
        for i in range(bs.size):
            v = bs[i] & np.int32(0x7FFFFFFF)
            v = v if v <= np.int32(0x7F800000) else np.int32(0)
            m = max(m, v)
        part[c] = m
    m = np.int32(0)
    for c in range(ntiles):
        m = max(m, part[c])
    return m


@njit(cache=True, parallel=True)
def scaled_cast_blocks_f32(x, qgrid, br, bc, fp, out):  # pragma: no cover - compiled
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
                os[j] = encode_f32(xs[j] * q, fp)


# ---- the same kernels with the nearest-even encoder ------------------------------------------------
@njit(cache=True, parallel=True)
def scaled_cast_flat_f32_rne(x, q, fp, out):  # pragma: no cover - compiled
    """The nearest-even twin of the kernel above (:func:`encode_f32_rne`)."""
    for i in prange(x.size):
        out[i] = encode_f32_rne(x[i] * q, fp)


@njit(cache=True, parallel=True)
def scaled_cast_amax_flat_f32_rne(x, q, fp, out):  # pragma: no cover - compiled
    """The nearest-even twin of the kernel above (:func:`encode_f32_rne`)."""
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
            os[i] = encode_f32_rne(xs[i] * q, fp)
        m = np.int32(0)
        for i in range(bs.size):
            v = bs[i] & np.int32(0x7FFFFFFF)
            v = v if v <= np.int32(0x7F800000) else np.int32(0)
            m = max(m, v)
        part[c] = m
    m = np.int32(0)
    for c in range(ntiles):
        m = max(m, part[c])
    return m


@njit(cache=True, parallel=True)
def scaled_cast_blocks_f32_rne(x, qgrid, br, bc, fp, out):  # pragma: no cover - compiled
    """The nearest-even twin of the kernel above (:func:`encode_f32_rne`)."""
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
                os[j] = encode_f32_rne(xs[j] * q, fp)
