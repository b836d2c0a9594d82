"""Slow exact implementations of every accumulation rule (the specification).

Everything here works on Python ``fractions.Fraction`` values and integers; no floating-point
operation is involved except converting the final exact value to a Python float (exact: every result
is a value of a format no wider than float64). The Numba kernels (:mod:`fp8ref.accum.dispatch` and below) are
tested equal to these functions; every rounding is :func:`fp8ref.rounding.round_rational`.

Values travel as Python floats (NaN, +-Inf and -0.0 keep their meaning); each function documents its rule
and docs/accumulation.md states them once more in integer pseudocode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from fp8ref.accum.params import BlockParams
from fp8ref.formats import FP32, Format, floor_log2, pow2
from fp8ref.rounding import INF, NEAREST_EVEN, TOWARD_ZERO, accumulator, round_rational

_MODES = {"rne": NEAREST_EVEN, "rz": TOWARD_ZERO}  # the block-FMA roundings of the tensor-core models


def exponent(x: Fraction, emin: int) -> int:
    """The exponent a floating-point unit gives the nonzero value ``x`` of a format whose smallest normal
    exponent is ``emin``: ``max(floor(log2|x|), emin)`` (a subnormal keeps the exponent ``emin``)."""
    return max(floor_log2(abs(x)), emin)


def round_fraction(v: Fraction, frac_bits: int, emin: int, emax: int, rounding: str,
                   negative_zero: bool = False) -> float:
    """Round the exact value ``v`` to ``frac_bits`` fraction bits with exponent range ``[emin, emax]``
    (:func:`fp8ref.rounding.round_rational` on :func:`fp8ref.rounding.accumulator`).

    * ``rounding`` is ``"rne"`` (nearest, ties to even) or ``"rz"`` (toward zero).
    * Subnormal results are kept: below ``2**emin`` the last kept bit has weight ``2**(emin-frac_bits)``.
    * Overflow: when the rounded magnitude (with an unbounded exponent) is ``>= 2**(emax+1)`` the result is
      +-Inf, for both modes (the rule of the published tensor-core models; IEEE RZ would saturate instead).
    * A nonzero ``v`` that rounds to zero keeps its sign (-0.0 for negative ``v``); ``v == 0`` gives
      ``-0.0`` when ``negative_zero`` else ``+0.0``.
    """
    if v == 0:
        return -0.0 if negative_zero else 0.0
    if rounding not in _MODES:
        raise ValueError(f"rounding must be 'rne' or 'rz', got {rounding!r}")
    r = round_rational(v, accumulator(frac_bits, emin, emax), _MODES[rounding], INF)
    return -abs(float(r)) if v < 0 else abs(float(r))  # (the sign of v, which may exceed a float's range)


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
def bfma_block(a: Sequence[float], b: Sequence[float], c: float, p: BlockParams) -> float:
    """One block FMA ``d = c + sum a_i*b_i`` (len(a) <= NFMA) by the rule of docs/accumulation.md, with the
    parameters ``p`` of the model (the record the kernels take).

    1. Specials: NaN if a product (0*Inf included) or c is NaN or +Inf and -Inf both occur; else an
       infinite product or c gives that infinity.
    2. Terms: every nonzero product ``a_i*b_i`` (exact) with exponent ``ea+eb`` where
       ``ea = max(floor(log2|a_i|), p.emin_a)``; a nonzero ``c`` with exponent
       ``max(floor(log2|c|), p.emin_c)``. No term: the result is +0.
    3. ``E = max(all term exponents, p.e_floor)``; ``u = 2**(E - p.frac_bits)``.
    4. ``S = sum sign(t) * floor(|t| / u)`` (each term truncated toward zero, exact integer sum).
    5. ``S == 0`` gives +0; otherwise ``S*u`` is rounded once to ``p.out_frac_bits`` fraction bits in the
       output exponent range ``[p.out_emin, p.out_emax]``, toward zero (``p.rz``) or to nearest even (see
       :func:`round_fraction`).

    ``p.separate``: ``c`` is no term of steps 2-5 (the products alone are aligned, summed and rounded, an
    empty block giving +0); the result is then ``RNE(c + that)`` to ``p.out_frac_bits`` fraction bits with
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
        terms.append((fx * fy, exponent(fx, p.emin_a) + exponent(fy, p.emin_b)))
    if c != 0 and not p.separate:
        fc = Fraction(c)
        terms.append((fc, exponent(fc, p.emin_c)))
    s = _products_rounded(terms, p)
    if p.separate:
        return _ieee_add(c, s, p.out_frac_bits, p.out_emin, p.out_emax)
    return s


