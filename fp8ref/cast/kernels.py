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
            return _special_code(p, 3, negative, saturate)
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
def _mulhilo(a, b):
    prod = a * b
    return prod >> np.uint64(32), prod & np.uint64(0xFFFFFFFF)


@njit(cache=True, inline="always")
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox-4x32-10 on uint64 values holding 32-bit words (see :mod:`fp8ref.cast.philox`)."""
    mask = np.uint64(0xFFFFFFFF)
    m0 = np.uint64(0xD2511F53)
    m1 = np.uint64(0xCD9E8D57)
    w0 = np.uint64(0x9E3779B9)
    w1 = np.uint64(0xBB67AE85)
    for r in range(10):
        if r > 0:
            k0 = (k0 + w0) & mask
            k1 = (k1 + w1) & mask
        hi0, lo0 = _mulhilo(m0, c0)
        hi1, lo1 = _mulhilo(m1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


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


def f32_fast_ok(fmt: Format) -> bool:
    """Whether :func:`quantize_f32` applies to ``fmt``."""
    return (fmt.has_zero and fmt.has_subnormals and fmt.signed and fmt.emin >= -126 and fmt.mbits <= 22
            and fmt.nan != "none" and fmt.bits <= 16)


@njit(parallel=True, cache=True)
def decode_table(codes, table, out):
    """``out[i] = table[codes[i]]``."""
    for i in prange(codes.size):
        out[i] = table[codes[i]]
