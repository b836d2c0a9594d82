"""Numba kernels of the casts, and a scalar encoder that other ``@njit`` kernels can inline.

Importing this module compiles nothing; every function compiles on first call (``cache=True``).
The exact specification is :mod:`fp8ref.cast.oracle`; the tests hold these kernels equal to it.

Scalar encoder for fused kernels (stable signature)
----------------------------------------------------
``format_params(fmt) -> tuple[int, ...]``
    The format as a tuple of 11 ``int`` (pass it into ``@njit`` code as it is; do not index it by
    position outside this module, fields may only be *appended*).

``encode_scalar(x, params, mode, saturate, rbits, nbits) -> int64``  (``@njit``, inlinable)
    The code of the float ``x`` (float64 or float32; float32 is widened exactly) in the format of
    ``params``, rounded once, exactly, with rounding mode index ``mode`` (the position in
    ``fp8ref.ROUNDING_MODES``, see :func:`mode_index`), ``saturate`` a bool, and for the stochastic modes
    ``rbits`` random bits ``R`` with ``0 <= R < 2**nbits`` and ``1 <= nbits <= 32`` (ignored by the other
    modes; pass 0, 0). Returns ``-1`` where the format has no NaN and the result would be NaN (only
    formats with ``nan="none"``); every other result is a code in ``[0, 2**bits)``.

Example: the scaling bias fused with the cast (``x_fp8 = Q(x * 2**bias)``)::

    from numba import njit, prange
    from fp8ref.cast.kernels import encode_scalar, format_params, mode_index

    @njit(parallel=True, cache=True)
    def scaled_cast(x, scale, p, mode, sat, out):
        for i in prange(x.size):
            out[i] = encode_scalar(np.float64(x[i]) * scale, p, mode, sat, 0, 0)

    scaled_cast(x, 2.0**bias, format_params(E4M3), mode_index("nearest_even"), True, out)

(``float64(x) * 2**bias`` is exact for float32 ``x`` unless it over- or underflows float64, so the
fused kernel still rounds once.)
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from fp8ref.formats import Format

# ---- format parameters ------------------------------------------------------------------------
# index of each field in the params tuple
P_MBITS, P_EMIN, P_BIAS, P_MAXCODE, P_SIGNMASK, P_NANCODE, P_INFCODE = 0, 1, 2, 3, 4, 5, 6
P_HASZERO, P_HASSUB, P_HASNZ, P_SIGNED = 7, 8, 9, 10

MODE_NEAREST_EVEN, MODE_NEAREST_AWAY, MODE_TOWARD_ZERO = 0, 1, 2
MODE_TOWARD_POSITIVE, MODE_TOWARD_NEGATIVE = 3, 4
MODE_STOCHASTIC, MODE_STOCHASTIC_FAST, MODE_STOCHASTIC_FASTEST = 5, 6, 7

CHUNK = 4096  # elements per parallel chunk of the float32 stochastic kernels (a multiple of 4)


SMALL = 1 << 17  # below this many elements a parallel launch costs more than it saves


@contextmanager
def threads_for(n: int):
    """Run the kernels called inside on one thread when ``n`` (elements) is small."""
    if n >= SMALL:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def format_params(fmt: Format) -> tuple[int, ...]:
    """The kernel view of ``fmt`` (formats of at most 16 bits)."""
    if fmt.bits > 16:
        raise ValueError(f"the cast kernels encode formats of at most 16 bits; {fmt.name} has {fmt.bits}")
    return (
        fmt.mbits,
        fmt.emin,
        fmt.bias,
        fmt.max_code,
        fmt.sign_mask,
        -1 if fmt.nan_code is None else fmt.nan_code,
        -1 if fmt.inf_code is None else fmt.inf_code,
        int(fmt.has_zero),
        int(fmt.has_subnormals),
        int(fmt.has_negative_zero),
        int(fmt.signed),
    )


def mode_index(rounding: str) -> int:
    """Index of a rounding-mode name in ``fp8ref.ROUNDING_MODES``."""
    from fp8ref.cast.oracle import ROUNDING_MODES

    return ROUNDING_MODES.index(rounding)


# ---- bit casts ----------------------------------------------------------------------------------
@intrinsic
def f64_to_bits(typingctx, x):  # noqa: ARG001 - numba intrinsic signature
    """The IEEE bit pattern of a float64 as int64."""
    if not (isinstance(x, types.Float) and x.bitwidth == 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def f32_to_bits(typingctx, x):  # noqa: ARG001 - numba intrinsic signature
    """The IEEE bit pattern of a float32 as int32."""
    if not (isinstance(x, types.Float) and x.bitwidth == 32):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


# ---- the exact scalar encoder (float64 bits) ----------------------------------------------------
@njit(cache=True, inline="always")
def _special_code(p, code_kind, negative, saturate):
    """code_kind: 0 NaN, 1 overflow to Inf/NaN, 2 saturate to max, 3 'no value' (negative in an unsigned
    format, zero in a format without zero)."""
    sign_bits = p[P_SIGNMASK] if negative else 0
    if code_kind == 2:
        return p[P_MAXCODE] | sign_bits
    if code_kind == 3:
        if saturate:
            return 0
        if p[P_NANCODE] < 0:
            return -1
        return p[P_NANCODE] | sign_bits
    if code_kind == 1 and p[P_INFCODE] >= 0:
        return p[P_INFCODE] | sign_bits
    if p[P_NANCODE] < 0:
        return -1
    return p[P_NANCODE] | sign_bits


@njit(cache=True, inline="always")
def encode_bits64(bits, p, mode, saturate, rbits, nbits):
    """:func:`encode_scalar` on the int64 bit pattern of a float64."""
    mbits = p[P_MBITS]
    emin = p[P_EMIN]
    negative = bits < 0
    e = (bits >> 52) & 0x7FF
    m = bits & 0xFFFFFFFFFFFFF
    if e == 0x7FF:
        if m != 0:
            return _special_code(p, 0, negative, saturate)
        if negative and p[P_SIGNED] == 0:
            return _special_code(p, 3, negative, saturate)
        return _special_code(p, 2 if saturate else 1, negative, saturate)
    if e == 0 and m == 0:
        if p[P_HASZERO] == 0:
            return _special_code(p, 3, negative, saturate)
        return p[P_SIGNMASK] if (negative and p[P_HASNZ] != 0) else 0
    if negative and p[P_SIGNED] == 0:
        return _special_code(p, 3, negative, saturate)
    if e == 0:
        sig = m
        ein = -1074
        E = ein + 51
        while (sig >> (E - ein)) == 0:
            E -= 1
    else:
        sig = m | 0x10000000000000
        ein = e - 1075
        E = e - 1023
    below = E < emin and p[P_HASSUB] == 0
    if below:
        ex = emin
        qexp = emin
    else:
        ex = E if E > emin else emin
        qexp = ex - mbits
    s = qexp - ein
    # kept = floor(|x| / 2**qexp); the fraction delta = frac / 2**33 (+ sticky below it)
    if s <= 0:
        kept = sig << (-s)
        frac = 0
        sticky = 0
    elif s <= 33:
        kept = sig >> s
        frac = (sig & ((1 << s) - 1)) << (33 - s)
        sticky = 0
    elif s < 63:
        kept = sig >> s
        rem = sig & ((1 << s) - 1)
        frac = rem >> (s - 33)
        sticky = 1 if (rem & ((1 << (s - 33)) - 1)) != 0 else 0
    elif s < 86:
        kept = 0
        frac = sig >> (s - 33)
        sticky = 1 if (sig & ((1 << (s - 33)) - 1)) != 0 else 0
    else:
        kept = 0
        frac = 0
        sticky = 1
    half = 1 << 32
    nonzero = frac != 0 or sticky != 0
    if mode == 0:
        if mbits > 0:
            odd = (kept & 1) != 0
        else:
            odd = kept != 0 and ((qexp + p[P_BIAS]) & 1) != 0
        away = frac > half or (frac == half and (sticky != 0 or odd))
    elif mode == 1:
        away = frac >= half
    elif mode == 2:
        away = False
    elif mode == 3:
        away = (not negative) and nonzero
    elif mode == 4:
        away = negative and nonzero
    elif mode == 5:
        t = frac >> (33 - nbits)
        low = frac & ((1 << (33 - nbits)) - 1)
        hl = 1 << (32 - nbits)
        d = t + (1 if (low > hl or (low == hl and (sticky != 0 or (t & 1) != 0))) else 0)
        away = d + rbits >= (1 << nbits)
    elif mode == 6:
        # delta * 2**(r+1) + 2R + 1 >= 2**(r+1)  <=>  floor(delta * 2**(r+1)) + 2R + 1 >= 2**(r+1)
        away = (frac >> (32 - nbits)) + 2 * rbits + 1 >= (1 << (nbits + 1))
    else:
        # delta * 2**r + R >= 2**r  <=>  floor(delta * 2**r) + R >= 2**r
        away = (frac >> (33 - nbits)) + rbits >= (1 << nbits)
    if away:
        kept += 1
    if kept == 0:
        if p[P_HASZERO] == 0:
            return 0  # a nonzero input underflows to the smallest value of a format without zero
        return p[P_SIGNMASK] if (negative and p[P_HASNZ] != 0) else 0
    offset = 0 if p[P_HASZERO] != 0 else (1 << mbits)
    if below:
        mag = (kept << mbits) - offset
    else:
        mag = ((ex - emin) << mbits) + kept - offset
    if mag > p[P_MAXCODE]:
        if saturate or mode == 2 or (mode == 3 and negative) or (mode == 4 and not negative):
            return _special_code(p, 2, negative, saturate)
        return _special_code(p, 1, negative, saturate)
    return mag | (p[P_SIGNMASK] if negative else 0)


@njit(cache=True, inline="always")
def encode_scalar(x, p, mode, saturate, rbits, nbits):
    """The code of float ``x`` in the format ``p`` (see the module docstring)."""
    return encode_bits64(f64_to_bits(np.float64(x)), p, mode, saturate, rbits, nbits)


# ---- array kernels ------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def quantize_f64(bits, p, mode, saturate, out):
    """Deterministic modes; ``bits`` is the int64 view of a float64 array. Returns the number of
    elements without an encoding (written as 0)."""
    nerr = 0
    for i in prange(bits.size):
        c = encode_bits64(bits[i], p, mode, saturate, 0, 0)
        if c < 0:
            nerr += 1
            c = 0
        out[i] = c
    return nerr


@njit(parallel=True, cache=True)
def quantize_f64_srbits(bits, p, mode, saturate, rbits, nbits, out):
    """Stochastic modes with explicit random bits (``rbits`` an int64 array of the same size)."""
    nerr = 0
    for i in prange(bits.size):
        c = encode_bits64(bits[i], p, mode, saturate, rbits[i], nbits)
        if c < 0:
            nerr += 1
            c = 0
        out[i] = c
    return nerr


@njit(cache=True, inline="always")
def _philox_round(c0, c1, c2, c3, k0, k1):
    p0 = np.uint64(0xD2511F53) * c0
    p1 = np.uint64(0xCD9E8D57) * c2
    mask = np.uint64(0xFFFFFFFF)
    return ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & mask, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & mask)


@njit(cache=True, inline="always")
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox-4x32-10 on uint64 values holding 32-bit words (see :mod:`fp8ref.cast.philox`); the ten
    rounds are written out so that a loop over counters vectorises."""
    mask = np.uint64(0xFFFFFFFF)
    w0 = np.uint64(0x9E3779B9)
    w1 = np.uint64(0xBB67AE85)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, (k0 + w0) & mask, (k1 + w1) & mask)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, (k0 + np.uint64(2) * w0) & mask,
                                   (k1 + np.uint64(2) * w1) & mask)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, (k0 + np.uint64(3) * w0) & mask,
                                   (k1 + np.uint64(3) * w1) & mask)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, (k0 + np.uint64(4) * w0) & mask,
                                   (k1 + np.uint64(4) * w1) & mask)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, (k0 + np.uint64(5) * w0) & mask,
                                   (k1 + np.uint64(5) * w1) & mask)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, (k0 + np.uint64(6) * w0) & mask,
                                   (k1 + np.uint64(6) * w1) & mask)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, (k0 + np.uint64(7) * w0) & mask,
                                   (k1 + np.uint64(7) * w1) & mask)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, (k0 + np.uint64(8) * w0) & mask,
                                   (k1 + np.uint64(8) * w1) & mask)
    return _philox_round(c0, c1, c2, c3, (k0 + np.uint64(9) * w0) & mask, (k1 + np.uint64(9) * w1) & mask)


