"""The decoder-only GPT: configuration, parameters, whole-model forward and backward.

Architecture (GPT-2 style): token + learned position embeddings; ``n_layer`` pre-LayerNorm blocks
``x = x + attn_proj(attention(qkv(ln1(x))))``, ``x = x + mlp_proj(gelu(mlp_fc(ln2(x))))``; a final
LayerNorm; an untied LM head (a linear layer without bias); softmax cross-entropy.

The five kinds of linear layer are named by :data:`LINEAR_KINDS`. Every linear layer goes through a
*linear executor* (``forward(name, x, w, b) -> (y, cache)``, ``backward(name, dy, cache) -> (dx, dw, db)``),
so the same model runs in float32 (:class:`FP32Linear`) or with FP8 layers (``fp8ref.nn.fp8.FP8Linear``).
Parameters live in one ordered ``dict[str, np.ndarray]``; their order is the order of every loop over them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from fp8ref.nn import ops

# kind -> (parameter-name suffix inside a block, or the top-level name), has_bias
LINEAR_KINDS: dict[str, tuple[str, bool]] = {
    "qkv": ("attn.qkv", True),
    "attn_out": ("attn.proj", True),
    "mlp_in": ("mlp.fc", True),
    "mlp_out": ("mlp.proj", True),
    "lm_head": ("lm_head", False),
}
DEFAULT_FP8_KINDS: tuple[str, ...] = ("qkv", "attn_out", "mlp_in", "mlp_out")


@dataclass(frozen=True)
class GPTConfig:
    """Model shape. ``block_size`` is the context length T."""

    vocab_size: int
    block_size: int = 32
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 32
    mlp_ratio: int = 4
    ln_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "mlp_ratio"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def linear_layers(self) -> list[tuple[str, str]]:
        """Every linear layer as ``(name, kind)`` in forward order; ``name`` + ``".w"`` is its weight."""
        out = []
        for i in range(self.n_layer):
            for kind in ("qkv", "attn_out", "mlp_in", "mlp_out"):
                out.append((f"h.{i}.{LINEAR_KINDS[kind][0]}", kind))
        out.append(("lm_head", "lm_head"))
        return out


def init_params(cfg: GPTConfig, seed: int, dtype: type = np.float32) -> dict[str, np.ndarray]:
    """GPT-2 initialisation: N(0, 0.02) weights, residual projections N(0, 0.02 / sqrt(2 n_layer)),
    zero biases, LayerNorm weight 1 / bias 0. Deterministic in ``seed``."""
    rng = np.random.default_rng([int(seed), 0x6770])
    C, V, L = cfg.n_embd, cfg.vocab_size, cfg.n_layer
    Ch = cfg.mlp_ratio * C
    std, std_proj = 0.02, 0.02 / math.sqrt(2 * L)

    def normal(shape: tuple[int, ...], s: float) -> np.ndarray:
        return (rng.standard_normal(shape) * s).astype(dtype)

    p: dict[str, np.ndarray] = {"wte": normal((V, C), std), "wpe": normal((cfg.block_size, C), std)}
    for i in range(L):
        h = f"h.{i}."
        p[h + "ln1.w"], p[h + "ln1.b"] = np.ones(C, dtype), np.zeros(C, dtype)
        p[h + "attn.qkv.w"], p[h + "attn.qkv.b"] = normal((C, 3 * C), std), np.zeros(3 * C, dtype)
        p[h + "attn.proj.w"], p[h + "attn.proj.b"] = normal((C, C), std_proj), np.zeros(C, dtype)
        p[h + "ln2.w"], p[h + "ln2.b"] = np.ones(C, dtype), np.zeros(C, dtype)
        p[h + "mlp.fc.w"], p[h + "mlp.fc.b"] = normal((C, Ch), std), np.zeros(Ch, dtype)
        p[h + "mlp.proj.w"], p[h + "mlp.proj.b"] = normal((Ch, C), std_proj), np.zeros(C, dtype)
    p["lnf.w"], p["lnf.b"] = np.ones(C, dtype), np.zeros(C, dtype)
    p["lm_head.w"] = normal((C, V), std)
    return p


class LinearExecutor(Protocol):
    def forward(
        self, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
    ) -> tuple[np.ndarray, Any]: ...

    def backward(
        self, name: str, dy: np.ndarray, cache: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]: ...


class FP32Linear:
    """The higher-precision linear layer: ``y = x @ w + b`` in the dtype of its inputs."""

    def forward(
        self, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
    ) -> tuple[np.ndarray, Any]:
        return ops.linear_forward(x, w, b)

    def backward(
        self, name: str, dy: np.ndarray, cache: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return ops.linear_backward(dy, cache)


@dataclass
class ForwardResult:
    """What :func:`forward` returns: the loss, the backward caches, and every intermediate tensor in
    forward order (``trace``, used to name the first non-finite tensor)."""

    loss: float
    caches: dict[str, Any]
    trace: list[tuple[str, np.ndarray]]
    logits: np.ndarray


class Model:
    """Forward and backward of the GPT over a parameter dict.

    ``linears`` maps a linear layer's name to its executor; layers not in it use ``default_linear``
    (float32). The model holds no parameters: they are passed to every call.
    """

    def __init__(
        self,
        cfg: GPTConfig,
        linears: dict[str, LinearExecutor] | None = None,
        default_linear: LinearExecutor | None = None,
    ) -> None:
        self.cfg = cfg
        self.default_linear = default_linear or FP32Linear()
        self.linears = dict(linears or {})

    def _lin(self, name: str) -> LinearExecutor:
        return self.linears.get(name, self.default_linear)

    def forward(self, p: dict[str, np.ndarray], idx: np.ndarray, targets: np.ndarray) -> ForwardResult:
        """idx, targets [B, T] int -> loss (mean cross-entropy in nats) and caches."""
        cfg = self.cfg
        B, T = idx.shape
        if T > cfg.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {cfg.block_size}")
        caches: dict[str, Any] = {}
        trace: list[tuple[str, np.ndarray]] = []

        x, caches["emb"] = ops.embedding_forward(idx, p["wte"], p["wpe"])  # [B, T, C]
        trace.append(("embedding output", x))

        def linear(name: str, inp: np.ndarray) -> np.ndarray:
            n_out = p[name + ".w"].shape[1]
            y, caches[name] = self._lin(name).forward(
                name, inp.reshape(B * T, -1), p[name + ".w"], p.get(name + ".b")
            )  # [N, M]
            trace.append((f"layer {name}, tensor y (output)", y))
            return y.reshape(B, T, n_out)

        for i in range(cfg.n_layer):
            h = f"h.{i}."
            a, caches[h + "ln1"] = ops.layernorm_forward(
                x, p[h + "ln1.w"], p[h + "ln1.b"], cfg.ln_eps
            )  # [B,T,C]
            trace.append((h + "ln1 output", a))
            qkv = linear(h + "attn.qkv", a)  # [B, T, 3C]
            att, caches[h + "attn"] = ops.attention_forward(qkv, cfg.n_head)  # [B, T, C]
            trace.append((h + "attn output", att))
            x = x + linear(h + "attn.proj", att)  # [B, T, C]
            trace.append((h + "residual1 output", x))
            m, caches[h + "ln2"] = ops.layernorm_forward(
                x, p[h + "ln2.w"], p[h + "ln2.b"], cfg.ln_eps
            )  # [B,T,C]
            trace.append((h + "ln2 output", m))
            f = linear(h + "mlp.fc", m)  # [B, T, 4C]
            g, caches[h + "gelu"] = ops.gelu_forward(f)  # [B, T, 4C]
            trace.append((h + "mlp.gelu output", g))
            x = x + linear(h + "mlp.proj", g)  # [B, T, C]
            trace.append((h + "residual2 output", x))
        xf, caches["lnf"] = ops.layernorm_forward(x, p["lnf.w"], p["lnf.b"], cfg.ln_eps)  # [B, T, C]
        trace.append(("lnf output", xf))
        logits = linear("lm_head", xf)  # [B, T, V]
        loss, caches["ce"] = ops.crossentropy_forward(logits, targets)
        return ForwardResult(loss=loss, caches=caches, trace=trace, logits=logits)

    def backward(
        self, p: dict[str, np.ndarray], fw: ForwardResult, dloss: float = 1.0
    ) -> dict[str, np.ndarray]:
        """Gradients of ``dloss * loss`` for every parameter, in the parameter dict's order."""
        cfg = self.cfg
        c = fw.caches
        B, T, _ = fw.logits.shape
        g: dict[str, np.ndarray] = {}

        def linear_back(name: str, dy: np.ndarray) -> np.ndarray:
            dx, g[name + ".w"], db = self._lin(name).backward(
                name, dy.reshape(B * T, -1), c[name]
            )  # dx [N, K]
            if db is not None:
                g[name + ".b"] = db
            return dx.reshape(B, T, -1)

        dlogits = ops.crossentropy_backward(dloss, c["ce"])  # [B, T, V]
        dxf = linear_back("lm_head", dlogits)  # [B, T, C]
        dx, g["lnf.w"], g["lnf.b"] = ops.layernorm_backward(dxf, c["lnf"])  # [B, T, C]
        for i in reversed(range(cfg.n_layer)):
            h = f"h.{i}."
            dg = linear_back(h + "mlp.proj", dx)  # [B, T, 4C]
            df = ops.gelu_backward(dg, c[h + "gelu"])  # [B, T, 4C]
            dm = linear_back(h + "mlp.fc", df)  # [B, T, C]
            dln2, g[h + "ln2.w"], g[h + "ln2.b"] = ops.layernorm_backward(dm, c[h + "ln2"])
            dx = dx + dln2  # residual
            datt = linear_back(h + "attn.proj", dx)  # [B, T, C]
            dqkv = ops.attention_backward(datt, c[h + "attn"])  # [B, T, 3C]
            da = linear_back(h + "attn.qkv", dqkv)  # [B, T, C]
            dln1, g[h + "ln1.w"], g[h + "ln1.b"] = ops.layernorm_backward(da, c[h + "ln1"])
            dx = dx + dln1  # residual
        g["wte"], g["wpe"] = ops.embedding_backward(dx, c["emb"])
        return {k: g[k] for k in p}

    def loss(self, p: dict[str, np.ndarray], idx: np.ndarray, targets: np.ndarray) -> float:
        return float(self.forward(p, idx, targets).loss)


def first_nonfinite(trace: list[tuple[str, np.ndarray]]) -> str | None:
    """Name of the first tensor of a forward ``trace`` holding a NaN or an infinity, or ``None``."""
    for name, t in trace:
        if not np.isfinite(t).all():
            return name
    return None


def n_params(p: dict[str, np.ndarray]) -> int:
    return int(sum(v.size for v in p.values()))
