"""AdamW, global-norm gradient clipping and the warm-up + cosine learning-rate schedule.

All state is float32 NumPy arrays keyed like the parameters; the update order is the parameter dict's
order, so a step is deterministic. Weight decay applies to matrices (``ndim >= 2``: linear weights and
embeddings), not to biases or LayerNorm parameters (nanoGPT's grouping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """Linear warm-up from ``lr / warmup`` to ``lr`` over ``warmup`` steps, then cosine decay to
    ``min_lr_ratio * lr`` at step ``total``."""

    lr: float
    warmup: int
    total: int
    min_lr_ratio: float = 0.1

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        frac = min(1.0, (step - self.warmup) / span)
        coeff = 0.5 * (1.0 + math.cos(math.pi * frac))
        lo = self.min_lr_ratio * self.lr
        return lo + coeff * (self.lr - lo)


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """sqrt(sum of squares) over every gradient, accumulated in float64 in parameter order."""
    total = 0.0
    for g in grads.values():
        g64 = g.astype(np.float64).reshape(-1)
        total += float(g64 @ g64)
    return math.sqrt(total)


def clip_grads(grads: dict[str, np.ndarray], max_norm: float, norm: float) -> None:
    """Scale every gradient in place by ``max_norm / norm`` when ``norm > max_norm``
    (``max_norm <= 0``: no clipping)."""
    if max_norm > 0 and norm > max_norm:
        f = np.float32(max_norm / norm)
        for g in grads.values():
            g *= f


@dataclass(frozen=True)
class AdamWConfig:
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1


class AdamW:
    """Decoupled weight decay Adam (Loshchilov & Hutter), in float32.

    ``m`` and ``v`` are the first and second moment estimates, ``t`` the number of updates taken.
    """

    def __init__(self, params: dict[str, np.ndarray], cfg: AdamWConfig | None = None) -> None:
        self.cfg = cfg or AdamWConfig()
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        c = self.cfg
        self.t += 1
        bc1 = 1.0 - c.beta1**self.t
        bc2 = 1.0 - c.beta2**self.t
        b1, b2 = np.float32(c.beta1), np.float32(c.beta2)
        for k, p in params.items():
            g = grads[k]
            m, v = self.m[k], self.v[k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            mhat = m / np.float32(bc1)
            vhat = v / np.float32(bc2)
            if p.ndim >= 2 and c.weight_decay:
                p -= np.float32(lr * c.weight_decay) * p
            p -= np.float32(lr) * mhat / (np.sqrt(vhat) + np.float32(c.eps))

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to checkpoint: ``m.<name>``, ``v.<name>``."""
        out = {f"m.{k}": v for k, v in self.m.items()}
        out.update({f"v.{k}": v for k, v in self.v.items()})
        return out

    def load_state(self, arrays: dict[str, np.ndarray], t: int) -> None:
        for k in self.m:
            self.m[k][...] = arrays[f"m.{k}"]
            self.v[k][...] = arrays[f"v.{k}"]
        self.t = int(t)
