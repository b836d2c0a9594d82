"""Training data: the embedded Markov corpus with a known entropy rate, or any file as bytes.

The default corpus is generated from a seed by an **order-2 Markov chain** over a 16-symbol alphabet
(bytes of ``" etaoinshrdlucmw"``): for every pair of previous symbols ``(a, b)`` the next-symbol
distribution ``P[a, b, :]`` is drawn from a symmetric Dirichlet(``alpha``). Because the source is known,
so is the best loss any model can reach:

* the **entropy rate** ``H = sum_{a,b} pi(a,b) H(P[a,b,:])`` (nats/token), ``pi`` the stationary
  distribution of the pair chain (power iteration in float64);
* for windows of ``T`` tokens where the first target has only one symbol of context, the **best achievable
  mean loss** ``(H(X1 | X0) + (T - 1) H) / T``.

Tokens are bytes; the vocabulary is the sorted set of distinct bytes of the data (so the Markov corpus has
16 tokens and a text file at most 256). ``Dataset.batch(seed, step, B, T)`` is a pure function of
``(seed, step)``: resuming never needs a random-generator state.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ALPHABET = b" etaoinshrdlucmw"
MIN_FILE_BYTES = 1000


@dataclass(frozen=True)
class MarkovSource:
    """An order-2 Markov chain over ``len(alphabet)`` symbols, fully determined by ``seed``."""

    seed: int = 0
    alpha: float = 0.08
    alphabet: bytes = ALPHABET

    def transition(self) -> np.ndarray:
        """P [K, K, K] float64: P[a, b, c] = Pr(next = c | previous two = a, b)."""
        K = len(self.alphabet)
        rng = np.random.default_rng([int(self.seed), 0xDA7A])
        P = rng.dirichlet(np.full(K, self.alpha), size=K * K).reshape(K, K, K)
        # make every pair reachable with a small floor so the chain is irreducible
        P = 0.995 * P + 0.005 / K
        return P / P.sum(axis=-1, keepdims=True)

    def stationary(self) -> np.ndarray:
        """pi [K, K] float64: stationary distribution of the pair chain (a, b)."""
        P = self.transition()
        K = P.shape[0]
        pi = np.full((K, K), 1.0 / (K * K))
        for _ in range(2000):
            new = np.einsum("ab,abc->bc", pi, P)
            if np.abs(new - pi).max() < 1e-15:
                pi = new
                break
            pi = new
        return pi / pi.sum()

    def entropy_rate(self) -> float:
        """H(X_t | X_{t-1}, X_{t-2}) in nats per token."""
        P = self.transition()
        pi = self.stationary()
        h = -(P * np.log(P)).sum(axis=-1)  # [K, K]
        return float((pi * h).sum())

    def best_loss(self, T: int) -> float:
        """Best achievable mean cross-entropy (nats) over a window of T targets whose first target sees
        one symbol of context and the others at least two."""
        pi = self.stationary()
        p1 = pi.sum(axis=0)  # marginal of a symbol
        h_pair = -(pi * np.log(pi)).sum()
        h_one = -(p1 * np.log(p1)).sum()
        h_cond1 = h_pair - h_one  # H(X1 | X0)
        return float((h_cond1 + (T - 1) * self.entropy_rate()) / T)

    def generate(self, n: int) -> bytes:
        """n bytes sampled from the chain (deterministic in ``seed``), started in its stationary law."""
        P = self.transition()
        K = P.shape[0]
        rng = np.random.default_rng([int(self.seed), 0x5A3])
        cum = np.cumsum(P, axis=-1)
        cum[..., -1] = 1.0
        rows = [[list(cum[a, b]) for b in range(K)] for a in range(K)]
        pi = self.stationary().reshape(-1)
        first = int(min(np.searchsorted(np.cumsum(pi), rng.random()), K * K - 1))
        a, b = divmod(first, K)
        u = rng.random(n).tolist()
        out = bytearray(n)
        alpha = self.alphabet
        for i in range(n):
            c = bisect.bisect_right(rows[a][b], u[i])
            if c >= K:
                c = K - 1
            out[i] = alpha[c]
            a, b = b, c
        return bytes(out)


@dataclass
class Dataset:
    """Byte-level tokens split into train (first 90 %) and validation (last 10 %)."""

    tokens: np.ndarray  # [n] int32 token ids
    vocab: bytes  # token id -> byte
    seed: int
    description: str
    entropy_rate: float | None = None
    source: MarkovSource | None = None
    sha256: str = ""

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def n_train(self) -> int:
        return train_tokens(len(self.tokens))

    def best_loss(self, T: int) -> float | None:
        return None if self.source is None else self.source.best_loss(T)

    def batch(
        self, seed: int, step: int, B: int, T: int, split: str = "train"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(idx, targets), each [B, T] int64; windows start at positions drawn from
        ``(seed, split, step)``."""
        if split == "train":
            lo, hi = 0, self.n_train
        elif split == "val":
            lo, hi = self.n_train, len(self.tokens)
        else:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        check_split(split, hi - lo, T)
        rng = np.random.default_rng([int(seed), 0xBA7C, 0 if split == "train" else 1, int(step)])
        starts = lo + rng.integers(0, hi - lo - T - 1, size=B)
        pos = starts[:, None] + np.arange(T + 1)[None, :]  # [B, T+1]
        w = self.tokens[pos].astype(np.int64)
        return w[:, :-1], w[:, 1:]


