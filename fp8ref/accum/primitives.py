"""Scalar Numba primitives of the accumulation kernels (inlined into :mod:`~fp8ref.accum.rowwise` and
:mod:`~fp8ref.accum.tiled`; :mod:`fp8ref.matmul` takes its TwoSum from here too).

The bottom layer of the accumulation kernels: TwoSum, the roundings of an exact value to an accumulator,
one block FMA, a chain of them (with the promotion of ``Promoted``), and the superaccumulator of ``Exact``.
Each works on float64 values and is exact where docs/accumulation.md §6 says so:

* inputs are float64 holding values of formats with <= 24-bit significands and <= 8 exponent bits, so every
  product ``a*b`` is exact in float64 and ``|a*b| < 2**256``;
* the alignment exponent ``E`` is an integer computed from precomputed per-element exponents
  (``max(floor(log2|x|), emin)``; zero gets the sentinel ``NEG`` far below every real exponent);
* ``trunc((a*b) * 2**(F-E))`` is the aligned, truncated term: multiplying by a power of two is exact (no
  float64 overflow, and a result in float64's subnormal range is < 1 and truncates to 0 either way), and
  ``trunc`` is exact; every term is an integer < 2**(F+2) <= 2**50 and the block sum of <= NFMA + 1 terms
  is an integer below 2**53 (checked by the dispatcher), so float64 addition is exact in any order;
* the final rounding works on that integer with ``frexp``/``ldexp`` (exact power-of-two scaling);
* sequential and promoted additions round ``x + y`` (float64 operands, exact product) to the accumulator
  format through TwoSum (``s + err == x + y`` exactly) and a midpoint correction;
* an fp64 accumulator takes float64 operands of any value: :func:`fma64` rounds ``a*b + c`` once.

The parameters of a model arrive as one :class:`~fp8ref.accum.params.BlockParams` record ``p``.
Compiled on first use (``cache=True``); importing this module compiles nothing. Numba's disk cache keys a
kernel on its own source file only: after editing a primitive here, delete the ``__pycache__`` folders of
``fp8ref/accum`` and ``fp8ref/matmul`` (the kernels that inline it) or they keep the old code.
"""

from __future__ import annotations

import math
import types

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import types as nb_types
from numba.extending import intrinsic

NEG = -(1 << 20)  # exponent sentinel of a zero element (sums of two stay far below every real exponent)
NO_TERMS = -(1 << 19)


def twins(fn):
    """A kernel in a serial and a parallel (``prange``) build: small problems skip the thread start-up.

    Numba's disk cache names its entries by the function's module, qualified name and line, not by the
    compile options: two builds of one function share one cache entry, and the parallel build would load the
    serial machine code (it then runs on one thread). The parallel build therefore compiles a copy of the
    function under the qualified name ``<name>__parallel``, which gets its own cache entry."""
    par = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "__parallel", fn.__defaults__,
                             fn.__closure__)
    par.__qualname__ = fn.__qualname__ + "__parallel"
    par.__module__ = fn.__module__
    return njit(cache=True)(fn), njit(cache=True, parallel=True)(par)


# --------------------------------------------------------------------------------------------------
# the fused multiply-add of float64 (fp64 instructions: MMA-Sim's ``fma`` chain)
@intrinsic
def fma64(typingctx, a, b, c):  # noqa: ARG001 - numba intrinsic signature
    """``RN64(a*b + c)`` with one rounding (IEEE 754 fusedMultiplyAdd of binary64): LLVM's ``llvm.fma.f64``,
    the FMA instruction where the CPU has one and a correctly rounded library call where it does not."""
    sig = nb_types.float64(nb_types.float64, nb_types.float64, nb_types.float64)

    def codegen(context, builder, signature, args):  # noqa: ARG001 - numba intrinsic signature
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)

    return sig, codegen


