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
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from fp8ref.formats import Format
from fp8ref.matmul.inputs import tables

MANTISSA = 53  # float64 significand bits
_PARALLEL = 1 << 20  # elements from which the decode kernel runs on every thread
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
