"""The NVFP4 / DeepGEMM kernels: after the block-amax pass (``fp8ref.scaling.amax.amax_grid``), one
parallel loop over the blocks computes each block's scale and encodes its elements in the same pass, as
docs/scaling.md section 7 specifies per profile.

Every encode calls the float32 nearest-even encoder of the encoding layer (``encode_rne_f32`` of
``fp8ref/cast/encode.py``) with the record of the target format; the kernel encodes nothing itself. The
NaN results a source's own converter gives (TE's table: code 0; torchao's bit formula; DeepGEMM's FP4
comparisons: code 0) are decided here before the encoder is called, and the DeepGEMM E2M1 tie rule
(ties toward zero) compares with the decoded neighbours.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fp8ref.cast.encode import bits_to_f32, encode_rne_f32, f32_to_bits
from fp8ref.scaling.kernels import _max_bits

# profiles of the block-scale rule
TE = 0  # TransformerEngine NVFP4QuantizerRef
TORCHAO_1 = 1  # torchao nvfp4_quantize, single level
TORCHAO_2 = 2  # torchao nvfp4_quantize, two level
DEEPGEMM = 3  # deep_gemm utils/math.py, sf = max(amax, 1e-4) / elem_max, optional ceil_to_ue8m0
# element encoders
EL_TE_FP4 = 0  # clamp +-6, RNE; NaN and +-0 give code 0 (TE's cast_to_fp4x2 table)
EL_TORCHAO_FP4 = 1  # clamp +-6, RNE; NaN by torchao's bit formula (sign kept)
EL_E4M3 = 2  # plain encode with the record (DeepGEMM FP8: torch's non-saturating cast)
EL_DEEPGEMM_FP4 = 3  # ties toward zero, saturating, no negative zero, NaN -> 0


@njit(cache=True, inline="always")
def torchao_nan_code(y):  # pragma: no cover - compiled
    """torchao ``_f32_to_floatx_unpacked`` (E2M1) on a NaN: its normal branch applied to the NaN's bits
    (``(a - (126 << 23) + 0x1FFFFF + bit22) >> 22``, low 4 bits), with the sign bit kept."""
    u = f32_to_bits(y)
    a = u & np.int32(0x7FFFFFFF)
    c = ((a - np.int32(126 << 23) + np.int32(0x1FFFFF) + ((a >> np.int32(22)) & np.int32(1)))
         >> np.int32(22)) & np.int32(0xF)
    return (c | np.int32(8)) if u < 0 else c


@njit(cache=True, inline="always")
def deepgemm_fp4(y, pq, dec):  # pragma: no cover - compiled
    """DeepGEMM ``_quantize_to_fp4_e2m1``: the number of midpoints strictly below ``|y|`` (ties toward
    zero, 7 above 5), the sign only on a non-zero code, NaN -> 0. From the nearest-even code ``c`` of
    ``|y|`` (``dec``: the decoded magnitudes): a ``|y|`` exactly halfway between ``dec[c - 1]`` and
    ``dec[c]`` was a tie rounded up, and takes ``c - 1``."""
    if y != y:
        return np.int64(0)
    a = abs(y)
    c = np.int64(encode_rne_f32(a, pq)) & np.int64(7)
    if c > 0 and a == np.float32(0.5) * (dec[c] + dec[c - 1]):  # a tie rounded up: take the lower one
        c -= 1
    return (c | np.int64(8)) if (y < 0 and c != 0) else c


@njit(cache=True, inline="always")
def _nvfp4_pre(amax, profile, c1, smax, seps):  # pragma: no cover - compiled
    """The float32 value an NVFP4 block scale is cast from, clamped to ``[seps, smax]`` (NaN passes):
    TE ``min(amax * c1, FLT_MAX)`` (``c1 = enc * fp32(1/6)``); torchao ``amax / 6``, two level
    ``(amax / 6) / c1`` (``c1`` the per-tensor scale)."""
    flt_max = np.float32(3.4028234663852886e38)
    if profile == TE:
        s = amax * c1
        s = flt_max if s > flt_max else s
    elif profile == TORCHAO_1:
        s = amax / np.float32(6.0)
    else:
        s = (amax / np.float32(6.0)) / c1
    s = seps if s < seps else s
    return smax if s > smax else s


@njit(cache=True, inline="always")
def _nvfp4_post(sf, profile, c2):  # pragma: no cover - compiled
    """The element multiplier from the decoded block scale ``sf``: TE ``min(1 / (sf * c2), FLT_MAX)``
    (``c2`` the global decode scale); torchao ``1 / sf``, two level ``c2 / sf`` (``c2 = 1 / pts``)."""
    flt_max = np.float32(3.4028234663852886e38)
    if profile == TE:
        q = np.float32(1.0) / (sf * c2)
        return flt_max if q > flt_max else q
    if profile == TORCHAO_1:
        return np.float32(1.0) / sf
    return c2 / sf


@njit(cache=True, inline="always")
def _block_scale(amax, profile, c1, c2, smax, seps, pe, sdec):  # pragma: no cover - compiled
    """(scale code, decoded block scale, element multiplier q) of one block from its float32 amax."""
    if profile == DEEPGEMM:  # sf = max(amax, 1e-4) / elem_max (c1 = elem_max, seps = 1e-4)
        a = seps if amax < seps else amax
        sf = a / c1
        code = np.int64(0)
        if c2 != 0:  # ceil_to_ue8m0
            u = f32_to_bits(sf) & np.int32(0x7FFFFFFF)
            e = ((u >> np.int32(23)) & np.int32(0xFF)) + (np.int32(1) if (u & np.int32(0x7FFFFF)) != 0
                                                         else np.int32(0))
            e = min(max(e, np.int32(1)), np.int32(254))
            code = np.int64(e)
            sf = bits_to_f32(np.int32(e << np.int32(23)))
        return code, sf, np.float32(1.0) / sf
    code = np.int64(encode_rne_f32(_nvfp4_pre(amax, profile, c1, smax, seps), pe))
    sf = sdec[code]
    return code, sf, _nvfp4_post(sf, profile, c2)


# The element rules clamp to +-6 (E2M1's max) before the cast. ``pq`` is the saturating E2M1 record
# (``encoder_params(E2M1, "nearest_even", True)``), whose encode of any |y| > 6 or +-Inf is the max code
# with the sign of y: the code of the clamped value. So the clamp is the encoder's saturation and is not
# written again (tests/scaling/test_scaling_nvfp4.py checks both rules equal on every float32).
@njit(cache=True, inline="always")
def _te_fp4(y, pq):  # pragma: no cover - compiled
    """TE's ``cast_to_fp4x2`` after ``clamp(y, -6, 6)``: nearest even; NaN and +-0 give code 0."""
    c = np.int64(encode_rne_f32(y, pq))
    return np.int64(0) if (y != y) | (y == np.float32(0)) else c


