"""The encoding layer: every float-to-code encoder of fp8ref, and the one parameter record they read.

Each encoder is an inlinable ``@njit`` function from one float (or its bit pattern) to one code; the cast
kernels (:mod:`fp8ref.cast.kernels`), the fused scale-and-cast kernels (:mod:`fp8ref.scaling.kernels`) and
any block-scaled kernel are loops that call them. Importing this module compiles nothing.

The record
    :class:`EncoderParams`, built by :func:`encoder_params` from a :class:`~fp8ref.Format`, a rounding
    mode and the saturation flag: the format's fields, the mode, and what follows from the three (the
    overflow codes, the rounding increment of the float32 encoder), so that no kernel decides anything per
    element that it could decide once.

The encoders (all exact; docs/casts.md sections 2-6 and 11)
    ``encode_bits(bits, p, mode, saturate, rbits, nbits)``
        The general encoder on the int64 bit pattern of a float64: every format of at most 16 bits, every
        mode. Its per-mode rule is :func:`round_away`. ``encode_f64`` (the mode of ``p``) and
        ``encode_scalar`` (the stable form of docs/casts.md section 10) call it.
    ``encode_f32(x, p)``
        float32 input, the deterministic modes (:data:`F32_MODES`), formats of :func:`fast_ok`:
        ``encode_rne_f32`` for nearest-even, ``encode_inc_f32`` (one 32-bit integer addition of the mode's
        increment, then a shift) for the others.
    ``encode_rne_f32(x, p)``, ``encode_rne_f64(x, p)``
        Nearest-even for float32 and float64 input (formats of :func:`fast_ok`), generated from one source
        by :func:`_rne_encoder` for each width.
    ``encode_sr_f32(u, word, v, mode)``
        float32 input, the stochastic modes (:data:`F32_STOCHASTIC_MODES`), formats of
        :func:`f32_stochastic_ok`, in float32/uint32 arithmetic that vectorises in 32-bit lanes (``v``:
        the record's values in those types, :func:`sr_f32_view`).

Adding a rounding mode: its name in ``fp8ref.cast.oracle.ROUNDING_MODES`` (with its exact rule in the
oracle, the specification), its constant below, and its decision in :func:`round_away`. That is all: the
fast encoders cover the modes in their ``F32_*MODES`` tuples, and every kernel sends a mode they do not list
to the general encoder. To make ``encode_f32`` cover a new deterministic mode as well, add its increment to
:func:`_increment_masks` and the mode to :data:`F32_MODES`; a new stochastic mode, a branch in
:func:`encode_sr_f32`, its loop in the two float32 stochastic kernels, and :data:`F32_STOCHASTIC_MODES`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from fp8ref.cast.oracle import ROUNDING_MODES
from fp8ref.formats import Format

# ---- rounding modes: the position of the name in fp8ref.ROUNDING_MODES ----------------------------------
NEAREST_EVEN = ROUNDING_MODES.index("nearest_even")
NEAREST_AWAY = ROUNDING_MODES.index("nearest_away")
TOWARD_ZERO = ROUNDING_MODES.index("toward_zero")
TOWARD_POSITIVE = ROUNDING_MODES.index("toward_positive")
TOWARD_NEGATIVE = ROUNDING_MODES.index("toward_negative")
STOCHASTIC = ROUNDING_MODES.index("stochastic")
STOCHASTIC_FAST = ROUNDING_MODES.index("stochastic_fast")
STOCHASTIC_FASTEST = ROUNDING_MODES.index("stochastic_fastest")

F32_MODES = (NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO, TOWARD_POSITIVE, TOWARD_NEGATIVE)  # encode_f32
F32_STOCHASTIC_MODES = (STOCHASTIC, STOCHASTIC_FAST, STOCHASTIC_FASTEST)  # encode_sr_f32

# ---- kinds of special result (encode_bits) -------------------------------------------------------------
KIND_NAN = 0  # NaN input: the NaN code
KIND_OVERFLOW = 1  # overflow that is not clamped: Inf where the format has it, else NaN
KIND_MAX = 2  # overflow clamped to +-max (saturating, or a directed mode that rounds the magnitude down)
KIND_NO_VALUE = 3  # negative input of an unsigned format, zero input of a format without zero


def mode_index(rounding: str) -> int:
    """The mode constant of a rounding-mode name (its position in ``fp8ref.ROUNDING_MODES``)."""
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
    return ROUNDING_MODES.index(rounding)


# ---- the parameter record ------------------------------------------------------------------------------
class EncoderParams(NamedTuple):
    """What the encoders read: a format, a rounding mode and saturation. All fields are ``int`` (Numba
    passes the record as one tuple of int64). The first eleven are the format's and keep their order
    (docs/casts.md section 10: fields are only appended)."""

    mbits: int
    emin: int
    bias: int
    max_code: int
    sign_mask: int
    nan_code: int  # -1: the format has no NaN
    inf_code: int  # -1: the format has no Inf
    has_zero: int
    has_subnormals: int
    has_negative_zero: int
    signed: int
    mode: int  # a mode constant above
    saturate: int  # 1: overflow and +-Inf give +-max
    neg_zero: int  # code of a zero result with the sign set: sign_mask, or 0 without -0
    overflow: int  # magnitude code of an overflow that is not clamped: inf_code, else nan_code
    inf_result: int  # magnitude code of +-Inf input: max_code when saturating, else overflow
    clamp_pos: int  # 1: a finite positive overflow gives max (see clamps)
    clamp_neg: int  # 1: a finite negative overflow gives -max
    inc_half: int  # the increment of encode_inc_f32 as masks (_increment_masks): -1 or 0
    inc_minus_one: int  # 1 or 0
    inc_lsb: int  # 1 or 0
    inc_up_pos: int  # -1 or 0
    inc_up_neg: int  # -1 or 0


@njit(cache=True, inline="always")
def clamps(mode, saturate, negative):
    """Whether a finite overflow gives +-max instead of Inf/NaN: saturating casts, and the directed modes
    that round the magnitude down (toward_zero; toward_positive below zero; toward_negative above), which
    never overflow to infinity (IEEE 754)."""
    return saturate or mode == TOWARD_ZERO or (mode == TOWARD_POSITIVE and negative) or (
        mode == TOWARD_NEGATIVE and not negative)


def _increment_masks(mode: int) -> tuple[int, int, int, int, int]:
    """The rounding increment of :func:`encode_inc_f32` as masks: with ``one = 2**s`` the weight of the kept
    unit, ``half = one / 2`` and ``lsb`` the lowest kept bit, the increment added before the shift is
    ``(half & inc_half) - inc_minus_one + (lsb & inc_lsb) + ((one - 1) & (inc_up_neg if x < 0 else
    inc_up_pos))``: nearest_even ``half - 1 + lsb``, nearest_away ``half``, toward_zero 0,
    toward_positive/negative ``one - 1`` on the matching sign. Modes outside :data:`F32_MODES`: zeros
    (the float32 encoder does not take them)."""
    masks = {NEAREST_EVEN: (-1, 1, 1, 0, 0), NEAREST_AWAY: (-1, 0, 0, 0, 0),
             TOWARD_POSITIVE: (0, 0, 0, -1, 0), TOWARD_NEGATIVE: (0, 0, 0, 0, -1)}
    return masks.get(mode, (0, 0, 0, 0, 0))


@lru_cache(maxsize=256)
def encoder_params(fmt: Format, mode: int | str = NEAREST_EVEN, saturate: bool = True) -> EncoderParams:
    """The record of ``fmt`` (at most 16 bits), rounding ``mode`` (a constant of this module or a name of
    ``fp8ref.ROUNDING_MODES``) and ``saturate`` (cached: casts of small arrays call this every time)."""
    if fmt.bits > 16:
        raise ValueError(f"the cast kernels encode formats of at most 16 bits; {fmt.name} has {fmt.bits}")
    m = mode_index(mode) if isinstance(mode, str) else int(mode)
    if not 0 <= m < len(ROUNDING_MODES):
        raise ValueError(f"mode must be a position in fp8ref.ROUNDING_MODES (0..{len(ROUNDING_MODES) - 1}), "
                         f"got {mode}")
    sat = bool(saturate)
    nan_code = -1 if fmt.nan_code is None else fmt.nan_code
    inf_code = -1 if fmt.inf_code is None else fmt.inf_code
    overflow = inf_code if inf_code >= 0 else nan_code
    inc_half, inc_minus_one, inc_lsb, inc_up_pos, inc_up_neg = _increment_masks(m)
    return EncoderParams(
        mbits=fmt.mbits, emin=fmt.emin, bias=fmt.bias, max_code=fmt.max_code, sign_mask=fmt.sign_mask,
        nan_code=nan_code, inf_code=inf_code, has_zero=int(fmt.has_zero),
        has_subnormals=int(fmt.has_subnormals), has_negative_zero=int(fmt.has_negative_zero),
        signed=int(fmt.signed),
        mode=m, saturate=int(sat), neg_zero=fmt.sign_mask if fmt.has_negative_zero else 0, overflow=overflow,
        inf_result=fmt.max_code if sat else overflow, clamp_pos=int(clamps.py_func(m, sat, False)),
        clamp_neg=int(clamps.py_func(m, sat, True)), inc_half=inc_half, inc_minus_one=inc_minus_one,
        inc_lsb=inc_lsb, inc_up_pos=inc_up_pos, inc_up_neg=inc_up_neg)


def format_params(fmt: Format) -> EncoderParams:
    """The record for :func:`encode_scalar`, which takes the mode and saturation as arguments (those
    fields of the record are nearest_even, saturating, and unused there)."""
    return encoder_params(fmt)


# ---- where the fast encoders apply -----------------------------------------------------------------------
def fast_ok(fmt: Format, mant: int = 23) -> bool:
    """Whether the fast deterministic encoders apply to ``fmt``: :func:`encode_f32` and
    :func:`encode_rne_f32` with ``mant=23``, :func:`encode_rne_f64` with ``mant=52``. ``fmt`` must be a
    signed format of at most 8 bits with zero, subnormals and NaN, fewer mantissa bits than the input type,
    its smallest normal a normal number of the input type and its quantum ``2**(emin - mbits)`` a number
    of it, its largest exponent at most the input type's and ``2**(emin - mbits + mant)`` finite (float32:
    ``emin >= -126``, ``mbits <= 22``, ``emax <= 127``, ``emin - mbits <= 104``; float64: ``emin >= -1022``,
    ``emin - mbits >= -1074``, ``emax <= 1023``, ``emin - mbits <= 971``)."""
    ebias = 127 if mant == 23 else 1023
    return (fmt.has_zero and fmt.has_subnormals and fmt.signed and fmt.nan != "none" and fmt.bits <= 8
            and fmt.emin >= 1 - ebias and fmt.mbits < mant and fmt.emin - fmt.mbits >= 1 - ebias - mant
            # the input's Inf above the format's max, and the rebiasing magic number 2**(emin - mbits + mant)
            # a finite number of the input type
            and fmt.emax <= ebias and fmt.emin - fmt.mbits <= ebias - mant)


def f32_stochastic_ok(fmt: Format) -> bool:
    """Whether :func:`encode_sr_f32` applies to ``fmt``: :func:`fast_ok`, and ``1 <= mbits <= emin + 127``
    and ``emin <= mbits`` (so that every scale ``2**(mbits - max(e, emin))`` is a normal float32 and the
    scaled magnitude is exact)."""
    return fast_ok(fmt) and 1 <= fmt.mbits <= fmt.emin + 127 and fmt.emin <= fmt.mbits


# ---- bit casts -------------------------------------------------------------------------------------------
def _bitcast(name: str, src: types.Type, dst: types.Type, llvm_type: ir.Type, doc: str):
    def impl(typingctx, x):  # noqa: ARG001 - numba intrinsic signature
        if not (isinstance(x, type(src)) and x.bitwidth == src.bitwidth):
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvm_type)

        return dst(x), codegen

    impl.__name__ = name
    impl.__doc__ = doc
    return intrinsic(impl)


f64_to_bits = _bitcast("f64_to_bits", types.float64, types.int64, ir.IntType(64),
                       "The IEEE bit pattern of a float64 as int64.")
f32_to_bits = _bitcast("f32_to_bits", types.float32, types.int32, ir.IntType(32),
                       "The IEEE bit pattern of a float32 as int32.")
bits_to_f64 = _bitcast("bits_to_f64", types.int64, types.float64, ir.DoubleType(),
                       "The float64 with IEEE bit pattern ``x`` (int64 or uint64).")
bits_to_f32 = _bitcast("bits_to_f32", types.int32, types.float32, ir.FloatType(),
                       "The float32 with IEEE bit pattern ``x`` (int32 or uint32).")


# Numba widens 32-bit integer arithmetic to 64 bits, which halves the vector width; these intrinsics keep
# the float32 stochastic encoder in 32-bit lanes (wrapping uint32 arithmetic; shift counts must be below 32).
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


# ---- the general encoder (float64 bits, every format and mode) ------------------------------------------
@njit(cache=True, inline="always")
def special_code(p, kind, negative, saturate):
    """The code of a special result of ``kind`` (``KIND_*``), or -1 where it would be NaN in a format
    without NaN."""
    sign_bits = p.sign_mask if negative else 0
    if kind == KIND_MAX:
        return p.max_code | sign_bits
    if kind == KIND_NO_VALUE and saturate:
        return 0  # the lowest value (code 0) stands in for the missing one
    if kind == KIND_OVERFLOW and p.inf_code >= 0:
        return p.inf_code | sign_bits
    if p.nan_code < 0:
        return -1
    return p.nan_code | sign_bits


@njit(cache=True, inline="always")
def round_away(mode, negative, odd, frac, sticky, rbits, nbits):
    """Whether ``|x| = (kept + delta) * 2**q`` rounds away from zero (to ``kept + 1``) in ``mode``:
    ``delta = frac / 2**33`` plus ``sticky`` (0 or 1) for nonzero bits below, ``odd`` whether the code of
    ``kept * 2**q`` is odd (nearest-even ties), ``rbits`` the random integer ``R < 2**nbits`` of the
    stochastic modes. The rule of each mode is docs/casts.md section 2, step 3."""
    half = 1 << 32
    if mode == NEAREST_EVEN:
        return frac > half or (frac == half and (sticky != 0 or odd))
    if mode == NEAREST_AWAY:
        return frac >= half
    if mode == TOWARD_ZERO:
        return False
    nonzero = frac != 0 or sticky != 0
    if mode == TOWARD_POSITIVE:
        return (not negative) and nonzero
    if mode == TOWARD_NEGATIVE:
        return negative and nonzero
    if mode == STOCHASTIC:  # RNE(delta * 2**r) + R >= 2**r
        t = frac >> (33 - nbits)
        low = frac & ((1 << (33 - nbits)) - 1)
        hl = 1 << (32 - nbits)
        d = t + (1 if (low > hl or (low == hl and (sticky != 0 or (t & 1) != 0))) else 0)
        return d + rbits >= (1 << nbits)
    if mode == STOCHASTIC_FAST:  # floor(delta * 2**(r+1)) + 2R + 1 >= 2**(r+1)
        return (frac >> (32 - nbits)) + 2 * rbits + 1 >= (1 << (nbits + 1))
    # STOCHASTIC_FASTEST: floor(delta * 2**r) + R >= 2**r
    return (frac >> (33 - nbits)) + rbits >= (1 << nbits)


@njit(cache=True, inline="always")
def encode_bits(bits, p, mode, saturate, rbits, nbits):
    """The code of the float64 with int64 bit pattern ``bits`` in the format of ``p``, rounded once in
    ``mode`` (``saturate`` a bool; ``rbits``, ``nbits`` the random bits of the stochastic modes, else 0,
    0); -1 where a format without NaN would need one. Only the format fields of ``p`` are read."""
    mbits = p.mbits
    emin = p.emin
    negative = bits < 0
    e = (bits >> 52) & 0x7FF
    m = bits & 0xFFFFFFFFFFFFF
    if e == 0x7FF:
        if m != 0:
            return special_code(p, KIND_NAN, negative, saturate)
        if negative and p.signed == 0:
            return special_code(p, KIND_NO_VALUE, negative, saturate)
        return special_code(p, KIND_MAX if saturate else KIND_OVERFLOW, negative, saturate)
    if e == 0 and m == 0:
        if p.has_zero == 0:
            return special_code(p, KIND_NO_VALUE, negative, saturate)
        return p.sign_mask if (negative and p.has_negative_zero != 0) else 0
    if negative and p.signed == 0:
        return special_code(p, KIND_NO_VALUE, negative, saturate)
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
    below = E < emin and p.has_subnormals == 0
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
    if mbits > 0:
        odd = (kept & 1) != 0
    else:
        odd = kept != 0 and ((qexp + p.bias) & 1) != 0
    if round_away(mode, negative, odd, frac, sticky, rbits, nbits):
        kept += 1
    if kept == 0:
        if p.has_zero == 0:
            return 0  # a nonzero input underflows to the smallest value of a format without zero
        return p.sign_mask if (negative and p.has_negative_zero != 0) else 0
    offset = 0 if p.has_zero != 0 else (1 << mbits)
    if below:
        mag = (kept << mbits) - offset
    else:
        mag = ((ex - emin) << mbits) + kept - offset
    if mag > p.max_code:
        if clamps(mode, saturate, negative):
            return special_code(p, KIND_MAX, negative, saturate)
        return special_code(p, KIND_OVERFLOW, negative, saturate)
    return mag | (p.sign_mask if negative else 0)



@njit(cache=True, inline="always")
def encode_f64(x, p, rbits, nbits):
    """The code of the float ``x`` (float64, or float32 widened exactly) with the mode and saturation of
    ``p`` (:func:`encode_bits`)."""
    return encode_bits(f64_to_bits(np.float64(x)), p, p.mode, p.saturate != 0, rbits, nbits)


@njit(cache=True, inline="always")
def encode_scalar(x, p, mode, saturate, rbits, nbits):
    """The code of float ``x`` in the format of ``p`` (:func:`format_params`) with rounding ``mode`` and
    ``saturate`` given here (docs/casts.md section 10; the signature is stable)."""
    return encode_bits(f64_to_bits(np.float64(x)), p, mode, saturate, rbits, nbits)


# ---- float32, deterministic modes ------------------------------------------------------------------------
@njit(cache=True, inline="always")
def encode_inc_f32(x, p):
    """The code (int32) of the float32 ``x`` in the mode of ``p`` (one of :data:`F32_MODES`; formats of
    :func:`fast_ok`). With ``a`` the bits of ``|x|`` and ``sig`` its significand (hidden bit included),
    the value is ``sig * 2**(E - 23)``; in the target the unit in the last place at ``ex = max(E, emin)``
    is ``2**(ex - mbits)``, so with ``s = ex - E + 23 - mbits`` the magnitude code is
    ``((ex - emin) << mbits) + ((sig + t) >> s)``, ``t`` the increment of :func:`_increment_masks` (the
    hidden bit lands in the exponent field and a rounding carry moves to the next binade by itself)."""
    mbits = np.int32(p.mbits)
    emin = np.int32(p.emin)
    maxcode = np.int32(p.max_code)
    u = f32_to_bits(x)
    neg = u < np.int32(0)
    a = u & np.int32(0x7FFFFFFF)
    e32 = a >> np.int32(23)
    normal = e32 > np.int32(0)
    sig = (a & np.int32(0x7FFFFF)) | (np.int32(0x800000) if normal else np.int32(0))
    big_e = (e32 if normal else np.int32(1)) - np.int32(127)
    ex = max(big_e, emin)
    s = min(ex - big_e + np.int32(23) - mbits, np.int32(26))
    one = np.int32(1) << s
    t = (((one >> np.int32(1)) & np.int32(p.inc_half)) - np.int32(p.inc_minus_one)
         + ((sig >> s) & np.int32(p.inc_lsb))
         + ((one - np.int32(1)) & np.int32(p.inc_up_neg if neg else p.inc_up_pos)))
    mag = ((ex - emin) << mbits) + ((sig + t) >> s)
    clamp = (p.clamp_neg if neg else p.clamp_pos) != 0
    if mag > maxcode:
        mag = maxcode if clamp else np.int32(p.overflow)
    if e32 == np.int32(255):
        mag = np.int32(p.nan_code) if (a & np.int32(0x7FFFFF)) != 0 else np.int32(p.inf_result)
    sb = np.int32(p.sign_mask) if mag != np.int32(0) else np.int32(p.neg_zero)
    return (mag | sb) if neg else mag


# ---- nearest-even, float32 and float64 input, generated from one source ------------------------------
def _rne_encoder(width: int, mant: int, to_bits, from_bits, int_type, name: str):
    """The nearest-even encoder for the binary float of ``width`` bits with ``mant`` mantissa bits
    (``to_bits`` / ``from_bits`` its bit casts, ``int_type`` the integer of its width)."""
    ebias = (1 << (width - mant - 2)) - 1
    abs_mask = (1 << (width - 1)) - 1  # every bit but the sign
    inf_bits = ((1 << (width - mant - 1)) - 1) << mant

    def encode_rne(x, p):
        sh = mant - p.mbits
        add = ((-p.emin - (ebias - 1)) << mant) + (1 << (sh - 1)) - 1
        minnorm = (p.emin + ebias) << mant
        magic_bits = (p.emin - p.mbits + mant + ebias) << mant
        u = np.int64(to_bits(x))
        a = u & abs_mask
        nrm = (a + add + ((a >> sh) & 1)) >> sh
        sub = np.int64(to_bits(abs(x) + from_bits(int_type(magic_bits)))) - magic_bits
        mag = sub if a < minnorm else nrm
        mag = p.inf_result if mag > p.max_code else mag
        mag = p.nan_code if a > inf_bits else mag
        sb = p.sign_mask if mag != 0 else p.neg_zero
        return (mag | sb) if u < 0 else mag

    encode_rne.__name__ = encode_rne.__qualname__ = name
    encode_rne.__doc__ = f"""Nearest-even code of the float{width} ``x`` (formats of :func:`fast_ok`). With
    ``a`` the bits of ``|x|``: a normal result is ``(a - rebias + half - 1 + lsb) >> ({mant} - mbits)`` (the
    target's exponent field and mantissa in one integer; a rounding carry moves into the exponent by
    itself); a result below the smallest normal is read off the float{width} sum ``|x| + magic``,
    ``magic = 2**(emin - mbits + {mant})``, whose ulp is the smallest subnormal of the target, so the FPU's
    nearest-even addition does the rounding. Values above max (and +-Inf) give ``inf_result``, NaN the
    NaN code, with the sign of ``x``."""
    return njit(inline="always")(encode_rne)


encode_rne_f32 = _rne_encoder(32, 23, f32_to_bits, bits_to_f32, np.int32, "encode_rne_f32")
encode_rne_f64 = _rne_encoder(64, 52, f64_to_bits, bits_to_f64, np.int64, "encode_rne_f64")


@njit(cache=True, inline="always")
def encode_f32(x, p):
    """The code of the float32 ``x`` in the deterministic mode of ``p`` (one of :data:`F32_MODES`; formats of
    :func:`fast_ok`): :func:`encode_rne_f32` for nearest-even, else :func:`encode_inc_f32`. ``p.mode`` is
    the same for every element of a loop, and LLVM compiles such a loop once per branch (loop
    unswitching), each vectorised."""
    if p.mode == NEAREST_EVEN:
        return encode_rne_f32(x, p)
    return np.int64(encode_inc_f32(x, p))


# ---- float32, stochastic modes -------------------------------------------------------------------------
class SrF32(NamedTuple):
    """What :func:`encode_sr_f32` reads, as uint32 / float32 values made once per loop by
    :func:`sr_f32_view` (conversions inside the loop would widen its lanes to 64 bits)."""

    mbits: np.uint32
    thr: np.uint32  # emin + 127, the float32 biased exponent of the target's smallest normal
    max_code: np.uint32
    inf_result: np.uint32
    nan_code: np.uint32
    sign_mask: np.uint32
    neg_zero: np.uint32
    rsh: np.uint32  # 32 - r: R = word >> rsh
    two_r: np.float32  # 2**r


@njit(cache=True, inline="always")
def sr_f32_view(p, nbits):
    """The :class:`SrF32` of the record ``p`` and ``r = nbits`` random bits."""
    return SrF32(np.uint32(p.mbits), np.uint32(p.emin + 127), np.uint32(p.max_code), np.uint32(p.inf_result),
                 np.uint32(p.nan_code), np.uint32(p.sign_mask), np.uint32(p.neg_zero), np.uint32(32 - nbits),
                 np.float32(2.0**nbits))


@njit(cache=True, inline="always")
def encode_sr_f32(u, word, v, mode):
    """The code (uint32) of the float32 with bits ``u`` (uint32) in the stochastic ``mode`` (one of
    :data:`F32_STOCHASTIC_MODES`, passed as a constant so that a loop is compiled for one mode) with the
    random word ``word`` (``R = word >> (32 - r)``); ``v`` is :func:`sr_f32_view` of the record and ``r``.
    Formats of :func:`f32_stochastic_ok`.

    All in float32 and uint32, exactly: ``y = |x| * 2**(mbits - max(e, emin))`` is exact (a power-of-two
    scaling to ``y < 2**(mbits+1)``), ``k = floor(y)``, ``delta = y - k`` and ``z = delta * 2**r`` are
    exact, and ``N = RNE(z)`` (stochastic), ``floor(z + 1/2)`` (stochastic_fast:
    ``floor(delta 2**(r+1)) + 2R + 1 >= 2**(r+1)`` iff ``floor(delta 2**r + 1/2) + R >= 2**r``) or
    ``floor(z)`` (stochastic_fastest) is an integer ``<= 2**r`` held exactly. Rounding away is
    ``N + R >= 2**r``, i.e. ``N > (2**r - 1) - R = ~word >> rsh``. Inf input is clamped to the largest
    finite float32, which overflows every such format and so gives the Inf/saturation code."""
    mbits = v.mbits
    thr = v.thr
    a = u32_and(u, np.uint32(0x7FFFFFFF))
    af = a if a < np.uint32(0x7F7FFFFF) else np.uint32(0x7F7FFFFF)
    e32 = u32_shr(af, np.uint32(23))
    ex32 = e32 if e32 > thr else thr
    scale = bits_to_f32(u32_shl(u32_sub(u32_add(np.uint32(254), mbits), ex32), np.uint32(23)))
    y = bits_to_f32(af) * scale
    kf = np.floor(y)
    z = (y - kf) * v.two_r
    if mode == STOCHASTIC:
        nf = np.rint(z)
    elif mode == STOCHASTIC_FAST:
        fz = np.floor(z)
        nf = fz + (np.float32(1.0) if z - fz >= np.float32(0.5) else np.float32(0.0))
    else:
        nf = np.floor(z)
    away = np.uint32(nf) > u32_shr(u32_xor(word, np.uint32(0xFFFFFFFF)), v.rsh)
    mag = u32_add(u32_add(u32_shl(u32_sub(ex32, thr), mbits), np.uint32(kf)),
                  np.uint32(1) if away else np.uint32(0))
    mag = v.inf_result if mag > v.max_code else mag
    mag = v.nan_code if a > np.uint32(0x7F800000) else mag
    sb = v.sign_mask if mag != np.uint32(0) else v.neg_zero
    return u32_or(mag, sb) if u != a else mag
