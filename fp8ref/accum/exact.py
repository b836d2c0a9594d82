"""Slow exact implementations of every accumulation rule (the specification).

Everything here works on Python ``fractions.Fraction`` values and integers; no floating-point
operation is involved except converting the final exact value to a Python float (exact: every result
is a value of a format no wider than float64). The Numba kernels in :mod:`fp8ref.accum.kernels` are
tested equal to these functions.

Values travel as Python floats (NaN, +-Inf and -0.0 keep their meaning); each function documents its rule
and docs/accumulation.md states them once more in integer pseudocode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from fp8ref.formats import Format, floor_log2, pow2


def exponent(x: Fraction, emin: int) -> int:
    """The exponent a floating-point unit gives the nonzero value ``x`` of a format whose smallest normal
    exponent is ``emin``: ``max(floor(log2|x|), emin)`` (a subnormal keeps the exponent ``emin``)."""
    return max(floor_log2(abs(x)), emin)


def round_fraction(v: Fraction, frac_bits: int, emin: int, emax: int, rounding: str,
                   negative_zero: bool = False) -> float:
    """Round the exact value ``v`` to ``frac_bits`` fraction bits with exponent range ``[emin, emax]``.

    * ``rounding`` is ``"rne"`` (nearest, ties to even) or ``"rz"`` (toward zero).
    * Subnormal results are kept: below ``2**emin`` the last kept bit has weight ``2**(emin-frac_bits)``.
    * Overflow: when the rounded magnitude (with an unbounded exponent) is ``>= 2**(emax+1)`` the result is
      +-Inf, for both modes (the rule of the published tensor-core models; IEEE RZ would saturate instead).
    * A nonzero ``v`` that rounds to zero keeps its sign (-0.0 for negative ``v``); ``v == 0`` gives
      ``-0.0`` when ``negative_zero`` else ``+0.0``.
    """
    if v == 0:
        return -0.0 if negative_zero else 0.0
    neg = v < 0
    a = -v if neg else v
    e = max(floor_log2(a), emin)
    q = e - frac_bits
    n = a / pow2(q)
    r = n.numerator // n.denominator
    if rounding == "rne":
        rem = n - r
        if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and r % 2 == 1):
            r += 1
    elif rounding != "rz":
        raise ValueError(f"rounding must be 'rne' or 'rz', got {rounding!r}")
    mag = r * pow2(q)
    if mag >= pow2(emax + 1):
        out = math.inf
    else:
        out = float(mag)
    return -out if neg else out


def round_to(v: Fraction, fmt: Format, rounding: str = "rne", negative_zero: bool = False) -> float:
    """Round ``v`` to the IEEE-style format ``fmt`` (its mantissa bits and exponent range)."""
    return round_fraction(v, fmt.mbits, fmt.emin, fmt.emax, rounding, negative_zero)


def special_sum(terms: Sequence[float]) -> float | None:
    """IEEE special-value rule for a sum of exact terms given as floats (products already formed):
    NaN if any term is NaN or +Inf and -Inf both occur, else the infinity if one occurs, else ``None``."""
    pos = neg = False
    for t in terms:
        if math.isnan(t):
            return math.nan
        if math.isinf(t):
            if t > 0:
                pos = True
            else:
                neg = True
    if pos and neg:
        return math.nan
    if pos:
        return math.inf
    if neg:
        return -math.inf
    return None


def product(a: float, b: float) -> float:
    """``a*b`` with IEEE special rules (0*Inf = NaN); exact for the finite values used here."""
    return a * b


# --------------------------------------------------------------------------------------------------
# block FMA
def bfma_block(a: Sequence[float], b: Sequence[float], c: float, *, frac_bits: int, out_frac_bits: int,
               rounding: str, e_floor: int | None, emin_a: int, emin_b: int, emin_c: int, out_emin: int,
               out_emax: int, separate: bool = False) -> float:
    """One block FMA ``d = c + sum a_i*b_i`` (len(a) <= NFMA) by the rule of docs/accumulation.md.

    1. Specials: NaN if a product (0*Inf included) or c is NaN or +Inf and -Inf both occur; else an
       infinite product or c gives that infinity.
    2. Terms: every nonzero product ``a_i*b_i`` (exact) with exponent ``ea+eb`` where
       ``ea = max(floor(log2|a_i|), emin_a)``; a nonzero ``c`` with exponent ``max(floor(log2|c|), emin_c)``.
       No term: the result is +0.
    3. ``E = max(all term exponents, e_floor)``; ``u = 2**(E - frac_bits)``.
    4. ``S = sum sign(t) * floor(|t| / u)`` (each term truncated toward zero, exact integer sum).
    5. ``S == 0`` gives +0; otherwise ``S*u`` is rounded once to ``out_frac_bits`` fraction bits in the
       output exponent range ``[out_emin, out_emax]`` with ``rounding`` (see :func:`round_fraction`).

    ``separate=True``: ``c`` is no term of steps 2-5 (the products alone are aligned, summed and rounded,
    an empty block giving +0); the result is then ``RNE(c + that)`` to ``out_frac_bits`` fraction bits with
    IEEE zero signs.
    """
    prods = [product(x, y) for x, y in zip(a, b, strict=True)]
    sp = special_sum([*prods, c])
    if sp is not None:
        return sp
    terms: list[tuple[Fraction, int]] = []
    for x, y in zip(a, b, strict=True):
        if x == 0 or y == 0:
            continue
        fx, fy = Fraction(x), Fraction(y)
        terms.append((fx * fy, exponent(fx, emin_a) + exponent(fy, emin_b)))
    if c != 0 and not separate:
        fc = Fraction(c)
        terms.append((fc, exponent(fc, emin_c)))
    if separate:
        s = _products_rounded(terms, frac_bits, out_frac_bits, rounding, e_floor, out_emin, out_emax)
        return _ieee_add_bits(c, s, out_frac_bits, out_emin, out_emax)
    return _products_rounded(terms, frac_bits, out_frac_bits, rounding, e_floor, out_emin, out_emax)


def _products_rounded(terms, frac_bits, out_frac_bits, rounding, e_floor, out_emin, out_emax) -> float:
    if not terms:
        return 0.0
    E = max(e for _, e in terms)
    if e_floor is not None:
        E = max(E, e_floor)
    u = pow2(E - frac_bits)
    S = 0
    for t, _ in terms:
        q = abs(t) / u
        m = q.numerator // q.denominator
        S += -m if t < 0 else m
    if S == 0:
        return 0.0
    return round_fraction(S * u, out_frac_bits, out_emin, out_emax, rounding)


def _ieee_add_bits(x: float, y: float, frac_bits: int, emin: int, emax: int) -> float:
    sp = special_sum([x, y])
    if sp is not None:
        return sp
    s = Fraction(x) + Fraction(y)
    if s == 0:
        both_neg = x == 0 and y == 0 and math.copysign(1.0, x) < 0 and math.copysign(1.0, y) < 0
        return -0.0 if both_neg else 0.0
    return round_fraction(s, frac_bits, emin, emax, "rne")


def bfma_chain(model, a: Sequence[float], b: Sequence[float], c: float) -> float:
    """A :class:`~fp8ref.accum.BlockFMA` chained over the whole vector: blocks of ``nfma`` consecutive
    elements (after the ``k_order`` permutation), each block's rounded result is the next block's accumulator
    input; with ``c_mode="last"`` the chain starts from +0 and ``c`` is added to its result at the end."""
    n = len(a)
    if model.k_order is not None:  # products enter the blocks in the order k_order (chunk by chunk)
        m = len(model.k_order)
        idx = [k0 + p for k0 in range(0, n, m) for p in model.k_order if k0 + p < n]
        a = [a[i] for i in idx]
        b = [b[i] for i in idx]
    last = model.c_mode == "last"
    d = 0.0 if last else c
    for k0 in range(0, n, model.nfma):
        d = bfma_block(a[k0:k0 + model.nfma], b[k0:k0 + model.nfma], d, **model._block_kwargs())
    if last:  # c_mode "last": the chain starts from +0, c is added once at the end (IEEE RNE addition)
        d = _ieee_add_bits(d, c, model.out_frac_bits, model.out_format.emin, model.out_format.emax)
    return d


# --------------------------------------------------------------------------------------------------
# sequential, exact and promoted accumulation
def sequential_dot(a: Sequence[float], b: Sequence[float], c: float, acc: Format) -> float:
    """``acc = RN_acc(c)``; for k in order: ``acc = RN_acc(acc + a_k*b_k)`` with the product exact (a fused
    multiply-add), IEEE rules for specials and zeros: an exact zero sum of two nonzero-sum operands is +0;
    ``x + y`` with both ``-0`` is ``-0``; a nonzero sum that rounds to zero keeps its sign."""
    d = _ieee_round(c, acc)
    for x, y in zip(a, b, strict=True):
        p = product(x, y)
        d = _ieee_add(d, p, acc)
    return d


def _ieee_round(x: float, fmt: Format) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    if x == 0:
        return x
    return round_to(Fraction(x), fmt, "rne")


def _ieee_add(x: float, y: float, fmt: Format) -> float:
    sp = special_sum([x, y])
    if sp is not None:
        return sp
    s = Fraction(x) + Fraction(y)
    if s == 0:
        both_neg = math.copysign(1.0, x) < 0 and math.copysign(1.0, y) < 0 and x == 0 and y == 0
        return -0.0 if both_neg else 0.0
    return round_to(s, fmt, "rne")


def fp32_add(x: float, y: float) -> float:
    """IEEE binary32 addition with round-to-nearest-even of two binary32 values."""
    from fp8ref.formats import FP32

    return _ieee_add(x, y, FP32)


def exact_dot(a: Sequence[float], b: Sequence[float], c: float, out: Format) -> float:
    """The exact value of ``c + sum a_k*b_k`` rounded once (RNE) to ``out``. Specials as IEEE; an exact
    zero is -0 only when every term (each product and ``c``) is -0, else +0."""
    prods = [product(x, y) for x, y in zip(a, b, strict=True)]
    sp = special_sum([*prods, c])
    if sp is not None:
        return sp
    s = Fraction(c) + sum((Fraction(p) for p in prods), Fraction(0))
    all_neg_zero = all(t == 0 and math.copysign(1.0, t) < 0 for t in [*prods, c])
    return round_to(s, out, "rne", negative_zero=all_neg_zero)


def promoted_dot(model, a: Sequence[float], b: Sequence[float], c: float) -> float:
    """:class:`~fp8ref.accum.Promoted`: ``main = c``; for each group of ``every`` consecutive elements the
    inner model computes the group's partial sum from accumulator 0 (its own blocks of ``nfma``), then
    ``main = RN_fp32(main + partial)``."""
    main = c
    n = len(a)
    for g0 in range(0, n, model.every):
        part = bfma_chain(model.inner, a[g0:g0 + model.every], b[g0:g0 + model.every], 0.0)
        main = _ieee_add(main, part, model.acc_format)
    return main
