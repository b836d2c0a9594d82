"""Numba kernels of the casts: parallel loops over the encoders of :mod:`fp8ref.cast.encode`.

Importing this module compiles nothing; every kernel compiles on first call (``cache=True``). Each takes the
input as a flat array, the :class:`~fp8ref.cast.encode.EncoderParams` record ``p`` of the format, mode and
saturation, and the output array; :func:`fp8ref.cast.api._encode` picks the kernel. The exact
specification is :mod:`fp8ref.cast.oracle`; the tests hold these kernels equal to it.

``encode_scalar``, ``format_params`` and ``mode_index`` (docs/casts.md section 10) are importable from here
as well as from :mod:`fp8ref.cast.encode`.
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

from fp8ref.cast.encode import (  # noqa: F401 - encode_scalar, format_params, mode_index: documented here
    STOCHASTIC,
    STOCHASTIC_FAST,
    STOCHASTIC_FASTEST,
    encode_f32,
    encode_f64,
    encode_rne_f64,
    encode_scalar,
    encode_sr_f32,
    format_params,
    mode_index,
    sr_f32_view,
)

SMALL = 1 << 17  # below this many elements a parallel launch costs more than it saves
CHUNK = 4096  # elements per parallel chunk of quantize_f32_srbits (a multiple of 4)
SEED_CHUNK = 32768  # elements per parallel chunk of quantize_f32_seeded (a multiple of 4)


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


# ---- deterministic modes ------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def quantize_f32(x, p, out):
    """float32 ``x``, the modes of :data:`~fp8ref.cast.encode.F32_MODES`, formats of
    :func:`~fp8ref.cast.encode.fast_ok` (:func:`~fp8ref.cast.encode.encode_f32`). Returns 0."""
    for i in prange(x.size):
        out[i] = encode_f32(x[i], p)
    return 0


@njit(parallel=True, cache=True)
def quantize_rne_f64(x, p, out):
    """float64 ``x``, nearest-even, formats of ``fast_ok(fmt, 52)``
    (:func:`~fp8ref.cast.encode.encode_rne_f64`: exact, the float64 value is rounded once). Returns 0."""
    for i in prange(x.size):
        out[i] = encode_rne_f64(x[i], p)
    return 0


@njit(cache=True, inline="always")
def _put(out, i, c):
    """``out[i] = c``; a missing code (-1, formats without NaN) is written as 0 and counted (returns 1)."""
    out[i] = c if c >= 0 else 0
    return 1 if c < 0 else 0


@njit(parallel=True, cache=True)
def quantize_f64(x, p, out):
    """float64 ``x``, deterministic modes, every format (the general encoder). Returns the number of elements
    without an encoding (written as 0)."""
    nerr = 0
    for i in prange(x.size):
        nerr += _put(out, i, encode_f64(x[i], p, 0, 0))
    return nerr


@njit(parallel=True, cache=True)
def quantize_f64_srbits(x, p, rbits, nbits, out):
    """:func:`quantize_f64` for the stochastic modes with explicit random bits (``rbits`` an int64 array of
    the same size)."""
    nerr = 0
    for i in prange(x.size):
        nerr += _put(out, i, encode_f64(x[i], p, rbits[i], nbits))
    return nerr


# ---- Philox-4x32-10 -------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _philox_round(c0, c1, c2, c3, k0, k1):
    p0 = np.uint64(0xD2511F53) * c0
    p1 = np.uint64(0xCD9E8D57) * c2
    mask = np.uint64(0xFFFFFFFF)
    return ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & mask, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & mask)


@njit(cache=True, inline="always")
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox-4x32-10 on uint64 values holding 32-bit words (see :mod:`fp8ref.cast.philox`): ten rounds,
    the key bumped by ``(W0, W1)`` before each but the first. The loop has a constant trip count, so LLVM
    unrolls it and a loop over counters vectorises."""
    mask = np.uint64(0xFFFFFFFF)
    for r in range(10):
        ur = np.uint64(r)
        c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, (k0 + ur * np.uint64(0x9E3779B9)) & mask,
                                       (k1 + ur * np.uint64(0xBB67AE85)) & mask)
    return c0, c1, c2, c3


@njit(cache=True, inline="always")
def _philox_block(blk, k0, k1):
    """The four words of block ``blk`` (elements ``4 * blk .. 4 * blk + 3``) under the key ``(k0, k1)``."""
    ub = np.uint64(blk)
    return philox4x32_10(ub & np.uint64(0xFFFFFFFF), ub >> np.uint64(32), np.uint64(0), np.uint64(0),
                         np.uint64(k0), np.uint64(k1))


