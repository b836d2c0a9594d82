"""The encoder's operations: GELU (erf form) against libm, every forward/backward pair against central
finite differences in float64, masked attention against attention without padding, the packed batch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fp8ref.models import bert


def _numgrad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def test_gelu_is_the_erf_form_rounded_once() -> None:
    x = np.concatenate([np.linspace(-12, 12, 2001), [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0, 3e38, -3e38]])
    x32 = x.astype(np.float32)
    got, _ = bert.gelu_forward(x32)
    want = np.array([0.5 * float(v) * (1.0 + math.erf(float(v) / math.sqrt(2.0))) for v in x32], np.float32)
    assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), want.view(np.uint32))
    got64, _ = bert.gelu_forward(x)
    want64 = np.array([0.5 * v * (1.0 + math.erf(v * (1.0 / math.sqrt(2.0)))) for v in x])
    assert np.array_equal(got64, want64)


def test_gelu_matches_torch_exact_gelu() -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal(10_000).astype(np.float32) * 4
    ref = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    got, _ = bert.gelu_forward(x)
    assert np.abs(got - ref).max() <= 2 * np.finfo(np.float32).eps * max(1.0, float(np.abs(ref).max()))


def _scalar_check(fwd, args: list[np.ndarray], bwd, n_grads: int, seed: int = 0, rtol: float = 1e-6) -> None:
    rng = np.random.default_rng(seed)
    out, cache = fwd(*args)
    dout = rng.standard_normal(out.shape)
    grads = bwd(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for j in range(n_grads):
        num = _numgrad(lambda: float((fwd(*args)[0] * dout).sum()), args[j])
        np.testing.assert_allclose(grads[j], num, rtol=rtol, atol=1e-8)


def test_gradcheck_gelu() -> None:
    x = np.random.default_rng(2).standard_normal((3, 5)) * 2
    _scalar_check(bert.gelu_forward, [x], bert.gelu_backward, 1)


def test_gradcheck_attention_with_padding() -> None:
    rng = np.random.default_rng(3)
    B, T, C, H = 2, 4, 6, 2
    q, k, v = (rng.standard_normal((B, T, C)) for _ in range(3))
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    _scalar_check(
        lambda a, b, c: bert.attention_forward(a, b, c, mask, H), [q, k, v], bert.attention_backward, 3
    )
    _, cache = bert.attention_forward(q, k, v, mask, H)
    _, dk, dv = bert.attention_backward(rng.standard_normal((B, T, C)), cache)
    assert not dk[0, 3].any() and not dv[0, 3].any()  # a padded key gets no gradient


def test_gradcheck_packed_attention_and_pooling_and_norm() -> None:
    rng = np.random.default_rng(4)
    batch = bert.Batch(np.arange(9), np.array([2, 4, 3]))
    q, k, v = (rng.standard_normal((9, 4)) for _ in range(3))
    _scalar_check(
        lambda a, b, c: bert.packed_attention_forward(a, b, c, batch, 2),
        [q, k, v],
        bert.packed_attention_backward,
        3,
    )
    x = rng.standard_normal((9, 4))
    _scalar_check(lambda a: bert.mean_pool_forward(a, batch.lengths), [x], bert.mean_pool_backward, 1)
    e = rng.standard_normal((3, 4))
    _scalar_check(bert.l2norm_forward, [e], bert.l2norm_backward, 1)


def test_gradcheck_embedding() -> None:
    rng = np.random.default_rng(5)
    word, pos, typ = rng.standard_normal((7, 3)), rng.standard_normal((5, 3)), rng.standard_normal((2, 3))
    ids, positions = np.array([1, 4, 4, 2, 6]), np.array([0, 1, 2, 0, 1])
    _scalar_check(
        lambda w, p, t: bert.embedding_forward(ids, positions, w, p, t),
        [word, pos, typ],
        bert.embedding_backward,
        3,
    )


def test_masked_attention_equals_attention_of_each_sentence_alone() -> None:
    rng = np.random.default_rng(6)
    lengths = np.array([3, 7, 1, 5])
    batch = bert.Batch(np.zeros(lengths.sum(), np.int64), lengths)
    q, k, v = (rng.standard_normal((int(lengths.sum()), 8)) for _ in range(3))
    y, _ = bert.packed_attention_forward(q, k, v, batch, 2)
    for s, n in zip(batch.starts, lengths, strict=True):
        rows = slice(s, s + n)
        alone, _ = bert.attention_forward(
            q[rows][None], k[rows][None], v[rows][None], np.ones((1, n), bool), 2
        )
        np.testing.assert_allclose(y[rows], alone[0], rtol=1e-12, atol=1e-12)


def test_attention_chunks_bound_the_score_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    lengths = np.array([5, 2, 6, 6, 1, 3])
    batch = bert.Batch(np.zeros(lengths.sum(), np.int64), lengths)
    q, k, v = (rng.standard_normal((int(lengths.sum()), 4)) for _ in range(3))
    whole, _ = bert.packed_attention_forward(q, k, v, batch, 2)
    monkeypatch.setattr(bert, "ATTENTION_CHUNK", 2 * 6 * 6)
    chunked, cache = bert.packed_attention_forward(q, k, v, batch, 2)
    assert len(cache) > 1
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)


def test_batch_layout_and_split() -> None:
    b = bert.Batch(np.array([101, 5, 102, 101, 7, 8, 102, 101, 102]), np.array([3, 4, 2]))
    assert b.starts.tolist() == [0, 3, 7]
    assert b.positions.tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 1]
    ids, mask = b.padded()
    assert ids.tolist() == [[101, 5, 102, 0], [101, 7, 8, 102], [101, 102, 0, 0]]
    assert mask.sum(axis=1).tolist() == [3, 4, 2]
    parts = b.split(5)
    assert [p.lengths.tolist() for p in parts] == [[3], [4], [2]]
    assert [p.lengths.tolist() for p in b.split(7)] == [[3, 4], [2]]
    assert [p.lengths.tolist() for p in b.split(2)] == [[3], [4], [2]]  # a longer sentence goes alone
    assert np.concatenate([p.ids for p in b.split(5)]).tolist() == b.ids.tolist()
    with pytest.raises(ValueError, match="add up"):
        bert.Batch(np.arange(4), np.array([2, 3]))
    with pytest.raises(ValueError, match=">= 1"):
        bert.Batch(np.arange(2), np.array([2, 0]))


def test_config_refuses_what_the_forward_pass_does_not_implement() -> None:
    good = {
        "vocab_size": 10,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "max_position_embeddings": 8,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
    }
    assert bert.BertConfig.from_dict(good).head_size == 4
    for bad, msg in [
        ({"hidden_act": "gelu_new"}, "hidden_act"),
        ({"model_type": "roberta"}, "model_type"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"num_attention_heads": 3}, "multiple"),
        ({"hidden_size": 0}, "positive"),
        ({"layer_norm_eps": 1}, "layer_norm_eps"),
    ]:
        with pytest.raises(ValueError, match=msg):
            bert.BertConfig.from_dict({**good, **bad})
    with pytest.raises(ValueError, match="missing field 'vocab_size'"):
        bert.BertConfig.from_dict({k: v for k, v in good.items() if k != "vocab_size"})