@njit(cache=True, inline="always")
def _torchao_fp4(y, pq):  # pragma: no cover - compiled
    """torchao's ``f32_to_f4_unpacked`` after ``clamp(y, -6, 6)``: nearest even, sign kept, NaN by its
    bit formula."""
    c = np.int64(encode_rne_f32(y, pq))
    return np.int64(torchao_nan_code(y)) if y != y else c


@njit(cache=True, inline="always")
def _encode_block(xs, os, q, element, pq, qdec):  # pragma: no cover - compiled
    """Codes ``os`` of the slice ``xs`` times ``q``: one loop per element rule over slices (so that each
    vectorises). A NaN multiplier propagates into every product (as torch's CPU kernels give it)."""
    if q != q:
        for j in range(xs.size):
            os[j] = (_te_fp4(q, pq) if element == EL_TE_FP4 else _torchao_fp4(q, pq)
                     if element == EL_TORCHAO_FP4 else deepgemm_fp4(q, pq, qdec)
                     if element == EL_DEEPGEMM_FP4 else np.int64(encode_rne_f32(q, pq)))
    elif element == EL_TE_FP4:
        for j in range(xs.size):
            os[j] = _te_fp4(xs[j] * q, pq)
    elif element == EL_TORCHAO_FP4:
        for j in range(xs.size):
            os[j] = _torchao_fp4(xs[j] * q, pq)
    elif element == EL_E4M3:
        for j in range(xs.size):
            os[j] = encode_rne_f32(xs[j] * q, pq)
    else:
        for j in range(xs.size):
            os[j] = deepgemm_fp4(xs[j] * q, pq, qdec)


