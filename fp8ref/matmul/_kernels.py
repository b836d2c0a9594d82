"""Numba kernels of the exact epilogue: exact sums of float64 terms, round-to-odd, one final rounding.

Everything here works on float64 values with error-free transformations (TwoSum, Dekker's TwoProduct with
Veltkamp splitting) and Shewchuk's expansion arithmetic, so every quantity is exact until the single final
rounding. See docs/matmul.md ("The exact epilogue") for the proofs. TwoSum is the one of the accumulation
kernels (:func:`fp8ref.accum.primitives.two_sum`).

Compiled lazily on first call (``cache=True``); importing this module compiles nothing.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from fp8ref.accum.primitives import two_sum

_SPLITTER = 134217729.0  # 2**27 + 1 (Veltkamp splitting of float64)


@njit(cache=True, inline="always")
def _dd_sum(terms: np.ndarray, i: int, j: int) -> tuple[float, float]:
    """The sum over ``t`` of ``terms[t, i, j]`` as a double-double ``(hi, lo)`` (TwoSum of every term, the
    errors summed, then TwoSum of the two): exact where the caller proved it (docs/matmul.md §2.1, §2.2)."""
    s = terms[0, i, j]
    err = 0.0
    for t in range(1, terms.shape[0]):
        s, e = two_sum(s, terms[t, i, j])
        err += e
    return two_sum(s, err)


@njit(cache=True, inline="always")
def _two_prod(a: float, b: float) -> tuple[float, float]:
    p = a * b
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLITTER * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(cache=True)
def _grow(p: np.ndarray, n: int, x: float) -> int:
    """Add ``x`` to the nonoverlapping expansion ``p[:n]`` (increasing magnitude); returns the new
    length. Shewchuk's Grow-Expansion with zero elimination (the ``msum`` of Python's ``math.fsum``)."""
    i = 0
    for j in range(n):
        y = p[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            p[i] = lo
            i += 1
        x = hi
    p[i] = x
    return i + 1


@njit(cache=True)
def _round_nearest(p: np.ndarray, n: int) -> float:
    """The exact sum of the expansion ``p[:n]`` rounded to nearest even float64 (``math.fsum``'s end)."""
    if n == 0:
        return 0.0
    n -= 1
    hi = p[n]
    lo = 0.0
    while n > 0:
        x = hi
        n -= 1
        y = p[n]
        hi = x + y
        yr = hi - x
        lo = y - yr
        if lo != 0.0:
            break
    if n > 0 and ((lo < 0.0 and p[n - 1] < 0.0) or (lo > 0.0 and p[n - 1] > 0.0)):
        y = lo * 2.0
        x = hi + y
        yr = x - hi
        if y == yr:
            hi = x
    return hi


@njit(cache=True, inline="always")
def _top_sign(p: np.ndarray, n: int) -> int:
    """Sign of the sum of the nonoverlapping expansion ``p[:n]``: that of its largest nonzero component."""
    for j in range(n - 1, -1, -1):
        if p[j] > 0.0:
            return 1
        if p[j] < 0.0:
            return -1
    return 0


@njit(cache=True)
def _sign_minus(p: np.ndarray, n: int, work: np.ndarray, t1: float, t2: float) -> int:
    """Sign (-1, 0, 1) of ``sum(p[:n]) - t1 - t2``, exactly."""
    for j in range(n):
        work[j] = p[j]
    m = _grow(work, n, -t1)
    if t2 != 0.0:
        m = _grow(work, m, -t2)
    return _top_sign(work, m)


@njit(cache=True, inline="always")
def _is_odd(x: float) -> bool:
    return (np.float64(x).view(np.int64) & 1) == 1


@njit(cache=True, inline="always")
def _step(x: float, direction: int) -> float:
    """The float64 neighbour of the nonzero finite ``x`` in ``direction`` (+1 up, -1 down)."""
    bits = np.float64(x).view(np.int64)
    away = (direction > 0) == (x > 0.0)
    return np.int64(bits + 1 if away else bits - 1).view(np.float64)


@njit(cache=True, inline="always")
def _pow2(e: int) -> float:
    """2**e for a normal float64 exponent e (-1022 <= e <= 1023)."""
    return np.int64((e + 1023) << 52).view(np.float64)


@njit(cache=True, inline="always")
def _round_odd(q: float, sign: int) -> float:
    """Round to odd, given ``q`` = a neighbour of the exact value and ``sign`` the side the value lies on."""
    if sign == 0 or _is_odd(q):
        return q
    return _step(q, sign)


@njit(cache=True)
def round_to_format(v: float, mbits: int, emin: int, maxval: float, has_inf: bool, neg_zero: bool) -> float:
    """Round the float64 ``v`` once, to nearest even, into a binary format (IEEE overflow rule: a result
    that rounds past ``maxval`` with unbounded exponent is Inf where the format has it, else NaN).
    ``v`` must be NaN, +-Inf, zero or normal in float64, and ``emin - mbits >= -1022``."""
    if v != v:
        return v
    a = abs(v)
    if a == math.inf:
        r = math.inf if has_inf else math.nan
    elif a == 0.0:
        r = 0.0
    else:
        e = ((np.float64(a).view(np.int64) >> 52) & 0x7FF) - 1023
        if e < emin:
            e = emin
        r = np.rint(a * _pow2(mbits - e)) * _pow2(e - mbits)
        if r > maxval:
            r = math.inf if has_inf else math.nan
    if v < 0.0 and (r != 0.0 or neg_zero):
        return -r
    return r


@njit(cache=True)
def _epilogue_row(i: int, terms: np.ndarray, seg: np.ndarray, sa: np.ndarray, sb: np.ndarray,
                  bias: np.ndarray, has_bias: bool, sr: float, has_sr: bool,
                  mbits: int, emin: int, maxval: float, has_inf: bool, neg_zero: bool,
                  native: bool, dd: bool, out: np.ndarray) -> None:
    nterm, _, n = terms.shape
    length = 2 * nterm + 4
    fast = nterm == 1 and not has_bias and not has_sr
    pair = dd and nterm > 1 and not has_bias and not has_sr
    if fast:  # one term: TwoProduct and round to odd; a loop LLVM can vectorise (no aliasing, no branches)
        s0 = seg[0]
        ca = sa[i, s0]
        sbr = sb[s0]
        trow = terms[0, i]
        orow = out[i]
        for j in range(n):
            h, e = _two_prod(ca * sbr[j], trow[j])
            v = _round_odd(h, 0 if e == 0.0 else (1 if e > 0.0 else -1)) + 0.0  # + 0.0: an exact zero is +0
            if native:
                orow[j] = v
            else:
                orow[j] = round_to_format(v, mbits, emin, maxval, has_inf, neg_zero)
        return
    p = np.empty(length)
    work = np.empty(length + 2)
    for j in range(n):
        if pair:
            # one segment: the terms' exact sum as a double-double (exact where the caller proved it, see
            # docs/matmul.md), then c * (hi + lo) as four exact parts
            hi, lo = _dd_sum(terms, i, j)
            c = sa[i, seg[0]] * sb[seg[0], j]
            h, e = _two_prod(c, hi)
            if lo == 0.0:
                v = _round_odd(h, 0 if e == 0.0 else (1 if e > 0.0 else -1))
            else:
                h2, e2 = _two_prod(c, lo)
                k = _grow(p, 0, h)
                if e != 0.0:
                    k = _grow(p, k, e)
                k = _grow(p, k, h2)
                if e2 != 0.0:
                    k = _grow(p, k, e2)
                r = _round_nearest(p, k)
                v = _round_odd(r, _top_sign(p, _grow(p, k, -r)))
        else:
            k = 0
            for t in range(nterm):
                x = terms[t, i, j]
                if x != 0.0:
                    c = sa[i, seg[t]] * sb[seg[t], j]
                    h, e = _two_prod(c, x)
                    k = _grow(p, k, h)
                    if e != 0.0:
                        k = _grow(p, k, e)
            if has_bias and bias[j] != 0.0:
                k = _grow(p, k, bias[j])
            hi = _round_nearest(p, k)
            if not has_sr:
                v = _round_odd(hi, _top_sign(p, _grow(p, k, -hi)))
            elif hi == 0.0:
                v = 0.0
            else:
                v = _divide_round_odd(p, k, work, hi, sr)
        if v == 0.0:
            out[i, j] = 0.0
        elif native:
            out[i, j] = v
        else:
            out[i, j] = round_to_format(v, mbits, emin, maxval, has_inf, neg_zero)


@njit(cache=True, parallel=True)
def exact_epilogue(terms: np.ndarray, seg: np.ndarray, sa: np.ndarray, sb: np.ndarray,
                   bias: np.ndarray, has_bias: bool, sr: float, has_sr: bool,
                   mbits: int, emin: int, maxval: float, has_inf: bool, neg_zero: bool,
                   native: bool, dd: bool, out: np.ndarray) -> None:
    """``out[i, j] = round(( sum_t sa[i, seg[t]] * sb[seg[t], j] * terms[t, i, j] + bias[j] ) / sr)`` with
    the products, the sum and the quotient exact and one rounding: round to odd into float64, then round to
    nearest even into the target format (Boldo & Melquiond 2008). Finite inputs; an exact zero gives +0.
    ``native``: ``out`` has the target's dtype (float32) and the assignment itself rounds (IEEE RNE).
    ``dd``: all terms are in one segment and their sum is exactly a double-double accumulated with TwoSum
    (the caller's proof). Rows run in parallel."""
    for i in prange(terms.shape[1]):
        _epilogue_row(i, terms, seg, sa, sb, bias, has_bias, sr, has_sr, mbits, emin, maxval, has_inf,
                      neg_zero, native, dd, out)


@njit(cache=True)
def exact_epilogue_serial(terms: np.ndarray, seg: np.ndarray, sa: np.ndarray, sb: np.ndarray,
                          bias: np.ndarray, has_bias: bool, sr: float, has_sr: bool,
                          mbits: int, emin: int, maxval: float, has_inf: bool, neg_zero: bool,
                          native: bool, dd: bool, out: np.ndarray) -> None:
    """:func:`exact_epilogue` on the calling thread (small products: no parallel region to wait for)."""
    for i in range(terms.shape[1]):
        _epilogue_row(i, terms, seg, sa, sb, bias, has_bias, sr, has_sr, mbits, emin, maxval, has_inf,
                      neg_zero, native, dd, out)


@njit(cache=True)
def _divide_round_odd(p: np.ndarray, k: int, work: np.ndarray, hi: float, sr: float) -> float:
    """Round to odd of X / sr, X = sum(p[:k]) exactly (hi = X rounded to nearest), sr finite nonzero.
    Walks from hi / sr (within a few ulps) to the two float64 neighbours of X / sr by exact sign tests of
    X - q * sr."""
    sgn_sr = 1 if sr > 0.0 else -1
    q = hi / sr
    while True:
        t1, t2 = _two_prod(q, sr)
        side = _sign_minus(p, k, work, t1, t2) * sgn_sr
        if side == 0:
            return q
        q2 = _step(q, side)
        t1, t2 = _two_prod(q2, sr)
        side2 = _sign_minus(p, k, work, t1, t2) * sgn_sr
        if side2 == 0:
            return q2
        if side2 != side:
            return q if _is_odd(q) else q2
        q = q2


@njit(cache=True)
def _decode_rows(codes: np.ndarray, table: np.ndarray, out: np.ndarray, hist: np.ndarray, c: int,
                 r0: int, r1: int) -> None:
    for i in range(r0, r1):
        for j in range(codes.shape[1]):
            code = codes[i, j]
            hist[c, code] = 1  # a store, no load: no dependency chain through repeated codes
            out[i, j] = table[code]


@njit(cache=True, parallel=True)
def decode_count(codes: np.ndarray, table: np.ndarray, out: np.ndarray, hist: np.ndarray) -> None:
    """``out = table[codes]``; ``hist[c, code] = 1`` for each code present in row chunk ``c`` (one pass)."""
    m = codes.shape[0]
    nchunk = hist.shape[0]
    for c in prange(nchunk):
        _decode_rows(codes, table, out, hist, c, c * m // nchunk, (c + 1) * m // nchunk)


@njit(cache=True)
def decode_count_serial(codes: np.ndarray, table: np.ndarray, out: np.ndarray, hist: np.ndarray) -> None:
    """:func:`decode_count` on the calling thread."""
    _decode_rows(codes, table, out, hist, 0, 0, codes.shape[0])


@njit(cache=True)
def decode_summary_serial(codes: np.ndarray, table: np.ndarray, out: np.ndarray, hist: np.ndarray,
                          mag: np.ndarray, lsb: np.ndarray, special: np.ndarray) -> tuple[bool, float, float]:
    """:func:`decode_count_serial` (``hist`` (1, 256), zeros), then of the codes present: (a NaN/Inf code is
    present, largest magnitude, smallest quantum ``lsb``) -- ``exact.summary`` of ``hist``."""
    _decode_rows(codes, table, out, hist, 0, 0, codes.shape[0])
    has_special = False
    top = 0.0
    low = np.inf
    for c in range(256):
        if hist[0, c] != 0:
            has_special |= special[c]
            top = max(top, mag[c])
            low = min(low, lsb[c])
    return has_special, top, low


@njit(cache=True, inline="always")
def _sign(e: float) -> int:
    return 0 if e == 0.0 else (1 if e > 0.0 else -1)


@njit(cache=True)
def sum_to_f32(terms: np.ndarray, out: np.ndarray) -> None:
    """``out[i, j]`` = the exact sum over ``t`` of the finite ``terms[t, i, j]`` rounded once to float32 (an
    exact zero +0). The sum is accumulated as a double-double with TwoSum (exact where the caller proved that
    every partial sum and the accumulated errors are multiples of one quantum below 2**106 of it,
    docs/matmul.md §2.1), rounded to odd at 53 bits, then converted (round to nearest even): one correct
    rounding (Boldo & Melquiond 2008). ``+ 0.0`` turns an exact -0 into +0."""
    for i in range(terms.shape[1]):
        for j in range(terms.shape[2]):
            s, e = _dd_sum(terms, i, j)
            out[i, j] = np.float32(_round_odd(s, _sign(e)) + 0.0)


@njit(cache=True)
def fma32_flat(x: np.ndarray, y: np.ndarray, z: np.ndarray, out: np.ndarray) -> None:
    """``out = float32(x * y + z)`` with one rounding (an FFMA) for float64 arrays holding float32 values:
    the product is exact in float64, TwoSum makes the sum exact, round to odd at 53 bits and the float32
    conversion give one correct rounding; a zero or non-finite sum is converted as it is."""
    for i in range(x.size):
        s, e = two_sum(x[i] * y[i], z[i])
        out[i] = np.float32(s if not np.isfinite(s) else _round_odd(s, _sign(e)))


@njit(cache=True)
def plus_zero_to_f32(s: np.ndarray, out: np.ndarray) -> None:
    """``out = float32(s + 0.0)`` elementwise (2-D, same shape): the float64 ``+ 0.0`` turns an exact -0
    into +0 and leaves every other value alone, the conversion rounds to nearest even (IEEE, Inf beyond
    float32's range), as NumPy's ``astype``."""
    for i in range(s.shape[0]):
        for j in range(s.shape[1]):
            out[i, j] = np.float32(s[i, j] + 0.0)