@njit(parallel=True, cache=True)
def quantize_f64_seeded(bits, p, mode, saturate, k0, k1, nbits, out):
    """Stochastic modes with Philox bits keyed by (k0, k1) and the flat index."""
    n = bits.size
    nblocks = (n + 3) // 4
    shift = np.uint64(32 - nbits)
    mask = np.uint64(0xFFFFFFFF)
    nerr = 0
    for blk in prange(nblocks):
        ub = np.uint64(blk)
        w0, w1, w2, w3 = philox4x32_10(ub & mask, ub >> np.uint64(32), np.uint64(0), np.uint64(0),
                                       np.uint64(k0), np.uint64(k1))
        base = blk * 4
        for j in range(4):
            i = base + j
            if i < n:
                w = w0 if j == 0 else (w1 if j == 1 else (w2 if j == 2 else w3))
                c = encode_bits64(bits[i], p, mode, saturate, np.int64(w >> shift), nbits)
                if c < 0:
                    nerr += 1
                    c = 0
                out[i] = c
    return nerr


@njit(parallel=True, cache=True)
def philox_words(n, k0, k1, out):
    """The seeded 32-bit words of elements 0..n-1 (for tests and for exporting the bits)."""
    mask = np.uint64(0xFFFFFFFF)
    for blk in prange((n + 3) // 4):
        ub = np.uint64(blk)
        w0, w1, w2, w3 = philox4x32_10(ub & mask, ub >> np.uint64(32), np.uint64(0), np.uint64(0),
                                       np.uint64(k0), np.uint64(k1))
        base = blk * 4
        for j in range(4):
            i = base + j
            if i < n:
                out[i] = w0 if j == 0 else (w1 if j == 1 else (w2 if j == 2 else w3))


@njit(parallel=True, cache=True)
def quantize_f32(bits, p, mode, saturate, out):
    """Fast path for float32 input (``bits`` its int32 view) in the deterministic modes, for formats
    with zero and subnormals, ``emin >= -126`` and ``mbits <= 22`` (see :func:`f32_fast_ok`).
    32-bit integer arithmetic: the magnitude code is ``((ex - emin) << mbits) + ((sig + t) >> s)``
    where ``t`` is the mode's rounding increment."""
    mbits = np.int32(p[P_MBITS])
    emin = np.int32(p[P_EMIN])
    maxcode = np.int32(p[P_MAXCODE])
    signmask = np.int32(p[P_SIGNMASK])
    nz = np.int32(p[P_SIGNMASK] if p[P_HASNZ] != 0 else 0)
    nanc = np.int32(p[P_NANCODE])
    ovf_pos = np.int32(p[P_INFCODE] if p[P_INFCODE] >= 0 else p[P_NANCODE])
    sat_any = saturate or mode == 2
    sat_neg = saturate or mode == 3  # toward_positive clamps negative overflow
    sat_pos = saturate or mode == 4
    inf_pos = maxcode if saturate else ovf_pos
    m_rne = mode == 0
    m_away = mode == 1
    m_up = mode == 3
    m_down = mode == 4
    for i in prange(bits.size):
        u = bits[i]
        neg = u < 0
        a = u & np.int32(0x7FFFFFFF)
        e32 = a >> np.int32(23)
        e1 = e32 if e32 > 0 else np.int32(1)
        sig = (a & np.int32(0x7FFFFF)) | (np.int32(0x800000) if e32 > 0 else np.int32(0))
        E = e1 - np.int32(127)
        ex = E if E > emin else emin
        s = ex - E + np.int32(23) - mbits
        s = s if s < np.int32(26) else np.int32(26)
        one = np.int32(1) << s
        hl = one >> np.int32(1)
        t = np.int32(0)
        if m_rne:
            t = hl - np.int32(1) + ((sig >> s) & np.int32(1))
        elif m_away:
            t = hl
        elif (m_up and not neg) or (m_down and neg):
            t = one - np.int32(1)
        mag = ((ex - emin) << mbits) + ((sig + t) >> s)
        if mag > maxcode:
            clamp = sat_any or (sat_neg if neg else sat_pos)
            mag = maxcode if clamp else ovf_pos
        if e32 == np.int32(255):
            mag = nanc if (a & np.int32(0x7FFFFF)) != 0 else inf_pos
        sb = signmask if mag != 0 else nz
        out[i] = (mag | sb) if neg else mag
    return 0


@intrinsic
def bits_to_f32(typingctx, x):  # noqa: ARG001 - numba intrinsic signature
    """The float32 with IEEE bit pattern ``x`` (int32 or uint32)."""
    if not (isinstance(x, types.Integer) and x.bitwidth == 32):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(x), codegen


@njit(parallel=True, cache=True)
def quantize_f32_rne(x, bits, p, saturate, out):
    """Fast path for float32 input, nearest-even (``x`` and ``bits`` views of the same memory), formats
    as :func:`quantize_f32`. Normal results: the float32 bits plus the bias change, the half-ulp-minus-one
    and the kept lowest bit, shifted right by ``23 - mbits`` (carries flow into the exponent). Results
    below the smallest normal: the float32 sum ``|x| + 2**(emin - mbits + 23)`` rounds ``|x|`` to a multiple
    of the smallest subnormal in the FPU's nearest-even mode; its low bits are the code."""
    mbits = p[P_MBITS]
    emin = p[P_EMIN]
    sh = 23 - mbits
    add = ((-emin - 126) << 23) + (1 << (sh - 1)) - 1
    minnorm = (emin + 127) << 23
    magic_bits = (emin - mbits + 23 + 127) << 23
    magic = bits_to_f32(np.int32(magic_bits))
    maxcode = p[P_MAXCODE]
    signmask = p[P_SIGNMASK]
    nz = p[P_SIGNMASK] if p[P_HASNZ] != 0 else 0
    nanc = p[P_NANCODE]
    ovf = maxcode if saturate else (p[P_INFCODE] if p[P_INFCODE] >= 0 else p[P_NANCODE])
    for i in prange(bits.size):
        u = np.int64(bits[i])
        a = u & 0x7FFFFFFF
        neg = u < 0
        nrm = (a + add + ((a >> sh) & 1)) >> sh
        sub = np.int64(f32_to_bits(abs(x[i]) + magic)) - magic_bits
        mag = sub if a < minnorm else nrm
        mag = ovf if mag > maxcode else mag
        mag = nanc if a > 0x7F800000 else mag
        sb = signmask if mag != 0 else nz
        out[i] = (mag | sb) if neg else mag
    return 0


@intrinsic
def bits_to_f64(typingctx, x):  # noqa: ARG001 - numba intrinsic signature
    """The float64 with IEEE bit pattern ``x`` (int64 or uint64)."""
    if not (isinstance(x, types.Integer) and x.bitwidth == 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(x), codegen


@njit(parallel=True, cache=True)
def quantize_f64_rne(x, bits, p, saturate, out):
    """:func:`quantize_f32_rne` for float64 input, with 64-bit bits (see :func:`f64_fast_ok`): exact, the
    float64 value is rounded once."""
    mbits = p[P_MBITS]
    emin = p[P_EMIN]
    sh = 52 - mbits
    add = ((-emin - 1022) << 52) + (1 << (sh - 1)) - 1
    minnorm = (emin + 1023) << 52
    magic_bits = (emin - mbits + 52 + 1023) << 52
    magic = bits_to_f64(np.int64(magic_bits))
    maxcode = p[P_MAXCODE]
    signmask = p[P_SIGNMASK]
    nz = p[P_SIGNMASK] if p[P_HASNZ] != 0 else 0
    nanc = p[P_NANCODE]
    ovf = maxcode if saturate else (p[P_INFCODE] if p[P_INFCODE] >= 0 else p[P_NANCODE])
    for i in prange(bits.size):
        u = bits[i]
        a = u & 0x7FFFFFFFFFFFFFFF
        neg = u < 0
        nrm = (a + add + ((a >> sh) & 1)) >> sh
        sub = f64_to_bits(abs(x[i]) + magic) - magic_bits
        mag = sub if a < minnorm else nrm
        mag = ovf if mag > maxcode else mag
        mag = nanc if a > 0x7FF0000000000000 else mag
        sb = signmask if mag != 0 else nz
        out[i] = (mag | sb) if neg else mag
    return 0


def f64_fast_ok(fmt: Format) -> bool:
    """Whether :func:`quantize_f64_rne` applies to ``fmt``."""
    return (fmt.has_zero and fmt.has_subnormals and fmt.signed and fmt.emin >= -1022
            and fmt.emin - fmt.mbits >= -1074 and fmt.nan != "none" and fmt.bits <= 8
            and fmt.emax <= 1023 and fmt.emin - fmt.mbits <= 971)  # Inf above max, magic number finite


@njit(cache=True, inline="always")
def _f32_split(a, nbits, mbits, emin):
    """For float32 magnitude bits ``a`` (finite): the exponent part of the code, ``(ex - emin) << mbits``,
    and ``u = floor(sig * 2**(r+1) / 2**s) = kept * 2**(r+1) + floor(delta * 2**(r+1))`` with ``sig`` the
    24-bit significand, plus ``w = sig << (r+1)`` and ``s`` (clamped to 62, which changes nothing)."""
    e32 = a >> 23
    e1 = e32 if e32 > 0 else 1
    sig = (a & 0x7FFFFF) | (0x800000 if e32 > 0 else 0)
    E = e1 - 127
    ex = E if E > emin else emin
    s = ex - E + 23 - mbits
    s = s if s < 62 else 62
    w = sig << (nbits + 1)
    return (ex - emin) << mbits, w >> s, w, s


@njit(cache=True, inline="always")
def _f32_mag_stochastic(a, R, nbits, mbits, emin):
    base, u, w, s = _f32_split(a, nbits, mbits, emin)
    t = u >> 1  # kept * 2**r + floor(delta * 2**r)
    m = (1 << s) - 1
    sticky = ((w & m) + m) >> s  # 1 if bits below delta * 2**(r+1) remain
    up = u & 1 & (sticky | t)  # RNE(delta * 2**r) - floor(delta * 2**r)
    return base + ((t + up + R) >> nbits)


@njit(cache=True, inline="always")
def _f32_mag_stochastic_fast(a, R, nbits, mbits, emin):
    base, u, w, s = _f32_split(a, nbits, mbits, emin)
    return base + ((u + 2 * R + 1) >> (nbits + 1))


@njit(cache=True, inline="always")
def _f32_mag_stochastic_fastest(a, R, nbits, mbits, emin):
    base, u, w, s = _f32_split(a, nbits, mbits, emin)
    return base + (((u >> 1) + R) >> nbits)


@njit(cache=True, inline="always")
def _f32_finish(u, mag, maxcode, ovf, infres, nanc, signmask, nz):
    """Overflow, NaN/Inf input and sign for the float32 stochastic kernels (branch-free)."""
    a = u & 0x7FFFFFFF
    mag = ovf if mag > maxcode else mag
    mag = infres if a == 0x7F800000 else mag
    mag = nanc if a > 0x7F800000 else mag
    sb = signmask if mag != 0 else nz
    return (mag | sb) if u < 0 else mag


@njit(cache=True, inline="always")
def _finish_params(p, saturate):
    maxcode = p[P_MAXCODE]
    ovf_code = p[P_INFCODE] if p[P_INFCODE] >= 0 else p[P_NANCODE]
    ovf = maxcode if saturate else ovf_code
    nz = p[P_SIGNMASK] if p[P_HASNZ] != 0 else 0
    return maxcode, ovf, ovf, p[P_NANCODE], p[P_SIGNMASK], nz


@njit(cache=True)
def _f32_stochastic_block(bits, rbits, shift, mode, nbits, mbits, emin, fin, out):
    """The encode loop of the float32 stochastic kernels over one chunk, ``R = rbits[j] >> shift``.
    A separate function with one loop per mode: LLVM vectorises these, which it does not do for a loop
    nested in the parallel loop or for a loop that selects the mode per element."""
    maxcode, ovf, infres, nanc, signmask, nz = fin
    if mode == 5:
        for j in range(bits.size):
            u = np.int64(bits[j])
            mag = _f32_mag_stochastic(u & 0x7FFFFFFF, np.int64(rbits[j] >> shift), nbits, mbits, emin)
            out[j] = _f32_finish(u, mag, maxcode, ovf, infres, nanc, signmask, nz)
    elif mode == 6:
        for j in range(bits.size):
            u = np.int64(bits[j])
            mag = _f32_mag_stochastic_fast(u & 0x7FFFFFFF, np.int64(rbits[j] >> shift), nbits, mbits, emin)
            out[j] = _f32_finish(u, mag, maxcode, ovf, infres, nanc, signmask, nz)
    else:
        for j in range(bits.size):
            u = np.int64(bits[j])
            mag = _f32_mag_stochastic_fastest(u & 0x7FFFFFFF, np.int64(rbits[j] >> shift), nbits, mbits, emin)
            out[j] = _f32_finish(u, mag, maxcode, ovf, infres, nanc, signmask, nz)


@njit(parallel=True, cache=True)
def quantize_f32_stochastic(bits, p, mode, saturate, rbits, nbits, out):
    """Stochastic modes on float32 input with explicit random bits (formats as :func:`quantize_f32`)."""
    fin = _finish_params(p, saturate)
    n = bits.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        _f32_stochastic_block(bits[start:stop], rbits[start:stop], np.int64(0), mode, nbits, p[P_MBITS],
                              p[P_EMIN], fin, out[start:stop])
    return 0


def f32_fast_ok(fmt: Format) -> bool:
    """Whether :func:`quantize_f32` applies to ``fmt``."""
    return (fmt.has_zero and fmt.has_subnormals and fmt.signed and fmt.emin >= -126 and fmt.mbits <= 22
            and fmt.nan != "none" and fmt.bits <= 8
            and fmt.emax <= 127 and fmt.emin - fmt.mbits <= 104)  # Inf above max, magic number finite


# ---- seeded stochastic rounding of float32 input ---------------------------------------------------
# Numba widens 32-bit integer arithmetic to 64 bits, which halves the vector width; these intrinsics keep
# the encoder in 32-bit lanes (wrapping uint32 arithmetic; shift counts must be below 32).
def _u32_binop(name: str):
    def impl(typingctx, a, b):  # noqa: ARG001 - numba intrinsic signature
        if not all(isinstance(t, types.Integer) and t.bitwidth == 32 for t in (a, b)):
            return None

        def codegen(context, builder, signature, args):
            return getattr(builder, name)(args[0], args[1])

        return types.uint32(a, b), codegen

    impl.__name__ = f"u32_{name.rstrip('_')}"
    return intrinsic(impl)


u32_add = _u32_binop("add")
u32_sub = _u32_binop("sub")
u32_shl = _u32_binop("shl")
u32_shr = _u32_binop("lshr")
u32_and = _u32_binop("and_")
u32_or = _u32_binop("or_")
u32_xor = _u32_binop("xor")

SEED_CHUNK = 32768  # elements per parallel chunk of quantize_f32_seeded (a multiple of 4)


@njit(cache=True, inline="always")
def _f32_seeded_code(u, word, mode, rsh, two_r, mbits, thr, fin):
    """The code of the float32 with bits ``u`` (uint32) in stochastic mode ``mode`` with random word ``word``
    (``R = word >> rsh``, ``rsh = 32 - r``, ``two_r = float32(2**r)``), ``thr = emin + 127``.

    All in float32 and uint32, exactly: ``y = |x| * 2**(mbits - max(e, emin))`` is exact (a power-of-two
    scaling to ``y < 2**(mbits+1)``, see :func:`f32_seeded_ok`), ``k = floor(y)``, ``delta = y - k`` and
    ``z = delta * 2**r`` are exact, and ``N = RNE(z)`` (stochastic), ``floor(z + 1/2)`` (stochastic_fast:
    ``floor(delta 2**(r+1)) + 2R + 1 >= 2**(r+1)`` iff ``floor(delta 2**r + 1/2) + R >= 2**r``) or
    ``floor(z)`` (stochastic_fastest) is an integer ``<= 2**r`` held exactly. Rounding away is
    ``N + R >= 2**r``, i.e. ``N > (2**r - 1) - R = ~word >> rsh``. Inf input is clamped to the largest
    finite float32, which overflows every such format and so gives the Inf/saturation code."""
    maxcode, ovf, infres, nanc, signmask, nz = fin
    a = u32_and(u, np.uint32(0x7FFFFFFF))
    af = a if a < np.uint32(0x7F7FFFFF) else np.uint32(0x7F7FFFFF)
    e32 = u32_shr(af, np.uint32(23))
    ex32 = e32 if e32 > thr else thr
    scale = bits_to_f32(u32_shl(u32_sub(u32_add(np.uint32(254), mbits), ex32), np.uint32(23)))
    y = bits_to_f32(af) * scale
    kf = np.floor(y)
    z = (y - kf) * two_r
    if mode == MODE_STOCHASTIC:
        nf = np.rint(z)
    elif mode == MODE_STOCHASTIC_FAST:
        fz = np.floor(z)
        nf = fz + (np.float32(1.0) if z - fz >= np.float32(0.5) else np.float32(0.0))
    else:
        nf = np.floor(z)
    away = np.uint32(nf) > u32_shr(u32_xor(word, np.uint32(0xFFFFFFFF)), rsh)
    mag = u32_add(u32_add(u32_shl(u32_sub(ex32, thr), mbits), np.uint32(kf)),
                  np.uint32(1) if away else np.uint32(0))
    mag = ovf if mag > maxcode else mag
    mag = nanc if a > np.uint32(0x7F800000) else mag
    sb = signmask if mag != np.uint32(0) else nz
    return u32_or(mag, sb) if u != a else mag


@njit(cache=True, inline="always")
def _f32_seeded_loop(bits, lo0, hi, k0, k1, mode, rsh, two_r, mbits, thr, fin, out):
    """Elements ``0 .. 4*(bits.size // 4) - 1`` of a chunk whose first element has flat index
    ``4 * (hi * 2**32 + lo0)``: one Philox call per four elements, the four encodes written out. LLVM
    vectorises the loop over blocks (Philox in 64-bit lanes, the encodes in 32-bit lanes), and the
    multiplier-bound Philox rounds overlap with the encodes."""
    mask = np.uint64(0xFFFFFFFF)
    for b in range(bits.size // 4):
        w0, w1, w2, w3 = philox4x32_10((lo0 + np.uint64(b)) & mask, hi, np.uint64(0), np.uint64(0), k0, k1)
        i = 4 * b
        out[i] = _f32_seeded_code(bits[i], np.uint32(w0), mode, rsh, two_r, mbits, thr, fin)
        out[i + 1] = _f32_seeded_code(bits[i + 1], np.uint32(w1), mode, rsh, two_r, mbits, thr, fin)
        out[i + 2] = _f32_seeded_code(bits[i + 2], np.uint32(w2), mode, rsh, two_r, mbits, thr, fin)
        out[i + 3] = _f32_seeded_code(bits[i + 3], np.uint32(w3), mode, rsh, two_r, mbits, thr, fin)


@njit(cache=True)
def _f32_seeded_chunk(bits, b0, k0, k1, mode, rsh, two_r, mbits, thr, fin, out):
    """One chunk of :func:`quantize_f32_seeded`; its first element has flat index ``4 * b0``, with ``b0`` a
    multiple of ``SEED_CHUNK // 4`` (so the high counter word ``hi32(b0 + b)`` is one value in the chunk).
    One loop per mode; the last one to three elements of the array use the words of one more block."""
    mask = np.uint64(0xFFFFFFFF)
    ub0 = np.uint64(b0)
    hi = (ub0 >> np.uint64(32)) & mask
    lo0 = ub0 & mask
    k0 = k0 & mask
    k1 = k1 & mask
    if mode == MODE_STOCHASTIC:
        _f32_seeded_loop(bits, lo0, hi, k0, k1, MODE_STOCHASTIC, rsh, two_r, mbits, thr, fin, out)
    elif mode == MODE_STOCHASTIC_FAST:
        _f32_seeded_loop(bits, lo0, hi, k0, k1, MODE_STOCHASTIC_FAST, rsh, two_r, mbits, thr, fin, out)
    else:
        _f32_seeded_loop(bits, lo0, hi, k0, k1, MODE_STOCHASTIC_FASTEST, rsh, two_r, mbits, thr, fin, out)
    n = bits.size
    nb = n // 4
    if n > 4 * nb:
        w = philox4x32_10((lo0 + np.uint64(nb)) & mask, hi, np.uint64(0), np.uint64(0), k0, k1)
        for j in range(n - 4 * nb):
            i = 4 * nb + j
            out[i] = _f32_seeded_code(bits[i], np.uint32(w[j]), mode, rsh, two_r, mbits, thr, fin)


@njit(parallel=True, cache=True)
def quantize_f32_seeded(bits, p, mode, saturate, k0, k1, nbits, out):
    """Stochastic modes on float32 input (``bits`` its int32 or uint32 view) with Philox bits keyed by
    ``(k0, k1)`` and the flat index (formats of :func:`f32_seeded_ok`), in parallel chunks of
    ``SEED_CHUNK`` elements; the result depends only on each element's index."""
    maxcode = np.uint32(p[P_MAXCODE])
    ovf = np.uint32(p[P_MAXCODE] if saturate else (p[P_INFCODE] if p[P_INFCODE] >= 0 else p[P_NANCODE]))
    fin = (maxcode, ovf, ovf, np.uint32(p[P_NANCODE]), np.uint32(p[P_SIGNMASK]),
           np.uint32(p[P_SIGNMASK] if p[P_HASNZ] != 0 else 0))
    ubits = bits.view(np.uint32)
    n = bits.size
    rsh = np.uint32(32 - nbits)
    two_r = np.float32(2.0 ** nbits)
    mbits = np.uint32(p[P_MBITS])
    thr = np.uint32(p[P_EMIN] + 127)
    K0 = np.uint64(k0)
    K1 = np.uint64(k1)
    for c in prange((n + SEED_CHUNK - 1) // SEED_CHUNK):
        start = c * SEED_CHUNK
        stop = min(start + SEED_CHUNK, n)
        _f32_seeded_chunk(ubits[start:stop], start // 4, K0, K1, mode, rsh, two_r, mbits, thr, fin,
                          out[start:stop])
    return 0


def f32_seeded_ok(fmt: Format) -> bool:
    """Whether :func:`quantize_f32_seeded` applies to ``fmt``: :func:`f32_fast_ok`, and
    ``1 <= mbits <= emin + 127`` and ``emin <= mbits`` (so that every scale ``2**(mbits - max(e, emin))`` is
    a normal float32 and the scaled magnitude is exact)."""
    return f32_fast_ok(fmt) and 1 <= fmt.mbits <= fmt.emin + 127 and fmt.emin <= fmt.mbits


@njit(parallel=True, cache=True)
def decode_table(codes, table, out):
    """``out[i] = table[codes[i]]``."""
    for i in prange(codes.size):
        out[i] = table[codes[i]]
