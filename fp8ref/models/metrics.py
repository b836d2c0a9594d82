"""How close FP8 sentence embeddings stay to float32 ones (docs/models.md §4).

All functions take L2-normalised embeddings ``[n, d]`` (float32) and compute in float64.

* :func:`cosine` -- cosine similarity of each FP8 embedding to its fp32 embedding (the dot product of the
  two unit vectors, clipped to [-1, 1]).
* :func:`nearest` -- each sentence's nearest neighbour among the *other* sentences (largest cosine; the lowest
  index wins a tie).
* :func:`nn_agreement` -- the fraction of sentences whose FP8 nearest neighbour is their fp32 one.
* :func:`retrieval` -- same-topic retrieval accuracy: the fraction of sentences whose nearest neighbour
  has their topic.
* :func:`sqnr_db` -- signal-to-quantisation-noise ratio ``10 log10(sum ref^2 / sum (y - ref)^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def cosine(e: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """[n] cosine similarity of row i of ``e`` to row i of ``ref`` (both unit rows)."""
    if e.shape != ref.shape or e.ndim != 2:
        raise ValueError(f"embeddings must be two [n, d] arrays of one shape, got {e.shape} and {ref.shape}")
    c = (e.astype(np.float64) * ref.astype(np.float64)).sum(axis=1)
    return np.clip(c, -1.0, 1.0)


def nearest(e: np.ndarray) -> np.ndarray:
    """[n] index of each row's nearest other row (needs n >= 2)."""
    if e.ndim != 2 or e.shape[0] < 2:
        raise ValueError(f"nearest neighbours need at least two embeddings, got shape {e.shape}")
    s = e.astype(np.float64) @ e.astype(np.float64).T
    np.fill_diagonal(s, -np.inf)
    return s.argmax(axis=1)


def nn_agreement(e: np.ndarray, ref: np.ndarray) -> float:
    return float((nearest(e) == nearest(ref)).mean())


def retrieval(e: np.ndarray, topics: Sequence[str]) -> float:
    if len(topics) != e.shape[0]:
        raise ValueError(f"{len(topics)} topics for {e.shape[0]} embeddings")
    t = np.asarray(topics, dtype=object)
    return float((t[nearest(e)] == t).mean())


def sqnr_db(signal: float, noise: float) -> float | None:
    """``10 log10(signal / noise)``; ``None`` when the noise is 0 (an exact result)."""
    if noise == 0:
        return None
    if signal == 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def energies(y: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """``(sum ref^2, sum (y - ref)^2)`` in float64."""
    r = ref.astype(np.float64)
    d = y.astype(np.float64) - r
    return float(np.vdot(r, r)), float(np.vdot(d, d))


__all__ = ["cosine", "nearest", "nn_agreement", "retrieval", "sqnr_db", "energies"]
