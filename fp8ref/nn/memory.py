"""Peak memory of a training run, estimated from its configuration, and the memory the machine has free.

A training run holds at its peak, in bytes (``f = 4``: float32; ``N = B*T`` rows of a batch; ``C``,
``L``, ``H``, ``T`` the model's width, layers, heads and context; ``V`` the vocabulary -- 16 for the
Markov corpus, 256 for a file before it is read; ``n`` tokens of data; ``P`` parameters, ``Pmax`` the
largest parameter tensor)::

    parameters   16 P + 24 Pmax       weights, gradients, AdamW m and v (4 f P); AdamW's temporaries
                                      (4 f Pmax) and the float64 copy of a gradient in its norm (8 Pmax)
    activations  f (N C (24 L + 3)    forward caches kept for the backward pass: per block 24 N C
                    + 3 N V)          (LayerNorm outputs and normalised inputs, QKV, attention output,
                                      projections, residuals, the 4C-wide MLP input, GELU output and
                                      tanh), the embedding and final LayerNorm (3 N C), logits,
                                      probabilities and the logits' gradient (3 N V)
    attention    f L B H T^2          every layer's softmax, cached for the backward pass
    fp8          sum (N K + K M)      the 1-byte codes of each FP8 layer's input [N, K] and weight [K, M];
                 + 8 (mk + kn + 3 mn) the exact GEMMs' float64 decoded operands and partial products
                 + f mn + f nk        (kept for reuse between calls), the float32 result and the float32
                                      scaled tensor before its cast (mk, kn, mn, nk: the largest operand,
                                      result and input over the GEMMs y, dx, dw of the FP8 layers)
    data         5 n                  the corpus bytes and their int32 token ids
    temporaries  the largest of       f 3 B H T^2 + T^2 (attention backward: dA, the softmax-backward
                                      product, dS; the causal mask), f 40 N C (MLP and GELU backward),
                                      f 3 N V (cross-entropy), 48 n while the Markov corpus is generated
                                      (n for a file)

The estimate is the sum times 1.1 (small temporaries and allocator slack). It bounds the memory NumPy
allocates, measured with ``tracemalloc`` for attention-, channel-, vocabulary- and FP8-dominated shapes
(tests/nn/test_nn_memory.py: between 1.1 and 2 times the measured peak). The interpreter, NumPy and Numba
themselves (about 0.2 GiB, already resident when the check runs) are not counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

F32 = 4
SLACK = 1.1  # what the count leaves out: small temporaries, allocator slack
MARKOV_LOAD_BYTES = 48  # per byte of the Markov corpus while it is generated (Python floats and lists)


@dataclass(frozen=True)
class MemoryEstimate:
    """The estimated peak of a training run, in bytes, by term (see the module docstring)."""

    parameters: int
    activations: int
    attention: int
    fp8: int
    data: int
    transient: int

    @property
    def total(self) -> int:
        """The sum of the terms times :data:`SLACK`."""
        terms = self.parameters + self.activations + self.attention + self.fp8 + self.data + self.transient
        return int(terms * SLACK)

    def describe(self) -> str:
        terms = (
            ("parameters and AdamW state", self.parameters),
            ("activations", self.activations),
            ("attention T x T", self.attention),
            ("FP8 codes and GEMM work", self.fp8),
            ("data", self.data),
            ("temporaries", self.transient),
        )
        return ", ".join(f"{name} {human(v)}" for name, v in terms if v)


def human(n: float) -> str:
    """``1.5 GiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def estimate(cfg: Any, vocab_size: int, n_tokens: int) -> MemoryEstimate:
    """The peak memory of a training run of ``cfg`` (a ``TrainConfig``) on ``n_tokens`` tokens of a vocabulary
    of ``vocab_size``."""
    from fp8ref.nn.model import LINEAR_KINDS

    B, T, L, H, C, V = cfg.batch_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, vocab_size
    N = B * T
    P = 2 * V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C
    pmax = max(V * C, T * C, 4 * C * C)
    shapes = {
        "qkv": (C, 3 * C),
        "attn_out": (C, C),
        "mlp_in": (C, 4 * C),
        "mlp_out": (4 * C, C),
        "lm_head": (C, V),
    }
    fp8 = [] if cfg.recipe == "fp32" else [k for k in LINEAR_KINDS if k in cfg.fp8_layers]
    codes = sum((L if k != "lm_head" else 1) * (N * shapes[k][0] + shapes[k][0] * shapes[k][1]) for k in fp8)
    mk = kn = mn = nk = 0
    for k in fp8:
        K, M = shapes[k]
        nk = max(nk, N * K)
        for m, kk, n in ((N, K, M), (N, M, K), (K, N, M)):  # y = X W, dx = G W^T, dw = X^T G
            mk, kn, mn = max(mk, m * kk), max(kn, kk * n), max(mn, m * n)
    # exact GEMMs: float64 work arrays for A, B and the partial products (kept for reuse between calls),
    # the float32 result, and the float32 scaled tensor before its cast
    gemm = 8 * (mk + kn + 3 * mn) + F32 * mn + F32 * nk if fp8 else 0
    transient = max(
        F32 * 3 * B * H * T * T + T * T,
        F32 * 40 * N * C,
        F32 * 3 * N * V,
        (MARKOV_LOAD_BYTES if cfg.data is None else 1) * n_tokens,
    )
    return MemoryEstimate(
        parameters=4 * F32 * P + 6 * F32 * pmax,
        activations=F32 * (N * C * (24 * L + 3) + 3 * N * V),
        attention=F32 * L * B * H * T * T,
        fp8=codes + gemm,
        data=5 * n_tokens,
        transient=transient,
    )


def available() -> tuple[int, str] | None:
    """``(bytes, source)``: the memory available to a new allocation -- ``MemAvailable`` of /proc/meminfo,
    else the free physical pages (``os.sysconf``); ``None`` where neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free physical memory"
    except (OSError, ValueError, AttributeError):
        return None


def check(cfg: Any, vocab_size: int, n_tokens: int) -> MemoryEstimate:
    """Refuse (``UsageError``) a configuration whose estimated peak exceeds the available memory."""
    from fp8ref.outputs import UsageError

    est = estimate(cfg, vocab_size, n_tokens)
    avail = available()
    if avail is not None and est.total > avail[0]:
        raise UsageError(
            f"this configuration needs about {human(est.total)} of memory ({est.describe()}; "
            f"docs/trainer.md gives the formula), more than the {human(avail[0])} available "
            f"({avail[1]}): lower --block-size, --batch-size, --n-embd or --n-layer"
        )
    return est