def _products_rounded(terms: list[tuple[Fraction, int]], p: BlockParams) -> float:
    if not terms:
        return 0.0
    E = max(max(e for _, e in terms), p.e_floor)  # NO_FLOOR lies below every exponent
    u = pow2(E - p.frac_bits)
    S = 0
    for t, _ in terms:
        q = abs(t) / u
        m = q.numerator // q.denominator
        S += -m if t < 0 else m
    if S == 0:
        return 0.0
    return round_fraction(S * u, p.out_frac_bits, p.out_emin, p.out_emax, "rz" if p.rz else "rne")


def _ieee_add(x: float, y: float, frac_bits: int, emin: int, emax: int) -> float:
    """IEEE ``RNE(x + y)`` to ``frac_bits`` fraction bits in ``[emin, emax]``: specials as IEEE, an exact
    zero sum is -0 only when both operands are -0."""
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
    if model.k_order is not None:  # products enter the blocks in the order k_order (chunk by chunk)
        idx = model.k_permutation(len(a)).tolist()
        a = [a[i] for i in idx]
        b = [b[i] for i in idx]
    p = model._params()
    last = model.c_mode == "last"
    d = 0.0 if last else c
    for k0 in range(0, len(a), p.nfma):
        d = bfma_block(a[k0:k0 + p.nfma], b[k0:k0 + p.nfma], d, p)
    if last:  # c_mode "last": the chain starts from +0, c is added once at the end (IEEE RNE addition)
        d = _ieee_add(d, c, p.out_frac_bits, p.out_emin, p.out_emax)
    return d


# --------------------------------------------------------------------------------------------------
# sequential, exact and promoted accumulation
def fused_multiply_add(x: float, y: float, d: float, acc: Format) -> float:
    """IEEE ``RN_acc(x*y + d)`` with the product exact (not rounded), one rounding: NaN if an operand is NaN,
    ``0*Inf`` or Inf - Inf; an infinite product or ``d`` gives that infinity; an exact zero sum is -0 only
    when the product (sign of ``x`` times sign of ``y``) and ``d`` are both -0; a nonzero sum that rounds to
    zero keeps its sign."""
    p = x * y  # the IEEE specials of the product; its finite value is taken exactly below
    if math.isnan(p) or math.isinf(p) and (math.isinf(x) or math.isinf(y)):
        sp = special_sum([p, d])
    else:
        sp = special_sum([d])
    if sp is not None:
        return sp
    s = Fraction(x) * Fraction(y) + Fraction(d)
    if s == 0:
        p_neg = (math.copysign(1.0, x) * math.copysign(1.0, y)) < 0 and (x == 0 or y == 0)
        return -0.0 if p_neg and d == 0 and math.copysign(1.0, d) < 0 else 0.0
    return round_fraction(s, acc.mbits, acc.emin, acc.emax, "rne")


def sequential_dot(a: Sequence[float], b: Sequence[float], c: float, acc: Format) -> float:
    """``acc = RN_acc(c)``; for k in order: ``acc = RN_acc(acc + a_k*b_k)`` with the product exact (a fused
    multiply-add, :func:`fused_multiply_add`; any float64 operands, so FP64 too)."""
    d = c if math.isnan(c) or math.isinf(c) or c == 0 else round_to(Fraction(c), acc, "rne")
    for x, y in zip(a, b, strict=True):
        d = fused_multiply_add(x, y, d, acc)
    return d