@njit(parallel=True, cache=True)
def philox_words(n, k0, k1, out):
    """The seeded 32-bit words of elements 0..n-1 (for tests and for exporting the bits)."""
    for blk in prange((n + 3) // 4):
        w = _philox_block(blk, k0, k1)
        for j in range(min(4, n - 4 * blk)):
            out[4 * blk + j] = w[j]


@njit(parallel=True, cache=True)
def quantize_f64_seeded(x, p, k0, k1, nbits, out):
    """:func:`quantize_f64` for the stochastic modes with Philox bits keyed by (k0, k1) and the flat index."""
    shift = np.uint64(32 - nbits)
    nerr = 0
    for blk in prange((x.size + 3) // 4):
        w = _philox_block(blk, k0, k1)
        for j in range(min(4, x.size - 4 * blk)):
            i = 4 * blk + j
            nerr += _put(out, i, encode_f64(x[i], p, np.int64(w[j] >> shift), nbits))
    return nerr


# ---- float32, stochastic modes ------------------------------------------------------------------------
# One loop per mode, in a function of its own per chunk: LLVM vectorises these, which it does not do for a
# loop nested in the parallel loop or for a loop that selects the mode per element.
@njit(cache=True, inline="always")
def _f32_srbits_loop(bits, rbits, v, mode, out):
    for j in range(bits.size):
        out[j] = encode_sr_f32(bits[j], np.uint32(rbits[j] << v.rsh), v, mode)


@njit(cache=True)
def _f32_srbits_chunk(bits, rbits, p, nbits, out):
    v = sr_f32_view(p, nbits)
    if p.mode == STOCHASTIC:
        _f32_srbits_loop(bits, rbits, v, STOCHASTIC, out)
    elif p.mode == STOCHASTIC_FAST:
        _f32_srbits_loop(bits, rbits, v, STOCHASTIC_FAST, out)
    else:
        _f32_srbits_loop(bits, rbits, v, STOCHASTIC_FASTEST, out)


@njit(parallel=True, cache=True)
def quantize_f32_srbits(x, p, rbits, nbits, out):
    """float32 ``x``, the modes of :data:`~fp8ref.cast.encode.F32_STOCHASTIC_MODES` with explicit random
    bits (``rbits`` an int64 array of the same size; word ``R << (32 - nbits)``), formats of
    :func:`~fp8ref.cast.encode.f32_stochastic_ok`, in parallel chunks of ``CHUNK`` elements. Returns 0."""
    ubits = x.view(np.uint32)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        _f32_srbits_chunk(ubits[start:stop], rbits[start:stop], p, nbits, out[start:stop])
    return 0


@njit(cache=True, inline="always")
def _f32_seeded_loop(bits, lo0, hi, k0, k1, v, mode, out):
    """Elements ``0 .. 4*(bits.size // 4) - 1`` of a chunk whose first element has flat index
    ``4 * (hi * 2**32 + lo0)``: one Philox call per four elements, the four encodes written out. LLVM
    vectorises the loop over blocks (Philox in 64-bit lanes, the encodes in 32-bit lanes), and the
    multiplier-bound Philox rounds overlap with the encodes."""
    mask = np.uint64(0xFFFFFFFF)
    for b in range(bits.size // 4):
        w0, w1, w2, w3 = philox4x32_10((lo0 + np.uint64(b)) & mask, hi, np.uint64(0), np.uint64(0), k0, k1)
        i = 4 * b
        out[i] = encode_sr_f32(bits[i], np.uint32(w0), v, mode)
        out[i + 1] = encode_sr_f32(bits[i + 1], np.uint32(w1), v, mode)
        out[i + 2] = encode_sr_f32(bits[i + 2], np.uint32(w2), v, mode)
        out[i + 3] = encode_sr_f32(bits[i + 3], np.uint32(w3), v, mode)


@njit(cache=True)
def _f32_seeded_chunk(bits, b0, k0, k1, p, nbits, out):
    """One chunk of :func:`quantize_f32_seeded`; its first element has flat index ``4 * b0``, with ``b0`` a
    multiple of ``SEED_CHUNK // 4`` (so the high counter word ``hi32(b0 + b)`` is one value in the chunk).
    The last one to three elements of the array use the words of one more block."""
    mask = np.uint64(0xFFFFFFFF)
    ub0 = np.uint64(b0)
    hi = (ub0 >> np.uint64(32)) & mask
    lo0 = ub0 & mask
    k0 = k0 & mask
    k1 = k1 & mask
    v = sr_f32_view(p, nbits)
    if p.mode == STOCHASTIC:
        _f32_seeded_loop(bits, lo0, hi, k0, k1, v, STOCHASTIC, out)
    elif p.mode == STOCHASTIC_FAST:
        _f32_seeded_loop(bits, lo0, hi, k0, k1, v, STOCHASTIC_FAST, out)
    else:
        _f32_seeded_loop(bits, lo0, hi, k0, k1, v, STOCHASTIC_FASTEST, out)
    nb = bits.size // 4
    w = philox4x32_10((lo0 + np.uint64(nb)) & mask, hi, np.uint64(0), np.uint64(0), k0, k1)
    for j in range(bits.size - 4 * nb):
        out[4 * nb + j] = encode_sr_f32(bits[4 * nb + j], np.uint32(w[j]), v, p.mode)


@njit(parallel=True, cache=True)
def quantize_f32_seeded(x, p, k0, k1, nbits, out):
    """float32 ``x``, the modes of :data:`~fp8ref.cast.encode.F32_STOCHASTIC_MODES` with Philox bits keyed
    by ``(k0, k1)`` and the flat index (formats of :func:`~fp8ref.cast.encode.f32_stochastic_ok`), in
    parallel chunks of ``SEED_CHUNK`` elements; the result depends only on each element's index. Returns 0."""
    ubits = x.view(np.uint32)
    n = x.size
    K0 = np.uint64(k0)
    K1 = np.uint64(k1)
    for c in prange((n + SEED_CHUNK - 1) // SEED_CHUNK):
        start = c * SEED_CHUNK
        stop = min(start + SEED_CHUNK, n)
        _f32_seeded_chunk(ubits[start:stop], start // 4, K0, K1, p, nbits, out[start:stop])
    return 0


@njit(parallel=True, cache=True)
def decode_table(codes, table, out):
    """``out[i] = table[codes[i]]``."""
    for i in prange(codes.size):
        out[i] = table[codes[i]]
