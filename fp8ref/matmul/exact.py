"""Exact matrix products of FP8 code matrices with float64 BLAS.

Every finite value of a format is an integer multiple of its quantum ``2**lsb`` (the weight of its last
significand bit). If every entry of a piece ``A_p`` is a multiple of ``2**qa`` with ``|a| <= ma`` and every
entry of ``B_q`` a multiple of ``2**qb`` with ``|b| <= mb``, every product and every partial sum of any subset
of the ``K`` products of one output element is an integer multiple of ``2**(qa + qb)`` of magnitude at most
``K * ma * mb``. When ``K * ma * mb <= 2**(53 + qa + qb)`` all of those are float64 numbers, so every
float64 operation a BLAS can do on them (products, FMAs, sums in any order or blocking) is exact:
``A_p @ B_q`` in float64 *is* the exact result. docs/matmul.md gives the bounds per format pair.

Where one product does not fit, the operands are split by magnitude into pieces (each code goes wholly into
one piece) so that every pair of pieces fits; the exact result is then the sum of the piece products, which
the epilogue kernel adds exactly. The plan is computed from the codes that actually occur.

:func:`exact_mm` is ``scaled_mm(accumulate="exact")``: it chooses among the exact strategies of
docs/matmul.md §2 (power-of-two tensorwise scales folded into one operand, power-of-two block scales folded
into both, one term per K segment and piece product) and hands the terms to the exact epilogue.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from fp8ref.formats import FP32, FP64, Format
from fp8ref.matmul.inputs import Args, Operand, Scales, segment_scales, segments, tables
from fp8ref.matmul.rounding import format_params, round_values

MANTISSA = 53  # float64 significand bits
_PARALLEL = 1 << 20  # elements from which a Numba kernel runs on every thread (below: no parallel region)
_MAX_CHUNKS = 16  # K chunks of the power-of-two tensorwise path (more: the plan's pieces)
_FP64_PARAMS = format_params(FP64)
_SCRATCH_MAX = 1 << 22  # elements of a named work array kept for reuse (32 MiB: 2048 x 2048)
_SCRATCH_MAX_INDEXED = 1 << 16  # elements of a numbered one (piece / chunk products; 512 KiB)
_WORK = threading.local()


@dataclass(frozen=True)
class Profile:
    """The finite nonzero codes present in an operand: their magnitudes and quanta (log2), sorted."""

    codes: np.ndarray  # present finite nonzero codes, sorted by magnitude
    mag: np.ndarray
    lsb: np.ndarray
    has_special: bool

    @property
    def log_ratio(self) -> float:
        return log_ratio(self.mag, self.lsb)


def log_ratio(mag: np.ndarray, lsb: np.ndarray) -> float:
    """log2(max magnitude / smallest quantum) of a set of values; 0 for an empty or all-zero set."""
    if mag.size == 0:
        return 0.0
    return math.log2(float(mag.max())) - float(lsb.min())


def present_bits(counts: np.ndarray) -> bytes:
    """The 256 presence bits of ``counts`` (nonzero where a code occurs), packed: a cache key."""
    return np.packbits(np.asarray(counts) > 0).tobytes()


def summary(fmt: Format, counts: np.ndarray) -> tuple[bool, float, float]:
    """(NaN/Inf code present, largest magnitude present, log2 of the smallest quantum present) of the codes
    with nonzero ``counts``; magnitude 0 and quantum +inf when no finite nonzero code is present. The same
    numbers as :func:`profile`'s, without building the sorted code list."""
    _, mag, lsb, special = tables(fmt)
    present = counts != 0
    return (bool(np.any(present & special)), float(np.max(mag, where=present, initial=0.0)),
            float(np.min(lsb, where=present, initial=np.inf)))