def train_tokens(n: int) -> int:
    """Tokens of the train split of ``n`` tokens (the first 90 %); the validation split has the rest."""
    return int(n * 9 // 10)


def check_split(split: str, size: int, T: int) -> None:
    """A window of ``T`` inputs and their targets needs ``T + 2`` tokens of the split (``ValueError``)."""
    if size < T + 2:
        raise ValueError(
            f"the {split} split has {size} tokens, fewer than block_size + 2 = {T + 2}: "
            "lower --block-size or train on more data"
        )


def source_size(data: str | None, corpus_bytes: int) -> tuple[int, int]:
    """``(tokens, largest vocabulary)`` of the corpus -- the Markov corpus of ``corpus_bytes`` bytes, or the
    file ``data`` (checked to be readable and long enough, not read)."""
    if data is None:
        return int(corpus_bytes), len(ALPHABET)
    return _check_file(Path(data)), 256


def check_windows(n_tokens: int, block_size: int) -> None:
    """Both splits of ``n_tokens`` tokens give windows of ``block_size`` (``ValueError`` otherwise)."""
    check_split("train", train_tokens(n_tokens), block_size)
    check_split("val", n_tokens - train_tokens(n_tokens), block_size)


def _check_file(p: Path) -> int:
    """The size of a data file that can be used (``ValueError`` naming it otherwise)."""
    if not p.is_file():
        raise ValueError(f"--data: {p} is not a readable file")
    if not os.access(p, os.R_OK):
        raise ValueError(f"--data: {p} is not readable")
    size = p.stat().st_size
    if size < MIN_FILE_BYTES:
        raise ValueError(f"--data: {p} has {size} bytes; at least {MIN_FILE_BYTES} are needed")
    return size


def markov_corpus(seed: int = 0, n: int = 200_000) -> Dataset:
    """The embedded default corpus: ``n`` bytes of :class:`MarkovSource` (seed)."""
    src = MarkovSource(seed=seed)
    data = src.generate(n)
    return _from_bytes(data, seed, f"markov2(seed={seed}, n={n}, K={len(src.alphabet)})", src)


def file_corpus(path: str | Path, seed: int = 0) -> Dataset:
    """Every byte of ``path`` is a token."""
    p = Path(path)
    _check_file(p)
    data = p.read_bytes()
    if len(data) < MIN_FILE_BYTES:  # the file shrank since it was checked
        raise ValueError(f"--data: {p} has {len(data)} bytes; at least {MIN_FILE_BYTES} are needed")
    return _from_bytes(data, seed, f"file {p.name} ({len(data)} bytes)", None)


def _from_bytes(data: bytes, seed: int, description: str, src: MarkovSource | None) -> Dataset:
    arr = np.frombuffer(data, dtype=np.uint8)
    vocab = bytes(np.unique(arr).tolist())
    lut = np.zeros(256, dtype=np.int32)
    lut[np.frombuffer(vocab, dtype=np.uint8)] = np.arange(len(vocab), dtype=np.int32)
    return Dataset(
        tokens=lut[arr],
        vocab=vocab,
        seed=seed,
        description=description,
        entropy_rate=None if src is None else src.entropy_rate(),
        source=src,
        sha256=hashlib.sha256(data).hexdigest(),
    )
