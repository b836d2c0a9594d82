"""Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
counter-based generator behind seeded stochastic rounding. Pure Python: the reference for the Numba
version in :mod:`fp8ref.cast.kernels` and for a GPU kernel that must reproduce fp8ref's seeded bits.

The element with flat (C-order) index ``i`` of a seeded cast uses

    counter = (lo32(i // 4), hi32(i // 4), 0, 0),  key = (lo32(seed), hi32(seed))
    word    = philox4x32_10(counter, key)[i % 4]
    R       = word >> (32 - srnumbits)

so the bits depend only on the seed and the element's index (never on threads or chunking).
"""

from __future__ import annotations

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF
ROUNDS = 10


def philox4x32(counter: tuple[int, int, int, int], key: tuple[int, int],
               rounds: int = ROUNDS) -> tuple[int, int, int, int]:
    """Random123's ``philox4x32_R(rounds, counter, key)``: four 32-bit words."""
    c0, c1, c2, c3 = (int(c) & MASK32 for c in counter)
    k0, k1 = (int(k) & MASK32 for k in key)
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32)
    return c0, c1, c2, c3


def seed_key(seed: int) -> tuple[int, int]:
    """The Philox key of a seed in ``[0, 2**64)``."""
    return seed & MASK32, (seed >> 32) & MASK32


def random_word(seed: int, index: int) -> int:
    """The 32-bit word used by the element with flat index ``index``."""
    block = index >> 2
    return philox4x32((block & MASK32, block >> 32, 0, 0), seed_key(seed))[index & 3]


def random_bits(seed: int, index: int, srnumbits: int) -> int:
    """The ``srnumbits`` random bits ``R`` of element ``index``: the top bits of its word."""
    return random_word(seed, index) >> (32 - srnumbits)