# --------------------------------------------------------------------------------------------------
# error-free addition and roundings
@njit(cache=True, inline="always")
def two_sum(a, b):
    """Knuth's TwoSum: ``(s, e)`` with ``s = fl(a + b)`` and ``s + e == a + b`` exactly (finite ``s``)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(cache=True, inline="always")
def ldexp(x, e):
    # np.ldexp for scalars, exact for the ranges used here
    return math.ldexp(x, e)


@njit(cache=True, inline="always")
def float_exponent(x):
    """``floor(log2|x|)`` of a finite nonzero float64."""
    _, e = math.frexp(abs(x))
    return e - 1


@njit(cache=True, inline="always")
def round_int(S, q0, frac_bits, emin, emax, rz):
    """Round the value ``S * 2**q0`` (``S`` an integer-valued float64, |S| < 2**53) to ``frac_bits``
    fraction bits in ``[emin, emax]``; RZ or RNE; Inf when the rounded magnitude >= 2**(emax+1)."""
    if S == 0.0:
        return 0.0
    neg = S < 0.0
    m = -S if neg else S
    ev = float_exponent(m) + q0
    t = ev if ev > emin else emin
    q = t - frac_bits
    sh = q - q0
    if sh <= 0:
        r = m
        qq = q0
    else:
        y = ldexp(m, -sh)
        r = math.floor(y)
        if not rz:
            diff = y - r
            if diff > 0.5 or (diff == 0.5 and r - 2.0 * math.floor(0.5 * r) != 0.0):
                r += 1.0
        qq = q
    if r == 0.0:
        return -0.0 if neg else 0.0
    if float_exponent(r) + qq > emax:
        return -np.inf if neg else np.inf
    v = ldexp(r, qq)
    return -v if neg else v


@njit(cache=True, inline="always")
def round_pair(s, err, mbits, emin, emax):
    """RNE of the exact value ``s + err`` (``s = fl64(s + err)`` from TwoSum) to ``mbits`` fraction bits in
    ``[emin, emax]``; only the sign of ``err`` matters (it decides float64 midpoints)."""
    if s == 0.0 or not np.isfinite(s):
        return s
    q = max(float_exponent(s), emin) - mbits
    y = ldexp(s, -q)
    r = math.floor(y)
    diff = y - r
    if diff > 0.5:
        r += 1.0
    elif diff == 0.5:
        if err > 0.0:
            r += 1.0
        elif err == 0.0 and r - 2.0 * math.floor(0.5 * r) != 0.0:
            r += 1.0
    if r == 0.0:
        return math.copysign(0.0, s)
    if float_exponent(r) + q > emax:
        return math.copysign(np.inf, s)
    return ldexp(r, q)


@njit(cache=True, inline="always")
def add_round(x, y, mbits, emin, emax):
    """IEEE ``RN_fmt(x + y)`` for float64 operands whose exact sum is wanted (TwoSum + midpoint fix)."""
    s = x + y
    if not np.isfinite(s):
        if np.isnan(s):
            return np.nan
        return s
    if s == 0.0:
        return s  # exact cancellation (+0) or the sum of two zeros (IEEE sign rule of float64 addition)
    bb = s - x
    err = (x - (s - bb)) + (y - bb)
    return round_pair(s, err, mbits, emin, emax)


# --------------------------------------------------------------------------------------------------
# block FMA
@njit(cache=True, inline="always")
def bfma_block(a, ea, b, eb, k0, k1, d, special, p):
    """One block FMA of the products ``k0 .. k1-1`` with the accumulator input ``d`` (docs/accumulation.md
    §2.1); ``special``: the row or column holds NaN/Inf (the IEEE rule of the float64 sum decides first)."""
    if special or not np.isfinite(d):
        s = d
        for k in range(k0, k1):
            s += a[k] * b[k]
        if not np.isfinite(s):
            if np.isnan(s):
                return np.nan
            return s
    sep = p.separate
    E = NEG
    for k in range(k0, k1):
        e = ea[k] + eb[k]
        if e > E:
            E = e
    if d != 0.0 and not sep:
        ec = float_exponent(d)
        if ec < p.emin_c:
            ec = p.emin_c
        if ec > E:
            E = ec
    if E < NO_TERMS:
        if sep:
            return add_round(d, 0.0, p.out_frac_bits, p.out_emin, p.out_emax)
        return 0.0
    if E < p.e_floor:
        E = p.e_floor
    F = p.frac_bits
    scale = ldexp(1.0, F - E)
    S0 = 0.0
    S1 = 0.0
    k = k0
    while k + 1 < k1:
        S0 += math.trunc((a[k] * b[k]) * scale)
        S1 += math.trunc((a[k + 1] * b[k + 1]) * scale)
        k += 2
    if k < k1:
        S0 += math.trunc((a[k] * b[k]) * scale)
    if sep:
        r = round_int(S0 + S1, E - F, p.out_frac_bits, p.out_emin, p.out_emax, p.rz)
        return add_round(d, r, p.out_frac_bits, p.out_emin, p.out_emax)
    S = S0 + S1 + math.trunc(d * scale)
    return round_int(S, E - F, p.out_frac_bits, p.out_emin, p.out_emax, p.rz)


@njit(cache=True, inline="always")
def bfma_chain(a, ea, b, eb, k0, k1, d, special, p):
    """Blocks of ``p.nfma`` products over ``k0 .. k1-1``, each block's result the next one's accumulator."""
    for s0 in range(k0, k1, p.nfma):
        s1 = min(s0 + p.nfma, k1)
        d = bfma_block(a, ea, b, eb, s0, s1, d, special, p)
    return d


@njit(cache=True, inline="always")
def block_dot(a, ea, b, eb, K, c, special, p):
    """One output of a block model over the K products: the chain from ``c`` (``p.every == 0``, fast
    accumulation), or, promoted, each group of ``p.every`` products chained from 0 and added to the
    accumulator (started at ``c``) with one RNE addition. (The row-wise kernels write this loop out
    themselves: inlined from here, the promoted path of a kernel runs about 15 % slower.)"""
    promoted = p.every > 0
    step = p.every if promoted else max(K, 1)
    d = c
    for g0 in range(0, K, step):
        part = bfma_chain(a, ea, b, eb, g0, min(g0 + step, K), 0.0 if promoted else d, special, p)
        d = add_round(d, part, p.acc_mbits, p.acc_emin, p.acc_emax) if promoted else part
    return d


# --------------------------------------------------------------------------------------------------
# exact: a fixed-point superaccumulator of signed 24-bit limbs
LIMB = 24
LIMB_MASK = (1 << LIMB) - 1
LO = -600  # weight of bit 0 of limb 0: below every product / accumulator bit (>= -2*(149+24))
NLIMBS = (600 + 300 + 40) // LIMB + 2  # up to 2**(300+40): above every |sum| (products < 2**256, K < 2**38)


@njit(cache=True, inline="always")
def limbs_add(limbs, x):
    """Add the float64 ``x`` (finite, nonzero, >= 2**LO granularity) exactly to the limbs."""
    neg = x < 0.0
    m, e = math.frexp(abs(x))
    M = np.int64(ldexp(m, 53))  # integer significand, x = M * 2**(e-53)
    pos = e - 53 - LO
    lo = M & LIMB_MASK
    hi = M >> LIMB  # < 2**29
    for part, p in ((lo, pos), (hi, pos + LIMB)):
        if part == 0:
            continue
        idx = p // LIMB
        off = p - idx * LIMB
        v = part << off  # < 2**(29+23)
        v0 = v & LIMB_MASK
        v1 = (v >> LIMB) & LIMB_MASK
        v2 = v >> (2 * LIMB)
        if neg:
            limbs[idx] -= v0
            limbs[idx + 1] -= v1
            limbs[idx + 2] -= v2
        else:
            limbs[idx] += v0
            limbs[idx + 1] += v1
            limbs[idx + 2] += v2


@njit(cache=True, inline="always")
def limbs_round(limbs, acc):
    """The exact sum held by the limbs rounded to nearest even into the accumulator ``acc``: carries
    propagated, the top 72 bits as a TwoSum pair, the lower limbs only for the sign of the remainder."""
    n = limbs.shape[0]
    for i in range(n - 1):
        carry = limbs[i] >> LIMB
        limbs[i] -= carry << LIMB
        limbs[i + 1] += carry
    neg = limbs[n - 1] < 0
    if neg:
        for i in range(n):
            limbs[i] = -limbs[i]
        for i in range(n - 1):
            carry = limbs[i] >> LIMB
            limbs[i] -= carry << LIMB
            limbs[i + 1] += carry
    t = n - 1
    while t >= 0 and limbs[t] == 0:
        t -= 1
    if t < 0:
        return 0.0
    if t < 2:
        # tiny values: at most 48 bits, exact in float64
        v = 0.0
        for i in range(t, -1, -1):
            v = v * float(1 << LIMB) + float(limbs[i])
        s = ldexp(v, LO)
        err = 0.0
    else:
        hi = float((limbs[t] << LIMB) | limbs[t - 1])  # < 2**48, exact
        s0, err = two_sum(hi * float(1 << LIMB), float(limbs[t - 2]))
        if err == 0.0:
            for i in range(t - 3, -1, -1):
                if limbs[i] != 0:
                    err = 1.0
                    break
        s = ldexp(s0, LO + LIMB * (t - 2))
    if neg:
        s = -s
        err = -err
    return round_pair(s, err, acc.mbits, acc.emin, acc.emax)