def decode_summary(codes: np.ndarray, fmt: Format, table: np.ndarray, out: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, bool, float, float]:
    """:func:`decode` of C-contiguous codes with ``table`` into ``out``, and the :func:`summary` of the codes
    present: ``(out, presence counts, *summary)``, in one pass."""
    from fp8ref.matmul._kernels import decode_summary_serial

    if codes.size >= _PARALLEL:
        out, counts = decode(codes, fmt, True, table, out)
        return (out, counts, *summary(fmt, counts))
    _, mag, lsb, special = tables(fmt)
    hist = np.zeros((1, 256), dtype=np.uint8)
    sp, top, low = decode_summary_serial(codes, table, out, hist, mag, lsb, special)
    return out, hist[0], bool(sp), float(top), float(low)


def profile(codes: np.ndarray, fmt: Format, counts: np.ndarray | None = None) -> Profile:
    """The present codes of an operand (from ``counts``, 256 entries, nonzero where a code occurs)."""
    if counts is None:
        counts = np.bincount(codes.ravel(), minlength=256)
    return profile_of(fmt, present_bits(counts))


@lru_cache(maxsize=1024)
def cached_plan(fmt_a: Format, bits_a: bytes, fmt_b: Format, bits_b: bytes, k: int) -> Plan:
    """:func:`plan` for the present codes ``bits_a`` / ``bits_b`` (:func:`present_bits`), memoised."""
    return plan(profile_of(fmt_a, bits_a), profile_of(fmt_b, bits_b), k)


@lru_cache(maxsize=1024)
def profile_of(fmt: Format, bits: bytes) -> Profile:
    """The profile of a set of present codes (256 presence bits, packed): training steps see the same few
    sets again and again."""
    _, mag, lsb, special = tables(fmt)
    present = np.unpackbits(np.frombuffer(bits, dtype=np.uint8)).astype(bool)
    use = present & (mag > 0)
    idx = np.nonzero(use)[0]
    order = np.argsort(mag[idx], kind="stable")
    idx = idx[order]
    arrays = (idx, mag[idx], lsb[idx])
    for arr in arrays:
        arr.setflags(write=False)
    return Profile(*arrays, bool((present & special).any()))


