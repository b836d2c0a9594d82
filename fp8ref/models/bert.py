"""A BERT encoder in NumPy (the architecture of all-MiniLM-L6-v2), with pluggable linear layers.

The model (docs/models.md §3 is the full specification)::

    x = LayerNorm(word[id] + type[0] + pos[t])                          # embeddings, [N, C]
    for each of the L layers (post-LayerNorm):
        q, k, v = query(x), key(x), value(x)                            # three linear layers, [N, C]
        a = attention(q, k, v)                                          # bidirectional, per sentence
        x = LayerNorm(x + attn_out(a))
        x = LayerNorm(x + mlp_out(gelu_erf(mlp_in(x))))                # [N, C] -> [N, 4C] -> [N, C]
    e = mean of x over each sentence's tokens; e = e / max(||e||, 1e-12)  # [B, C]

Tokens travel *packed*: the ``N`` tokens of a batch's ``B`` sentences, sentence after sentence, with no
padding; a linear layer therefore sees exactly the real tokens (an FP8 tensor's amax never includes
padding). Only attention pads: it scatters q, k, v into ``[B, T, C]`` with ``T`` the longest sentence, masks
the padded keys with ``-inf`` (their weights are exactly 0) and gathers the real rows back. Mean pooling over
the packed rows of a sentence is mean pooling over its attention mask.

Every operation is a pair ``<op>_forward(...) -> (out, cache)`` / ``<op>_backward(dout, cache)`` as in
:mod:`fp8ref.nn.ops` (whose ``layernorm_forward`` / ``layernorm_backward`` this module reuses); the
functions are dtype-generic (float32 here, float64 in the gradient checks). Every linear layer goes through a
*linear executor* (``forward(name, x, w, b) -> (y, cache)``): :class:`fp8ref.nn.model.FP32Linear` for the
float32 model, :class:`fp8ref.nn.fp8.FP8Linear` for the paper's FP8 layers -- the trainer's own.

Shapes: ``N`` packed tokens, ``B`` sentences, ``T`` longest sentence, ``C`` hidden size, ``H`` heads,
``hs = C / H``, ``F`` intermediate size, ``V`` vocabulary, ``P`` positions.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fp8ref.nn import ops as nn_ops

#: the six linear layers of a BERT layer, in forward order: kind -> (Hugging Face module, has bias)
LINEAR_KINDS: dict[str, str] = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "mlp_in": "intermediate.dense",
    "mlp_out": "output.dense",
}
#: the largest padded attention score tensor (B * H * T * T elements) computed at once
ATTENTION_CHUNK = 1 << 23


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face ``BertModel`` ``config.json`` that the forward pass uses."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"config: {name} must be a positive integer, got {v!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"config: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if not (isinstance(self.layer_norm_eps, float) and 0 < self.layer_norm_eps < 1):
            raise ValueError(f"config: layer_norm_eps must be a float in (0, 1), got {self.layer_norm_eps!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BertConfig:
        """From a parsed ``config.json``; refuses what this forward pass does not implement."""
        if not isinstance(d, dict):
            raise ValueError("config: expected a JSON object")
        if d.get("model_type", "bert") != "bert":
            raise ValueError(f"config: model_type {d.get('model_type')!r} is not 'bert'")
        if d.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"config: hidden_act {d.get('hidden_act')!r} is not 'gelu' (the erf form)")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(
                f"config: position_embedding_type {d.get('position_embedding_type')!r} is not 'absolute'"
            )
        try:
            kw = {f: d[f] for f in cls.__dataclass_fields__}
        except KeyError as exc:
            raise ValueError(f"config: missing field {exc.args[0]!r}") from None
        return cls(**kw)

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def linear_layers(self) -> list[tuple[str, str]]:
        """Every linear layer as ``(name, kind)`` in forward order, e.g. ``("L0.query", "query")``."""
        return [(f"L{i}.{kind}", kind) for i in range(self.num_hidden_layers) for kind in LINEAR_KINDS]

    def hf_shapes(self) -> dict[str, tuple[int, ...]]:
        """The float32 tensors of the checkpoint the model needs, by Hugging Face name, with their shapes
        (linear weights ``[out, in]``)."""
        C, F = self.hidden_size, self.intermediate_size
        s: dict[str, tuple[int, ...]] = {
            "embeddings.word_embeddings.weight": (self.vocab_size, C),
            "embeddings.position_embeddings.weight": (self.max_position_embeddings, C),
            "embeddings.token_type_embeddings.weight": (self.type_vocab_size, C),
            "embeddings.LayerNorm.weight": (C,),
            "embeddings.LayerNorm.bias": (C,),
        }
        dims = {
            "query": (C, C),
            "key": (C, C),
            "value": (C, C),
            "attn_out": (C, C),
            "mlp_in": (F, C),
            "mlp_out": (C, F),
        }
        for i in range(self.num_hidden_layers):
            pre = f"encoder.layer.{i}."
            for kind, mod in LINEAR_KINDS.items():
                s[pre + mod + ".weight"] = dims[kind]
                s[pre + mod + ".bias"] = (dims[kind][0],)
            for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
                s[pre + ln + ".weight"] = (C,)
                s[pre + ln + ".bias"] = (C,)
        return s


def params_from_hf(tensors: dict[str, np.ndarray], cfg: BertConfig) -> dict[str, np.ndarray]:
    """The parameter dict of :class:`BertEncoder` from checkpoint tensors (already checked against
    :meth:`BertConfig.hf_shapes`). Linear weights become contiguous ``[in, out]`` float32 arrays (the
    trainer's ``y = x @ w`` orientation); LayerNorms are ``ln0`` (embeddings), ``L<i>.ln1`` (after attention),
    ``L<i>.ln2`` (after the MLP)."""
    f32 = functools.partial(np.ascontiguousarray, dtype=np.float32)
    p = {
        "word": f32(tensors["embeddings.word_embeddings.weight"]),
        "pos": f32(tensors["embeddings.position_embeddings.weight"]),
        "type": f32(tensors["embeddings.token_type_embeddings.weight"]),
        "ln0.w": f32(tensors["embeddings.LayerNorm.weight"]),
        "ln0.b": f32(tensors["embeddings.LayerNorm.bias"]),
    }
    for i in range(cfg.num_hidden_layers):
        pre = f"encoder.layer.{i}."
        for kind, mod in LINEAR_KINDS.items():
            p[f"L{i}.{kind}.w"] = f32(tensors[pre + mod + ".weight"].T)
            p[f"L{i}.{kind}.b"] = f32(tensors[pre + mod + ".bias"])
        for ln, mod in (("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")):
            p[f"L{i}.{ln}.w"] = f32(tensors[pre + mod + ".weight"])
            p[f"L{i}.{ln}.b"] = f32(tensors[pre + mod + ".bias"])
    return p


# ---- the packed batch ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Batch:
    """``B`` tokenised sentences, packed: ``ids`` [N] token ids sentence after sentence, ``lengths`` [B]
    tokens per sentence (each >= 1, special tokens included)."""

    ids: np.ndarray
    lengths: np.ndarray

    def __post_init__(self) -> None:
        ids, lengths = np.asarray(self.ids), np.asarray(self.lengths)
        if ids.ndim != 1 or lengths.ndim != 1 or lengths.size == 0:
            raise ValueError("Batch: ids and lengths must be 1-D, with at least one sentence")
        if (lengths < 1).any() or int(lengths.sum()) != ids.size:
            raise ValueError(
                f"Batch: lengths (sum {int(lengths.sum())}) must be >= 1 and add up to the {ids.size} ids"
            )
        object.__setattr__(self, "ids", ids.astype(np.int64, copy=False))
        object.__setattr__(self, "lengths", lengths.astype(np.int64, copy=False))

    @property
    def n_tokens(self) -> int:
        return int(self.ids.size)

    @property
    def n_sentences(self) -> int:
        return int(self.lengths.size)

    @property
    def starts(self) -> np.ndarray:
        """[B] index of each sentence's first token."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    @property
    def positions(self) -> np.ndarray:
        """[N] position of each token within its sentence (0 for [CLS])."""
        return np.arange(self.n_tokens) - np.repeat(self.starts, self.lengths)

    def mask(self) -> np.ndarray:
        """[B, T] bool attention mask of the padded layout (True = a real token)."""
        return np.arange(int(self.lengths.max()))[None, :] < self.lengths[:, None]

    def padded(self, ids_pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(ids [B, T], mask [B, T])``: the padded layout (pad id ``ids_pad``), as BERT takes it."""
        m = self.mask()
        out = np.full(m.shape, ids_pad, dtype=np.int64)
        out[m] = self.ids
        return out, m.astype(np.int64)

    def split(self, max_tokens: int) -> list[Batch]:
        """Consecutive sub-batches of at most ``max_tokens`` tokens each (a longer sentence goes alone)."""
        out, first, total = [], 0, 0
        for i, n in enumerate(self.lengths.tolist()):
            if i > first and total + n > max_tokens:
                out.append(self._slice(first, i))
                first, total = i, 0
            total += n
        out.append(self._slice(first, self.n_sentences))
        return out

    def _slice(self, a: int, b: int) -> Batch:
        s = self.starts
        lo = int(s[a])
        hi = int(s[b]) if b < self.n_sentences else self.n_tokens
        return Batch(self.ids[lo:hi], self.lengths[a:b])


# ---- embeddings --------------------------------------------------------------------------------------
def embedding_forward(
    ids: np.ndarray, positions: np.ndarray, word: np.ndarray, pos: np.ndarray, typ: np.ndarray
) -> tuple[np.ndarray, tuple]:
    """ids, positions [N] int -> ``(word[ids] + typ[0]) + pos[positions]`` [N, C] (Hugging Face's order of
    the two float32 additions; every token has token type 0)."""
    out = word[ids] + typ[0]  # [N, C]
    out = out + pos[positions]
    return out, (ids, positions, word.shape, pos.shape, typ.shape)


def embedding_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout [N, C] -> (dword [V, C], dpos [P, C], dtype [2, C]); rows summed in token order (np.add.at)."""
    ids, positions, ws, ps, ts = cache
    dword = np.zeros(ws, dout.dtype)
    np.add.at(dword, ids, dout)
    dpos = np.zeros(ps, dout.dtype)
    np.add.at(dpos, positions, dout)
    dtyp = np.zeros(ts, dout.dtype)
    dtyp[0] = dout.sum(axis=0)
    return dword, dpos, dtyp


# ---- GELU, erf form (BERT's "gelu") ----------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _gelu_kernels() -> tuple[Any, Any]:
    from numba import njit

    sqrt1_2 = 1.0 / math.sqrt(2.0)
    inv_sqrt_2pi = 1.0 / math.sqrt(2.0 * math.pi)

    @njit(cache=True, nogil=True)
    def fwd(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
        for i in range(x.size):
            v = np.float64(x[i])
            out[i] = 0.5 * v * (1.0 + math.erf(v * sqrt1_2))

    @njit(cache=True, nogil=True)
    def bwd(x: np.ndarray, dout: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
        for i in range(x.size):
            v = np.float64(x[i])
            cdf = 0.5 * (1.0 + math.erf(v * sqrt1_2))
            out[i] = np.float64(dout[i]) * (cdf + v * inv_sqrt_2pi * math.exp(-0.5 * v * v))

    return fwd, bwd


def gelu_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """x [...] -> ``0.5 x (1 + erf(x / sqrt 2))``, computed in float64 per element (libm ``erf``) and
    rounded once to x's dtype."""
    fwd, _ = _gelu_kernels()
    xc = np.ascontiguousarray(x)
    out = np.empty_like(xc)
    fwd(xc.reshape(-1), out.reshape(-1))
    return out, (xc,)


def gelu_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dout [...] -> dx = dout * (Phi(x) + x phi(x)), Phi / phi the standard normal cdf / density."""
    _, bwd = _gelu_kernels()
    (x,) = cache
    d = np.ascontiguousarray(dout, dtype=x.dtype)
    out = np.empty_like(x)
    bwd(x.reshape(-1), d.reshape(-1), out.reshape(-1))
    return out


# ---- bidirectional multi-head attention over padded sentences ------------------------------------------
def attention_forward(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, n_head: int
) -> tuple[np.ndarray, tuple]:
    """q, k, v [B, T, C], mask [B, T] bool (True = a real token) -> y [B, T, C].

    Per head: ``softmax(q k^T / sqrt(hs))`` over the keys with the padded keys set to ``-inf`` (weight
    exactly 0; the row maximum is subtracted first), times ``v``. Padded query rows are computed too and
    mean nothing."""
    B, T, C = q.shape
    hs = C // n_head
    qh, kh, vh = (t.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3) for t in (q, k, v))  # [B, H, T, hs]
    scale = 1.0 / math.sqrt(hs)
    pre = (qh @ kh.transpose(0, 1, 3, 2)) * scale  # [B, H, T, T]
    pre = np.where(mask[:, None, None, :], pre, -np.inf)
    pre = pre - pre.max(axis=-1, keepdims=True)
    att = np.exp(pre)
    att /= att.sum(axis=-1, keepdims=True)  # [B, H, T, T]
    y = (att @ vh).transpose(0, 2, 1, 3).reshape(B, T, C)  # [B, T, C]
    return y, (qh, kh, vh, att, scale)


def attention_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout [B, T, C] -> (dq, dk, dv) [B, T, C]; padded keys get zero gradient."""
    qh, kh, vh, att, scale = cache
    B, H, T, hs = qh.shape
    dy = dout.reshape(B, T, H, hs).transpose(0, 2, 1, 3)  # [B, H, T, hs]
    datt = dy @ vh.transpose(0, 1, 3, 2)  # [B, H, T, T]
    dv = att.transpose(0, 1, 3, 2) @ dy
    dpre = att * (datt - (datt * att).sum(axis=-1, keepdims=True)) * scale
    dq = dpre @ kh
    dk = dpre.transpose(0, 1, 3, 2) @ qh
    return tuple(t.transpose(0, 2, 1, 3).reshape(B, T, H * hs) for t in (dq, dk, dv))  # type: ignore


def packed_attention_forward(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, batch: Batch, n_head: int
) -> tuple[np.ndarray, tuple]:
    """q, k, v [N, C] packed -> y [N, C]: :func:`attention_forward` on the padded layout, in chunks of
    consecutive sentences whose score tensor stays under :data:`ATTENTION_CHUNK` elements."""
    C = q.shape[1]
    y = np.empty_like(q)
    caches = []
    for part, lo in _chunks(batch, n_head):
        m = part.mask()
        rows = slice(lo, lo + part.n_tokens)
        pads = [np.zeros(m.shape + (C,), q.dtype) for _ in range(3)]
        for pad, t in zip(pads, (q, k, v), strict=True):
            pad[m] = t[rows]
        out, c = attention_forward(*pads, m, n_head)
        y[rows] = out[m]
        caches.append((rows, m, c))
    return y, tuple(caches)


def packed_attention_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout [N, C] -> (dq, dk, dv) [N, C]."""
    grads = [np.zeros_like(dout) for _ in range(3)]
    for rows, m, c in cache:
        d = np.zeros(m.shape + (dout.shape[1],), dout.dtype)
        d[m] = dout[rows]
        for g, t in zip(grads, attention_backward(d, c), strict=True):
            g[rows] = t[m]
    return grads[0], grads[1], grads[2]


def _chunks(batch: Batch, n_head: int) -> list[tuple[Batch, int]]:
    out, first = [], 0
    starts = batch.starts
    lengths = batch.lengths.tolist()
    while first < batch.n_sentences:
        last, t = first, 0
        while last < batch.n_sentences:
            t2 = max(t, lengths[last])
            if last > first and (last + 1 - first) * n_head * t2 * t2 > ATTENTION_CHUNK:
                break
            t, last = t2, last + 1
        out.append((batch._slice(first, last), int(starts[first])))
        first = last
    return out


# ---- pooling and normalisation -------------------------------------------------------------------------
def mean_pool_forward(x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, tuple]:
    """x [N, C] packed, lengths [B] -> [B, C]: each sentence's token rows summed in order, divided by its
    token count (sentence-transformers' mean over the attention mask)."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    sums = np.add.reduceat(x, starts, axis=0)  # [B, C]
    return sums / lengths[:, None].astype(x.dtype), (lengths,)


def mean_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dout [B, C] -> dx [N, C]."""
    (lengths,) = cache
    return np.repeat(dout / lengths[:, None].astype(dout.dtype), lengths, axis=0)


def l2norm_forward(e: np.ndarray, eps: float = 1e-12) -> tuple[np.ndarray, tuple]:
    """e [B, C] -> e / max(||e||_2, eps) row by row (torch.nn.functional.normalize)."""
    n = np.sqrt((e * e).sum(axis=-1, keepdims=True))  # [B, 1]
    d = np.maximum(n, eps)
    out = e / d
    return out, (out, d, n > eps)


def l2norm_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dout [B, C] -> de [B, C] = (dout - out <out, dout>) / ||e|| (rows with ||e|| <= eps: dout / eps)."""
    out, d, big = cache
    return np.where(big, dout - out * (out * dout).sum(axis=-1, keepdims=True), dout) / d


# ---- the encoder ---------------------------------------------------------------------------------------
@dataclass
class EncoderOutput:
    """``embeddings`` [B, C] (L2-normalised), ``pooled`` [B, C] (before normalising) and, when asked for,
    ``hidden``: the packed [N, C] hidden state after the embeddings and after each layer."""

    embeddings: np.ndarray
    pooled: np.ndarray
    hidden: list[np.ndarray]


class BertEncoder:
    """Forward pass of the encoder over a parameter dict (:func:`params_from_hf`).

    ``linears`` maps a linear layer's name (``"L0.query"``, ...; :meth:`BertConfig.linear_layers`) to its
    executor; the others use ``default_linear`` (float32). The encoder holds no parameters.
    """

    def __init__(
        self, cfg: BertConfig, linears: dict[str, Any] | None = None, default_linear: Any = None
    ) -> None:
        from fp8ref.nn.model import FP32Linear

        self.cfg = cfg
        self.linears = dict(linears or {})
        self.default_linear = default_linear if default_linear is not None else FP32Linear()

    def forward(self, p: dict[str, np.ndarray], batch: Batch, *, keep_hidden: bool = False) -> EncoderOutput:
        cfg = self.cfg
        eps = float(cfg.layer_norm_eps)
        if int(batch.lengths.max()) > cfg.max_position_embeddings:
            raise ValueError(
                f"a sentence of {int(batch.lengths.max())} tokens exceeds the model's "
                f"{cfg.max_position_embeddings} positions"
            )
        if batch.n_tokens and (int(batch.ids.min()) < 0 or int(batch.ids.max()) >= cfg.vocab_size):
            raise ValueError(f"token ids must lie in [0, {cfg.vocab_size})")

        def linear(name: str, x: np.ndarray) -> np.ndarray:
            ex = self.linears.get(name, self.default_linear)
            y, _ = ex.forward(name, x, p[name + ".w"], p[name + ".b"])  # [N, M]
            return y

        e, _ = embedding_forward(batch.ids, batch.positions, p["word"], p["pos"], p["type"])  # [N, C]
        x, _ = nn_ops.layernorm_forward(e, p["ln0.w"], p["ln0.b"], eps)  # [N, C]
        hidden = [x] if keep_hidden else []
        for i in range(cfg.num_hidden_layers):
            h = f"L{i}."
            q, k, v = (linear(h + kind, x) for kind in ("query", "key", "value"))  # [N, C] each
            a, _ = packed_attention_forward(q, k, v, batch, cfg.num_attention_heads)  # [N, C]
            x, _ = nn_ops.layernorm_forward(
                x + linear(h + "attn_out", a), p[h + "ln1.w"], p[h + "ln1.b"], eps
            )
            f = linear(h + "mlp_in", x)  # [N, F]
            g, _ = gelu_forward(f)
            x, _ = nn_ops.layernorm_forward(x + linear(h + "mlp_out", g), p[h + "ln2.w"], p[h + "ln2.b"], eps)
            if keep_hidden:
                hidden.append(x)
        pooled, _ = mean_pool_forward(x, batch.lengths)  # [B, C]
        emb, _ = l2norm_forward(pooled)
        return EncoderOutput(embeddings=emb, pooled=pooled, hidden=hidden)


__all__ = [
    "LINEAR_KINDS",
    "BertConfig",
    "params_from_hf",
    "Batch",
    "BertEncoder",
    "EncoderOutput",
    "embedding_forward",
    "embedding_backward",
    "gelu_forward",
    "gelu_backward",
    "attention_forward",
    "attention_backward",
    "packed_attention_forward",
    "packed_attention_backward",
    "mean_pool_forward",
    "mean_pool_backward",
    "l2norm_forward",
    "l2norm_backward",
]
