"""Float64 gradient checks against central finite differences, op by op and for the whole model."""

from __future__ import annotations

import numpy as np
import pytest

from fp8ref.nn import ops
from fp8ref.nn.model import GPTConfig, Model, init_params

H = 1e-6


def numgrad(f, x: np.ndarray) -> np.ndarray:
    """Central differences of the scalar function f() with respect to the array x (modified in place)."""
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        fp = f()
        flat[i] = old - H
        fm = f()
        flat[i] = old
        gf[i] = (fp - fm) / (2 * H)
    return g


def assert_close(analytic: np.ndarray, numeric: np.ndarray, tol: float = 1e-6) -> None:
    scale = max(1.0, float(np.abs(numeric).max()))
    err = float(np.abs(analytic - numeric).max()) / scale
    assert err < tol, f"max relative error {err:.3e}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_layernorm(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 5))
    w, b = rng.standard_normal(5), rng.standard_normal(5)
    r = rng.standard_normal((2, 3, 5))  # loss = sum(out * r)

    def f() -> float:
        return float((ops.layernorm_forward(x, w, b)[0] * r).sum())

    out, cache = ops.layernorm_forward(x, w, b)
    dx, dw, db = ops.layernorm_backward(r, cache)
    assert_close(dx, numgrad(f, x))
    assert_close(dw, numgrad(f, w))
    assert_close(db, numgrad(f, b))


def test_linear(rng: np.random.Generator) -> None:
    x, w, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    r = rng.standard_normal((6, 3))

    def f() -> float:
        return float((ops.linear_forward(x, w, b)[0] * r).sum())

    _, cache = ops.linear_forward(x, w, b)
    dx, dw, db = ops.linear_backward(r, cache)
    assert_close(dx, numgrad(f, x))
    assert_close(dw, numgrad(f, w))
    assert_close(db, numgrad(f, b))
    _, cache = ops.linear_forward(x, w, None)
    assert ops.linear_backward(r, cache)[2] is None


def test_gelu(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 7)) * 2
    r = rng.standard_normal((3, 7))

    def f() -> float:
        return float((ops.gelu_forward(x)[0] * r).sum())

    _, cache = ops.gelu_forward(x)
    assert_close(ops.gelu_backward(r, cache), numgrad(f, x))


def test_attention(rng: np.random.Generator) -> None:
    B, T, C, nh = 2, 4, 6, 2
    qkv = rng.standard_normal((B, T, 3 * C))
    r = rng.standard_normal((B, T, C))

    def f() -> float:
        return float((ops.attention_forward(qkv, nh)[0] * r).sum())

    _, cache = ops.attention_forward(qkv, nh)
    assert_close(ops.attention_backward(r, cache), numgrad(f, qkv))


def test_attention_is_causal(rng: np.random.Generator) -> None:
    B, T, C = 1, 5, 4
    qkv = rng.standard_normal((B, T, 3 * C))
    y0 = ops.attention_forward(qkv, 2)[0]
    qkv2 = qkv.copy()
    qkv2[:, 3:] += 10.0  # change the future: outputs at t < 3 must not move
    y1 = ops.attention_forward(qkv2, 2)[0]
    np.testing.assert_array_equal(y0[:, :3], y1[:, :3])
    assert not np.array_equal(y0[:, 3:], y1[:, 3:])


def test_crossentropy(rng: np.random.Generator) -> None:
    logits = rng.standard_normal((2, 3, 5))
    tg = rng.integers(0, 5, (2, 3))

    def f() -> float:
        return float(ops.crossentropy_forward(logits, tg)[0])

    loss, cache = ops.crossentropy_forward(logits, tg)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ref = -np.log(np.take_along_axis(p, tg[..., None], -1)).mean()
    assert abs(loss - ref) < 1e-12
    assert_close(ops.crossentropy_backward(1.0, cache), numgrad(f, logits))
    np.testing.assert_allclose(
        ops.crossentropy_backward(3.0, cache), 3 * ops.crossentropy_backward(1.0, cache)
    )


def test_embedding(rng: np.random.Generator) -> None:
    wte, wpe = rng.standard_normal((5, 3)), rng.standard_normal((6, 3))
    idx = np.array([[0, 1, 1, 4], [4, 4, 2, 0]])
    r = rng.standard_normal((2, 4, 3))

    def f() -> float:
        return float((ops.embedding_forward(idx, wte, wpe)[0] * r).sum())

    _, cache = ops.embedding_forward(idx, wte, wpe)
    dwte, dwpe = ops.embedding_backward(r, cache)
    assert_close(dwte, numgrad(f, wte))
    assert_close(dwpe, numgrad(f, wpe))
    assert np.all(dwpe[4:] == 0)  # positions beyond T get no gradient


def test_whole_model(rng: np.random.Generator) -> None:
    cfg = GPTConfig(vocab_size=7, block_size=5, n_layer=2, n_head=2, n_embd=8)
    p = init_params(cfg, 0, np.float64)
    for k in p:  # move away from the symmetric initialisation (LayerNorm 1/0, zero biases)
        p[k] += rng.standard_normal(p[k].shape) * 0.1
    idx, tg = rng.integers(0, 7, (2, 5)), rng.integers(0, 7, (2, 5))
    model = Model(cfg)
    fw = model.forward(p, idx, tg)
    grads = model.backward(p, fw)
    assert list(grads) == list(p)
    for name in p:
        assert_close(grads[name], numgrad(lambda: model.loss(p, idx, tg), p[name]), tol=1e-6)


def test_model_dtype_stays_float32() -> None:
    cfg = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4)
    p = init_params(cfg, 0)
    idx = np.zeros((2, 4), dtype=np.int64)
    model = Model(cfg)
    fw = model.forward(p, idx, idx)
    assert fw.logits.dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.backward(p, fw).values())


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=5, n_embd=6, n_head=4)
    with pytest.raises(ValueError, match="n_layer"):
        GPTConfig(vocab_size=5, n_layer=0)