def scratch(slot: object, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 work array of ``shape`` for ``slot``, reused by the next call on this thread with the same
    slot (a fresh array's first touch costs a page fault per 4 KiB, about as much as decoding into it). Only
    for arrays that do not outlive the call; above ``_SCRATCH_MAX`` elements (``_SCRATCH_MAX_INDEXED`` for a
    slot that is not a string) a fresh array, so that at most about 100 MiB stay allocated per thread (the
    named slots are "a", "b" and "t")."""
    size = math.prod(shape)
    if size > (_SCRATCH_MAX if isinstance(slot, str) else _SCRATCH_MAX_INDEXED):
        return np.empty(shape)
    bufs = getattr(_WORK, "bufs", None)
    if bufs is None:
        bufs = _WORK.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.size < size:
        buf = bufs[slot] = np.empty(size)
    return buf[:size].reshape(shape)


def decode(codes: np.ndarray, fmt: Format, parallel: bool = True, table: np.ndarray | None = None,
           out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values with NaN/Inf codes as 0, float64; presence (0/1) of each of the 256 codes), in one pass.
    ``table``: the 256 values to decode with instead of :func:`finite_table` (a scaled or piece table);
    ``out``: a float64 array of the codes' shape to decode into."""
    from fp8ref.matmul._kernels import decode_count, decode_count_serial

    if out is None:
        out = np.empty(codes.shape)
    if table is None:
        table = finite_table(fmt)
    if parallel:
        hist = np.zeros((max(1, min(16, codes.shape[0])), 256), dtype=np.uint8)
        decode_count(codes, table, out, hist)
        return out, hist.max(axis=0)
    hist = np.zeros((1, 256), dtype=np.uint8)
    decode_count_serial(codes, table, out, hist)
    return out, hist[0]


def partition(p: Profile, budget: float) -> list[np.ndarray] | None:
    """Split the present codes (by increasing magnitude) into the fewest pieces whose log ratio is at most
    ``budget``; ``None`` when a single value exceeds it. Greedy from the smallest magnitude."""
    pieces: list[np.ndarray] = []
    logmag = np.log2(p.mag)
    start = 0
    n = p.codes.size
    while start < n:
        # a piece [start, end) fits while log2(mag[end-1]) - min(lsb[start:end]) <= budget
        ok = logmag[start:] - np.minimum.accumulate(p.lsb[start:]) <= budget
        end = start + (int(np.argmin(ok)) if not ok.all() else n - start)
        if end == start:
            return None
        pieces.append(p.codes[start:end])
        start = end
    return pieces or [p.codes]


@dataclass(frozen=True)
class Plan:
    pieces_a: list[np.ndarray]
    pieces_b: list[np.ndarray]
    k_chunk: int

    @property
    def n_products(self) -> int:
        return len(self.pieces_a) * len(self.pieces_b)


def plan(pa: Profile, pb: Profile, k: int) -> Plan:
    """The split with the fewest float64 terms per output element (piece products times K chunks), every
    piece product exact in float64. K is cut into chunks only when no split of the whole K range needs at
    most 4 piece products."""
    best: Plan | None = None
    best_cost = math.inf
    ra, rb = pa.log_ratio, pb.log_ratio
    for kc in [k] + [c for c in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1 << 4, 1) if c < k]:
        room = MANTISSA - math.log2(max(kc, 1))
        cand: Plan | None = None
        if ra + rb <= room:
            cand = Plan([pa.codes], [pb.codes], kc)
        else:
            for budget_a in [ra] + [float(x) for x in range(1, int(room))]:
                split_a = [pa.codes] if budget_a >= ra else partition(pa, budget_a)
                if split_a is None:
                    continue
                split_b = partition(pb, room - budget_a)
                if split_b is None:
                    continue
                c = Plan(split_a, split_b, kc)
                if cand is None or c.n_products < cand.n_products:
                    cand = c
                if cand.n_products <= 2:
                    break
        if cand is not None:
            cost = cand.n_products * -(-max(k, 1) // max(kc, 1))
            if cost < best_cost:
                best, best_cost = cand, cost
        if best_cost <= 4:
            break
    assert best is not None  # kc == 1 with one-value pieces always fits (<= 2 * 8 + 2 bits)
    return best


def piece_table(fmt: Format, codes: np.ndarray, c: float = 1.0) -> np.ndarray:
    """256-entry table: the value of each code in ``codes`` (times ``c``), 0 for every other code."""
    vals = tables(fmt)[0]
    t = np.zeros(256)
    t[codes] = vals[codes] * c
    return t


@cache
def finite_table(fmt: Format) -> np.ndarray:
    """256-entry table: the value of each code, 0 for NaN and Inf codes (read-only)."""
    vals, _, _, special = tables(fmt)
    t = np.where(special, 0.0, vals)
    t.setflags(write=False)
    return t


@lru_cache(maxsize=256)
def scaled_table(fmt: Format, c: float) -> np.ndarray:
    """:func:`finite_table` times ``c`` (read-only); exact when ``c`` is a power of two and the products
    stay in float64's normal range (the caller checks)."""
    t = finite_table(fmt) * c
    t.setflags(write=False)
    return t


def exact_terms(codes_a: np.ndarray, fmt_a: Format, codes_b: np.ndarray, fmt_b: Format,
                bounds: list[int], pa: Profile, pb: Profile,
                dec_a: np.ndarray | None = None, dec_b: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Float64 matrices ``T[t]`` (each an exact product of pieces) and the K segment ``seg[t]`` of each, such
    that the exact value of ``sum_k a[i, k] * b[k, j]`` over segment ``s`` (NaN/Inf entries counted as 0) is
    ``sum_{t: seg[t] == s} T[t, i, j]``. ``dec_a`` / ``dec_b``: the operands already decoded (NaN/Inf as 0).
    """
    m, n = codes_a.shape[0], codes_b.shape[1]
    nseg = len(bounds) - 1
    seglen = max((bounds[s + 1] - bounds[s] for s in range(nseg)), default=0)
    pl = plan(pa, pb, seglen)
    def pieces(codes: np.ndarray, fmt: Format, split: list[np.ndarray], dec: np.ndarray | None
               ) -> list[np.ndarray]:
        par = codes.size >= _PARALLEL
        codes = np.ascontiguousarray(codes)
        if len(split) == 1:  # the whole operand
            return [decode(codes, fmt, par)[0] if dec is None else dec]
        return [decode(codes, fmt, par, piece_table(fmt, c))[0] for c in split]

    xs = pieces(codes_a, fmt_a, pl.pieces_a, dec_a)
    ys = pieces(codes_b, fmt_b, pl.pieces_b, dec_b)
    chunks_per_seg = [list(range(bounds[s], bounds[s + 1], max(pl.k_chunk, 1))) + [bounds[s + 1]]
                      for s in range(nseg)]
    nterm = sum((len(c) - 1) for c in chunks_per_seg) * pl.n_products
    terms = scratch("t", (nterm, m, n))  # consumed by the caller's epilogue before the next call
    seg = np.empty(nterm, dtype=np.int64)
    t = 0
    for s, cuts in enumerate(chunks_per_seg):
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            for x in xs:
                xa = x[:, lo:hi]
                for y in ys:
                    np.matmul(xa, y[lo:hi, :], out=terms[t])
                    seg[t] = s
                    t += 1
    return terms, seg


# ---- the exact strategies ---------------------------------------------------------------------------
_ROW_BYTES = 1 << 28  # memory bound of the term stack per row block


def _log_spread(grid: np.ndarray) -> float | None:
    """log2(max / min) of the finite nonzero magnitudes of a scale grid if all are powers of two, else
    None."""
    v = np.abs(grid[np.isfinite(grid) & (grid != 0)])
    if v.size == 0:
        return 0.0
    mant, ex = np.frexp(v)
    if not (mant == 0.5).all():
        return None
    return float(ex.max() - ex.min())


def _foldable(sa: Scales, sb: Scales, pa: Profile, pb: Profile, k: int) -> bool:
    """Whether ``(A * SA) @ (B * SB)`` in float64 is exact: power-of-two scales (the products with them are
    exact) and the lemma of docs/matmul.md §2.1 with the ratios widened by the scales' spread."""
    la, lb = _log_spread(sa.grid), _log_spread(sb.grid)
    if la is None or lb is None:
        return False
    return pa.log_ratio + la + pb.log_ratio + lb + np.log2(max(k, 1)) <= 53


def _pow2_exponent(c: float) -> int | None:
    """``e`` when ``|c| == 2**e`` (a finite nonzero power of two), else None."""
    if c == 0.0 or not math.isfinite(c):
        return None
    mant, e = math.frexp(abs(c))
    return e - 1 if mant == 0.5 else None


def _tensorwise_pow2(opa: Operand, opb: Operand, ca: float, cb: float, m: int, k: int, n: int
                     ) -> np.ndarray | None:
    """float32 result of a product with power-of-two tensorwise scales, no bias, no ``scale_result``, with
    ``c = ca * cb`` folded into ``a``: one exact dgemm, or exact K-chunk or piece products summed as a
    double-double, rounded to odd, then converted once (docs/matmul.md §2.1, "Power-of-two tensorwise
    scales"); None when that does not apply (NaN/Inf codes, a plan with K chunks, a range beyond the
    bounds), and the general path runs."""
    ea, eb = _pow2_exponent(ca), _pow2_exponent(cb)
    if ea is None or eb is None:
        return None
    c, lc = ca * cb, ea + eb  # a power of two in float32's range squared: exact in float64
    codes_a = np.ascontiguousarray(opa.codes)
    codes_b = np.ascontiguousarray(opb.codes)
    par_a, par_b = codes_a.size >= _PARALLEL, codes_b.size >= _PARALLEL
    dec_b, hist_b, special_b, mag_b, q_b = decode_summary(
        codes_b, opb.fmt, finite_table(opb.fmt), scratch("b", codes_b.shape))
    if special_b:
        return None
    dec_a, hist_a, special_a, mag_a, q_a = decode_summary(
        codes_a, opa.fmt, scaled_table(opa.fmt, c), scratch("a", codes_a.shape))
    if special_a:
        return None
    log_k = math.log2(max(k, 1))
    # log_ratio of the present codes; a * c, every product and partial sum (multiples of
    # 2**(qa + qb + lc), at most K * ma * mb * c) must lie in float64's normal range
    ratio_a = ratio_b = 0.0
    if mag_a > 0.0:
        ma = math.log2(mag_a)
        ratio_a = ma - q_a
        if q_a + lc < -1022 or ma + lc >= 1023:
            return None
    if mag_b > 0.0:
        mb = math.log2(mag_b)
        ratio_b = mb - q_b
        if mag_a > 0.0 and (q_a + q_b + lc < -1022 or ma + mb + log_k + lc >= 1023):
            return None
    room = MANTISSA - ratio_a - ratio_b  # log2 of the longest K range one exact product may span
    if log_k <= room:  # the plan's first test: one product
        terms = scratch("t", (1, m, n))
        np.matmul(dec_a, dec_b, out=terms[0])
        return _round_sum(terms, m, n)
    if room >= 0.0:
        # K chunks of 2**floor(room): each chunk's product is exact, the chunks together cost one dgemm
        kc = 1 << int(room)
        nt = -(-k // kc)
        if nt <= _MAX_CHUNKS and math.log2(nt) + log_k + ratio_a + ratio_b <= 2 * MANTISSA:
            terms = scratch("t", (nt, m, n))
            for i, lo in enumerate(range(0, k, kc)):
                np.matmul(dec_a[:, lo:lo + kc], dec_b[lo:lo + kc], out=terms[i])
            return _round_sum(terms, m, n)
    pl = cached_plan(opa.fmt, present_bits(hist_a), opb.fmt, present_bits(hist_b), k)
    nt = pl.n_products
    if pl.k_chunk < k or (nt > 1 and math.log2(nt) + log_k + ratio_a + ratio_b > 2 * MANTISSA):
        return None
    xs = [dec_a] if len(pl.pieces_a) == 1 else \
        [decode(codes_a, opa.fmt, par_a, piece_table(opa.fmt, p, c), scratch(("a", i), (m, k)))[0]
         for i, p in enumerate(pl.pieces_a)]
    ys = [dec_b] if len(pl.pieces_b) == 1 else \
        [decode(codes_b, opb.fmt, par_b, piece_table(opb.fmt, p), scratch(("b", i), (k, n)))[0]
         for i, p in enumerate(pl.pieces_b)]
    terms = scratch("t", (len(xs) * len(ys), m, n))
    for i, (x, y) in enumerate((x, y) for x in xs for y in ys):
        np.matmul(x, y, out=terms[i])  # each product exact (the plan's bound)
    return _round_sum(terms, m, n)


def _round_sum(terms: np.ndarray, m: int, n: int) -> np.ndarray:
    """The exact sum of the float64 ``terms`` (``(nt, m, n)``; a double-double, proven exact by the caller)
    rounded once to float32."""
    from fp8ref.matmul._kernels import plus_zero_to_f32, sum_to_f32

    res = np.empty((m, n), dtype=np.float32)
    if terms.shape[0] == 1:
        # + 0.0: an exact zero is +0 (a sum of -0 products may come out as -0); then the float32 conversion
        # (round to nearest even; beyond float32's range Inf, as the IEEE conversion says)
        plus_zero_to_f32(terms[0], res)
    else:
        # the exact sum as a double-double (docs/matmul.md §2.2), round to odd at 53 bits, then float32
        sum_to_f32(terms, res)
    return res


def _global_exact(args: Args) -> float:
    """The exact product ``ga * gb`` of the operands' per-tensor decode scales (two float32 numbers: exact in
    float64); 1.0 without them."""
    ga, gb = args.a.global_scale, args.b.global_scale
    return (1.0 if ga is None else ga) * (1.0 if gb is None else gb)


def _significant_bits(x: np.ndarray) -> int:
    """The largest number of significant bits of the finite nonzero float64 values of ``x``."""
    v = np.abs(x[np.isfinite(x) & (x != 0)])
    if v.size == 0:
        return 1
    m, _ = np.frexp(v)
    ints = (m * 2.0**53).astype(np.int64)
    tz = np.log2((ints & -ints).astype(np.float64)).astype(np.int64)
    return int(53 - tz.min())


def split_bits(x: float, width: int) -> list[float]:
    """``x`` as an exact sum of float64 parts of at most ``width`` significant bits each, largest first."""
    parts = []
    r = x
    while r != 0.0:
        mant, e = math.frexp(r)
        hi = math.ldexp(math.trunc(math.ldexp(mant, width)), e - width)
        parts.append(hi)
        r -= hi  # exact: hi holds the leading bits of r
    return parts or [0.0]


def _with_global(terms: np.ndarray, seg: np.ndarray, ga: np.ndarray, gb: np.ndarray, glob: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fold the exact per-tensor factor ``glob`` into the epilogue's coefficients ``c = ga * gb``
    (docs/matmul.md §2.2): ``glob`` is split into parts of at most ``53 - bits(ga) - bits(gb)`` significant
    bits, so that every coefficient ``(ga * part) * gb`` stays exact in float64, and the terms are repeated
    once per part (each copy with its own segment columns)."""
    if glob == 1.0:
        return terms, seg, ga, gb
    width = max(1, 53 - _significant_bits(ga) - _significant_bits(gb))
    parts = split_bits(glob, width)
    nseg = ga.shape[1]
    terms2 = np.concatenate([terms] * len(parts))
    seg2 = np.concatenate([seg + p * nseg for p in range(len(parts))]).astype(seg.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        ga2 = np.concatenate([ga * part for part in parts], axis=1)
    gb2 = np.concatenate([gb] * len(parts), axis=0)
    return terms2, seg2, np.ascontiguousarray(ga2), np.ascontiguousarray(gb2)


def exact_mm(args: Args) -> np.ndarray:
    """``scaled_mm(accumulate="exact")`` of the checked ``args`` (docs/matmul.md §2): the power-of-two
    tensorwise path where it applies, else the data-dependent plan's exact products (scales folded into one
    product where they are powers of two within the bound, else one term per K segment) and the exact
    epilogue; NaN/Inf results from :mod:`fp8ref.matmul.specials`."""
    from fp8ref.matmul._kernels import exact_epilogue, exact_epilogue_serial

    opa, opb, sa, sb, out = args.a, args.b, args.scale_a, args.scale_b, args.out
    bias, sr = args.bias, args.scale_result
    m, k, n = args.shape

    glob = _global_exact(args)
    if sa.is_tensor and sb.is_tensor and bias is None and sr is None and out.fmt == FP32 and glob == 1.0:
        res = _tensorwise_pow2(opa, opb, float(sa.grid[0, 0]), float(sb.grid[0, 0]), m, k, n)
        if res is not None:
            return res

    epilogue = exact_epilogue if m * n >= _PARALLEL else exact_epilogue_serial

    bounds = segments(sa, sb, k)
    ga, gb = segment_scales(sa, sb, bounds, m, n)
    codes_a = np.ascontiguousarray(opa.codes)
    codes_b = np.ascontiguousarray(opb.codes)
    # reused work arrays: a fresh one's first touch (a page fault per 4 KiB) costs ten times the decode
    dec_a, hist_a = decode(codes_a, opa.fmt, codes_a.size >= _PARALLEL, None, scratch("a", (m, k)))
    dec_b, hist_b = decode(codes_b, opb.fmt, codes_b.size >= _PARALLEL, None, scratch("b", (k, n)))
    pa, pb = profile(codes_a, opa.fmt, hist_a), profile(codes_b, opb.fmt, hist_b)
    special = (pa.has_special or pb.has_special or not np.isfinite(ga).all() or not np.isfinite(gb).all()
               or (bias is not None and not np.isfinite(bias).all()))
    if special:
        ga = np.where(np.isfinite(ga), ga, 0.0)
        gb = np.where(np.isfinite(gb), gb, 0.0)
    bias_arr = np.zeros(max(n, 1)) if bias is None else np.where(np.isfinite(bias), bias, 0.0)
    plain_sr = sr is not None and np.isfinite(sr) and sr != 0.0
    params = format_params(out.fmt) if sr is None or plain_sr else _FP64_PARAMS
    res_dtype = np.float32 if out.dtype == np.float32 and params is not _FP64_PARAMS else np.float64
    res = np.empty((m, n), dtype=res_dtype)
    nseg = len(bounds) - 1
    if nseg > 1 and _foldable(sa, sb, pa, pb, k):
        # power-of-two block scales (MX, the paper's scaling biases) whose range still satisfies the
        # float64 bound: fold them into the operands (exact) and do one product
        scale_a, scale_b = sa.expand(m, k), sb.expand(k, n)
        dec_a = dec_a * np.where(np.isfinite(scale_a), scale_a, 0.0)
        dec_b = dec_b * np.where(np.isfinite(scale_b), scale_b, 0.0)
        terms = np.matmul(dec_a, dec_b)[None]
        terms, seg, ga1, gb1 = _with_global(terms, np.zeros(1, np.int64), np.ones((m, 1)), np.ones((1, n)),
                                            glob)
        epilogue(terms, seg, ga1, gb1, bias_arr, bias is not None, sr if plain_sr else 1.0, plain_sr, *params,
                 res_dtype == np.float32, False, res)
    else:
        rows = max(1, min(m, _ROW_BYTES // max(1, 8 * n * max(nseg, 1) * 4)))
        for r0 in range(0, m, rows):
            r1 = min(m, r0 + rows)
            terms, seg = exact_terms(codes_a[r0:r1], opa.fmt, codes_b, opb.fmt, bounds, pa, pb,
                                     dec_a[r0:r1], dec_b)
            # one segment: the sum of its terms is a double-double, exactly, when every partial sum and the
            # accumulated TwoSum errors are multiples of the quantum below 2^106 of it (docs/matmul.md §2.2)
            dd = nseg == 1 and np.log2(max(terms.shape[0], 1)) + np.log2(max(k, 1)) + pa.log_ratio \
                + pb.log_ratio <= 2 * 53 and glob == 1.0
            terms, seg, ga_r, gb_r = _with_global(terms, seg, ga[r0:r1], gb, glob)
            epilogue(terms, seg, ga_r, gb_r, bias_arr, bias is not None, sr if plain_sr else 1.0,
                     plain_sr, *params, res_dtype == np.float32, bool(dd), res[r0:r1])
    if sr is not None and not plain_sr:
        with np.errstate(invalid="ignore", divide="ignore"):
            res = round_values(res / sr, out.fmt)
    if special:
        with np.errstate(invalid="ignore", over="ignore"):
            ap = tables(opa.fmt)[0][opa.codes] * sa.expand(m, k) * glob
            bp = tables(opb.fmt)[0][opb.codes] * sb.expand(k, n)
        from fp8ref.matmul.specials import special_results

        sp = special_results(ap, bp, bias)
        mask = sp != 0
        if mask.any():
            vals = sp[mask]
            if sr is not None:
                with np.errstate(invalid="ignore", divide="ignore"):
                    vals = vals / sr
            res[mask] = round_values(vals, out.fmt)
    return res.astype(out.dtype, copy=False)
