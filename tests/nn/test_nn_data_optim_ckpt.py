"""Data (Markov corpus with a known entropy rate), AdamW / schedule / clipping, and checkpoints."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from fp8ref.nn import checkpoint as ckpt
from fp8ref.nn.data import ALPHABET, MarkovSource, file_corpus, markov_corpus
from fp8ref.nn.optim import AdamW, AdamWConfig, Schedule, clip_grads, global_norm


# ---- data -----------------------------------------------------------------------------------------
def test_markov_corpus_is_deterministic_and_seeded() -> None:
    a, b, c = markov_corpus(0, 5000), markov_corpus(0, 5000), markov_corpus(1, 5000)
    assert a.sha256 == b.sha256 and a.sha256 != c.sha256
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.vocab == bytes(sorted(ALPHABET)) and a.vocab_size == 16


def test_entropy_rate_matches_the_sampled_corpus() -> None:
    """-mean log P(next | previous two) over the generated text estimates the entropy rate without bias."""
    src = MarkovSource(seed=0)
    text = np.frombuffer(src.generate(100_000), dtype=np.uint8)
    lut = np.zeros(256, dtype=np.int64)
    lut[np.frombuffer(src.alphabet, dtype=np.uint8)] = np.arange(len(src.alphabet))
    t = lut[text]
    P = src.transition()
    nll = -np.log(P[t[:-2], t[1:-1], t[2:]]).mean()
    assert abs(nll - src.entropy_rate()) < 0.02
    assert 0.5 < src.entropy_rate() < np.log(16)


def test_best_loss_interpolates_between_one_and_two_symbols_of_context() -> None:
    src = MarkovSource(seed=0)
    pi = src.stationary()
    np.testing.assert_allclose(pi.sum(axis=0), pi.sum(axis=1), atol=1e-12)  # stationary pair law
    h1 = src.best_loss(1)
    assert h1 > src.best_loss(8) > src.best_loss(64) > src.entropy_rate()
    assert src.best_loss(32) == pytest.approx((h1 + 31 * src.entropy_rate()) / 32)


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    d = markov_corpus(0, 20_000)
    x1, y1 = d.batch(0, 7, 4, 16)
    x2, y2 = d.batch(0, 7, 4, 16)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(x1[:, 1:], y1[:, :-1])  # targets are the next tokens
    assert not np.array_equal(d.batch(0, 8, 4, 16)[0], x1)
    assert not np.array_equal(d.batch(1, 7, 4, 16)[0], x1)
    xv, _ = d.batch(0, 0, 64, 16, split="val")
    assert xv.min() >= 0 and xv.shape == (64, 16)
    with pytest.raises(ValueError, match="split"):
        d.batch(0, 0, 1, 4, split="test")


def test_file_corpus(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_bytes(b"hello world, " * 200)
    d = file_corpus(p)
    assert d.vocab == bytes(sorted(set(b"hello world, ")))
    assert d.entropy_rate is None and d.best_loss(8) is None
    assert bytes(d.vocab[i] for i in d.tokens[:5]) == b"hello"
    with pytest.raises(ValueError, match="--data"):
        file_corpus(tmp_path / "missing.txt")
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(ValueError, match="at least 1000"):
        file_corpus(tmp_path / "short")


# ---- optimizer ---------------------------------------------------------------------------------------
def test_schedule_warmup_then_cosine() -> None:
    s = Schedule(lr=1.0, warmup=10, total=110, min_lr_ratio=0.1)
    assert s(0) == pytest.approx(0.1) and s(9) == pytest.approx(1.0)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55)  # halfway down the cosine
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
    assert all(s(i) >= s(i + 1) for i in range(10, 120))


def test_clipping_and_norm() -> None:
    g = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([[4.0]], np.float32)}
    n = global_norm(g)
    assert n == 5.0
    clip_grads(g, 1.0, n)
    assert global_norm(g) == pytest.approx(1.0, rel=1e-6)
    clip_grads(g, 10.0, 1.0)  # below the threshold: untouched
    assert global_norm(g) == pytest.approx(1.0, rel=1e-6)


def test_adamw_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p = {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    tw = torch.tensor(p["w"].copy(), requires_grad=True)
    tb = torch.tensor(p["b"].copy(), requires_grad=True)
    cfg = AdamWConfig(beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    opt = AdamW(p, cfg)
    topt = torch.optim.AdamW(
        [{"params": [tw], "weight_decay": 0.1}, {"params": [tb], "weight_decay": 0.0}],
        lr=1e-2,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    for _ in range(5):
        g = {
            "w": rng.standard_normal((3, 4)).astype(np.float32),
            "b": rng.standard_normal(4).astype(np.float32),
        }
        tw.grad, tb.grad = torch.tensor(g["w"]), torch.tensor(g["b"])
        topt.step()
        opt.step(p, g, 1e-2)
    np.testing.assert_allclose(p["w"], tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p["b"], tb.detach().numpy(), rtol=1e-5, atol=1e-6)


# ---- checkpoints ---------------------------------------------------------------------------------------
def _arrays() -> dict[str, np.ndarray]:
    return {"param.w": np.arange(12, dtype=np.float32).reshape(3, 4), "m.w": np.ones(3, np.float32)}


def test_checkpoint_round_trip_and_atomic_names(tmp_path: Path) -> None:
    path = ckpt.checkpoint_path(tmp_path / "c", 12)
    assert path.name == "step_0000012.npz"
    ckpt.save(path, _arrays(), {"step": 12})
    arrays, meta = ckpt.load(path)
    assert meta["step"] == 12 and meta["version"] == ckpt.VERSION
    for k, v in _arrays().items():
        np.testing.assert_array_equal(arrays[k], v)
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["step_0000012.npz"]  # no temp file left
    ckpt.save(ckpt.checkpoint_path(tmp_path / "c", 3), _arrays(), {"step": 3})
    assert ckpt.latest(tmp_path / "c") == path
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "c")] == [3, 12]
    assert ckpt.latest(tmp_path / "nothing") is None


def test_checkpoint_write_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "step_0000001.npz"
    ckpt.save(path, _arrays(), {"step": 1})
    before = path.read_bytes()

    def failing_savez(f, **arrays):  # noqa: ANN001, ANN003 - a disk that fills up half way
        f.write(b"PK\x03\x04partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt.np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space"):
        ckpt.save(path, _arrays(), {"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000001.npz"]  # temp file removed
    with pytest.raises(ValueError, match="Python objects"):
        ckpt.save(path, {"bad": np.array([object()], dtype=object)}, {"step": 2})
    assert ckpt.load(path)[1]["step"] == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_checkpoint_gives_a_clear_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "step_0000001.npz"
    ckpt.save(path, _arrays(), {"step": 1})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        i = data.find(np.arange(12, dtype=np.float32).tobytes())  # inside the stored param.w
        data[i + 5] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(b"not a zip file at all" * 10)
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match=str(path.name)):
        ckpt.load(path)


def test_checkpoint_tampered_array_fails_the_digest(tmp_path: Path) -> None:
    path = tmp_path / "step_0000001.npz"
    ckpt.save(path, _arrays(), {"step": 1})
    arrays, _ = ckpt.load(path)
    with zipfile.ZipFile(path) as z:
        meta = z.read("__meta__.npy")
    other = tmp_path / "other.npz"
    with open(other, "wb") as f:  # a valid zip whose arrays do not match the stored digest
        np.savez(f, **{**arrays, "param.w": arrays["param.w"] + 1})
    with zipfile.ZipFile(other, "a") as z:
        z.writestr("__meta__.npy", meta)
    with pytest.raises(ckpt.CheckpointError, match="sha256"):
        ckpt.load(other)


def test_checkpoint_refuses_pickles_and_foreign_files(tmp_path: Path) -> None:
    p = tmp_path / "pickled.npz"
    with open(p, "wb") as f:
        np.savez(f, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(p)
    q = tmp_path / "plain.npz"
    np.savez(q, x=np.ones(2))
    with pytest.raises(ckpt.CheckpointError, match="metadata"):
        ckpt.load(q)
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load(tmp_path / "none.npz")
