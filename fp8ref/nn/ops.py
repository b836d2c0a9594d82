"""Forward/backward pairs of the GPT's operations (llm.c style), in NumPy.

Every op is a pair of free functions: ``<op>_forward(...) -> (out, cache)`` and
``<op>_backward(dout, cache) -> grads``. The forward keeps in ``cache`` exactly what its backward needs.
Functions are dtype-generic: float32 in training, float64 in the finite-difference gradient checks
(constants are Python floats, which NumPy treats as "weak" scalars, so they never widen float32).

Shapes: ``B`` batch, ``T`` time (sequence), ``C`` channels, ``H`` heads, ``hs = C / H`` head size,
``V`` vocabulary, ``N = B * T`` rows of a 2-D view, ``K`` / ``M`` a linear layer's input / output width.
"""

from __future__ import annotations

import math

import numpy as np

_GELU_S = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


# ---- embedding ------------------------------------------------------------------------------------
def embedding_forward(idx: np.ndarray, wte: np.ndarray, wpe: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Token plus learned position embedding. idx [B, T] int, wte [V, C], wpe [maxT, C] -> [B, T, C]."""
    T = idx.shape[1]
    out = wte[idx] + wpe[:T][None, :, :]  # [B, T, C]
    return out, (idx, wte.shape, wpe.shape)


def embedding_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray]:
    """dout [B, T, C] -> (dwte [V, C], dwpe [maxT, C]). Rows are summed in a fixed order (np.add.at)."""
    idx, wte_shape, wpe_shape = cache
    T = idx.shape[1]
    dwte = np.zeros(wte_shape, dtype=dout.dtype)
    np.add.at(dwte, idx.reshape(-1), dout.reshape(-1, dout.shape[-1]))  # [V, C]
    dwpe = np.zeros(wpe_shape, dtype=dout.dtype)
    dwpe[:T] = dout.sum(axis=0)  # [T, C]
    return dwte, dwpe


# ---- layer norm ---------------------------------------------------------------------------------------
def layernorm_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, tuple]:
    """x [..., C], w [C], b [C] -> [..., C]; normalises over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)  # [..., 1]
    xc = x - mean  # [..., C]
    var = (xc * xc).mean(axis=-1, keepdims=True)  # [..., 1]
    rstd = 1.0 / np.sqrt(var + eps)  # [..., 1]
    xhat = xc * rstd  # [..., C]
    return xhat * w + b, (xhat, rstd, w)


def layernorm_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout [..., C] -> (dx [..., C], dw [C], db [C])."""
    xhat, rstd, w = cache
    C = dout.shape[-1]
    dw = (dout * xhat).reshape(-1, C).sum(axis=0)  # [C]
    db = dout.reshape(-1, C).sum(axis=0)  # [C]
    dxhat = dout * w  # [..., C]
    dx = rstd * (
        dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
    )  # [..., C]
    return dx, dw, db


# ---- linear (higher precision) ---------------------------------------------------------------------
def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, tuple]:
    """x [N, K], w [K, M], b [M] or None -> y [N, M] = x @ w + b."""
    y = x @ w  # [N, M]
    if b is not None:
        y = y + b
    return y, (x, w, b is not None)


def linear_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dy [N, M] -> (dx [N, K] = dy @ w^T, dw [K, M] = x^T @ dy, db [M] = sum_rows dy or None)."""
    x, w, has_bias = cache
    dx = dy @ w.T  # [N, K]
    dw = x.T @ dy  # [K, M]
    db = dy.sum(axis=0) if has_bias else None  # [M]
    return dx, dw, db


# ---- GELU (tanh approximation, as GPT-2) ----------------------------------------------------------
def gelu_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """x [...] -> 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), same shape."""
    t = np.tanh(_GELU_S * (x + _GELU_C * x * x * x))
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dout [...] -> dx [...]."""
    x, t = cache
    du = _GELU_S * (1.0 + 3.0 * _GELU_C * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


# ---- causal multi-head self-attention (the part after the QKV projection) --------------------------
def attention_forward(qkv: np.ndarray, n_head: int) -> tuple[np.ndarray, tuple]:
    """qkv [B, T, 3C] (q | k | v along the last axis) -> y [B, T, C]; causal softmax(q k^T / sqrt(hs)) v."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    q, k, v = (
        qkv[:, :, i * C : (i + 1) * C].reshape(B, T, n_head, hs).transpose(0, 2, 1, 3) for i in range(3)
    )  # each [B, H, T, hs]
    scale = 1.0 / math.sqrt(hs)
    pre = (q @ k.transpose(0, 1, 3, 2)) * scale  # [B, H, T, T]
    mask = np.tri(T, dtype=bool)  # [T, T], True on and below the diagonal
    pre = np.where(mask, pre, -np.inf)
    pre = pre - pre.max(axis=-1, keepdims=True)
    att = np.exp(pre)
    att /= att.sum(axis=-1, keepdims=True)  # [B, H, T, T]
    y = att @ v  # [B, H, T, hs]
    out = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # [B, T, C]
    return out, (q, k, v, att, scale)


def attention_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dout [B, T, C] -> dqkv [B, T, 3C]."""
    q, k, v, att, scale = cache
    B, H, T, hs = q.shape
    dy = dout.reshape(B, T, H, hs).transpose(0, 2, 1, 3)  # [B, H, T, hs]
    datt = dy @ v.transpose(0, 1, 3, 2)  # [B, H, T, T]
    dv = att.transpose(0, 1, 3, 2) @ dy  # [B, H, T, hs]
    dpre = att * (datt - (datt * att).sum(axis=-1, keepdims=True))  # softmax backward; 0 where masked
    dpre *= scale
    dq = dpre @ k  # [B, H, T, hs]
    dk = dpre.transpose(0, 1, 3, 2) @ q  # [B, H, T, hs]
    dqkv = np.concatenate([t.transpose(0, 2, 1, 3).reshape(B, T, H * hs) for t in (dq, dk, dv)], axis=-1)
    return dqkv  # [B, T, 3C]


# ---- softmax cross-entropy ----------------------------------------------------------------------------
def crossentropy_forward(logits: np.ndarray, targets: np.ndarray) -> tuple[float, tuple]:
    """logits [B, T, V], targets [B, T] int -> mean over B*T of -log softmax(logits)[target] (a scalar)."""
    z = logits - logits.max(axis=-1, keepdims=True)  # [B, T, V]
    ez = np.exp(z)
    s = ez.sum(axis=-1, keepdims=True)  # [B, T, 1]
    probs = ez / s  # [B, T, V]
    logp_t = np.take_along_axis(z, targets[..., None], axis=-1)[..., 0] - np.log(s[..., 0])  # [B, T]
    loss = -logp_t.mean()
    return loss, (probs, targets)


def crossentropy_backward(dloss: float, cache: tuple) -> np.ndarray:
    """dloss (scalar) -> dlogits [B, T, V] = dloss * (softmax - onehot) / (B*T)."""
    probs, targets = cache
    B, T, _ = probs.shape
    dlogits = probs.copy()
    np.put_along_axis(
        dlogits, targets[..., None], np.take_along_axis(probs, targets[..., None], -1) - 1.0, -1
    )
    dlogits *= dloss / (B * T)
    return dlogits