@njit(cache=True, inline="always")
def _encode_rows16(xs, os, qs, element, pq):  # pragma: no cover - compiled
    """NVFP4 codes ``os[b, j]`` of ``xs[b, j] * qs[b]`` for a (blocks, 16) chunk: per block a constant
    16-element loop (which LLVM vectorises without per-block slice set-up); a NaN multiplier propagates
    into the whole block (as torch's CPU kernels give it). TE's rule gives code 0 for every NaN, so its
    loop needs no test of the multiplier (``x * NaN`` is NaN)."""
    if element == EL_TE_FP4:
        for b in range(xs.shape[0]):
            q = qs[b]
            for j in range(16):
                os[b, j] = _te_fp4(xs[b, j] * q, pq)
        return
    for b in range(xs.shape[0]):
        q = qs[b]
        if q != q:
            c = _torchao_fp4(q, pq)
            for j in range(16):
                os[b, j] = c
        else:
            for j in range(16):
                os[b, j] = _torchao_fp4(xs[b, j] * q, pq)


@njit(cache=True, parallel=True)
def block_cast(x, br, bc, profile, element, c1, c2, smax, seps, pe, sdec, pq, qdec,
               codes, agrid, scodes, sgrid, qgrid):  # pragma: no cover - compiled
    """Per block ``(br, bc)`` of the 2-D float32 ``x`` (partial edge blocks over the elements present),
    from its amax ``agrid`` (the first pass): the profile's block scale, ``y = x * q`` in float32 and the
    element codes. Writes codes, the scale codes, decoded scales and multipliers of the grid."""
    m_rows, n_cols = x.shape
    gm, gn = agrid.shape
    for b in prange(gm * gn):
        bi = b // gn
        bj = b - bi * gn
        code, sf, q = _block_scale(agrid[bi, bj], profile, c1, c2, smax, seps, pe, sdec)
        scodes[bi, bj] = code
        sgrid[bi, bj] = sf
        qgrid[bi, bj] = q
        k0 = bj * bc
        k1 = min(n_cols, k0 + bc)
        for i in range(bi * br, min(m_rows, (bi + 1) * br)):
            _encode_block(x[i, k0:k1], codes[i, k0:k1], q, element, pq, qdec)


@njit(cache=True, parallel=True)
def block_amax_1x16(x, agrid):  # pragma: no cover - compiled
    """The amax (NaN propagating, as the float32 bit pattern's integer max) of every 16-element block of the
    flat float32 ``x``, into ``agrid``; 1024 blocks per parallel chunk."""
    nb = x.size // 16
    chunk = 1024
    bits = x.view(np.int32)
    for c in prange((nb + chunk - 1) // chunk):
        for b in range(c * chunk, min(nb, (c + 1) * chunk)):
            lo = b * 16
            m = _max_bits(bits[lo:lo + 16], np.int32(0x7FFFFFFF), np.int32(0x7F800000), False, np.int32(0))
            agrid[b] = bits_to_f32(np.int32(m))


@njit(cache=True, parallel=True)
def block_cast_1x16(x, profile, element, c1, c2, smax, seps, pe, sdec, pq, qdec,
                    codes, agrid, scodes, sgrid, qgrid):  # pragma: no cover - compiled
    """:func:`block_cast` for NVFP4's 1x16 tiles of a flat float32 ``x`` (rows a multiple of 16 long)
    from the block amaxes ``agrid`` (:func:`block_amax_1x16`): per parallel chunk of 1024 blocks, the
    scales in four straight loops over the chunk (pre-cast value, E4M3 encode, decode, multiplier: each
    vectorises), then the codes of the chunk viewed as (blocks, 16) (:func:`_encode_rows16`)."""
    nb = x.size // 16
    chunk = 1024
    for c in prange((nb + chunk - 1) // chunk):
        b0 = c * chunk
        b1 = min(nb, b0 + chunk)
        ag, sc, sg, qg = agrid[b0:b1], scodes[b0:b1], sgrid[b0:b1], qgrid[b0:b1]
        pre = np.empty(b1 - b0, dtype=np.float32)
        for j in range(ag.size):
            pre[j] = _nvfp4_pre(ag[j], profile, c1, smax, seps)
        for j in range(ag.size):
            sc[j] = encode_rne_f32(pre[j], pe)
        for j in range(ag.size):
            sg[j] = sdec[sc[j]]
        for j in range(ag.size):
            qg[j] = _nvfp4_post(sg[j], profile, c2)
        _encode_rows16(x[b0 * 16:b1 * 16].reshape((b1 - b0, 16)),
                       codes[b0 * 16:b1 * 16].reshape((b1 - b0, 16)), qg, element, pq)