def fp32_add(x: float, y: float) -> float:
    """IEEE binary32 addition with round-to-nearest-even of two binary32 values."""
    return _ieee_add(x, y, FP32.mbits, FP32.emin, FP32.emax)


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
    ``main = RN_acc(main + partial)``, one IEEE round-to-nearest-even addition in the model's
    ``acc_format``."""
    acc = model.acc_format
    main = c
    n = len(a)
    for g0 in range(0, n, model.every):
        part = bfma_chain(model.inner, a[g0:g0 + model.every], b[g0:g0 + model.every], 0.0)
        main = _ieee_add(main, part, acc.mbits, acc.emin, acc.emax)
    return main


# --------------------------------------------------------------------------------------------------
# block-scaled instructions
def scale_exponent(s: float, fmt: Format) -> int:
    """The exponent of a decoded scale: ``floor(log2 s)`` (a subnormal UE4M3 keeps ``emin``); a zero scale
    -126 (MMA-Sim ``extract_significand_exponent`` of zero)."""
    if s == 0:
        return -126
    e = floor_log2(Fraction(s))
    return max(e, fmt.emin) if fmt.has_subnormals else e


def scaled_chain(model, a: Sequence[float], b: Sequence[float], c: float, sa: Sequence[float],
                 sb: Sequence[float]) -> float:
    """A :class:`~fp8ref.accum.blockscaled.BlockScaled` model over the whole vector: instructions of
    ``model.k`` consecutive elements chained through the accumulator (started at ``c``); ``sa[k]``,
    ``sb[k]``: the decoded scales of element ``k`` (absolute values). ``model.zero_exponent`` (an int): zero
    products are terms too, a zero element having that exponent (MMA-Sim's rule).

    One instruction: specials first (NaN if a scaled product ``a*b*sa*sb``, a scale or ``d`` is NaN or +Inf
    and -Inf meet, else an infinity). Terms: ``group == 0``: every nonzero product, value ``a*b*sa*sb`` and
    exponent ``ea + eb + e(sa) + e(sb)``; ``group > 0``: every group of ``group`` consecutive products
    (also a zero sum), value ``(sum a*b) * sa * sb`` and exponent ``e(sa) + e(sb)``; a nonzero accumulator
    with ``max(floor(log2|d|), -126)``. Then the block-FMA steps 3-5 of :func:`bfma_block`: alignment at
    ``frac_bits`` below ``max(exponents, e_floor)``, truncation toward zero, exact sum, one rounding toward
    zero to fp32."""
    p = model._params()
    fs = model.scale_format
    d = c
    for k0 in range(0, len(a), model.k):
        k1 = min(k0 + model.k, len(a))
        vals = [x * y * s * t for x, y, s, t in zip(a[k0:k1], b[k0:k1], sa[k0:k1], sb[k0:k1], strict=True)]
        sp = special_sum([*vals, d])
        if sp is not None:
            d = sp
            continue
        terms: list[tuple[Fraction, int]] = []
        if model.group == 0:
            z = model.zero_exponent  # None: a zero product is no term; else a zero element's exponent
            for k in range(k0, k1):
                if (a[k] != 0 and b[k] != 0) or z is not None:
                    fa, fb = Fraction(a[k]), Fraction(b[k])
                    ea = z if fa == 0 else exponent(fa, p.emin_a)
                    eb = z if fb == 0 else exponent(fb, p.emin_b)
                    terms.append((fa * fb * Fraction(sa[k]) * Fraction(sb[k]),
                                  ea + eb + scale_exponent(sa[k], fs) + scale_exponent(sb[k], fs)))
        else:
            for g0 in range(k0, k1, model.group):
                g1 = min(g0 + model.group, k1)
                G = sum((Fraction(a[k]) * Fraction(b[k]) for k in range(g0, g1)), Fraction(0))
                terms.append((G * Fraction(sa[g0]) * Fraction(sb[g0]),
                              scale_exponent(sa[g0], fs) + scale_exponent(sb[g0], fs)))
        if d != 0:
            fd = Fraction(d)
            terms.append((fd, exponent(fd, p.emin_c)))
        d = _products_rounded(terms, p)
    return d
