"""The trainer's two halves: the run folder (files made whole, read strictly) and the paired train step."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from fp8ref.nn import RunFolder, TrainConfig, train, train_step
from fp8ref.nn import runfolder as rf
from fp8ref.nn.fp8 import NonFiniteError
from fp8ref.nn.model import Model, init_params
from fp8ref.nn.optim import AdamW, AdamWConfig, Schedule
from fp8ref.nn.step import LOSS_SCALE_GROWTH, LOSS_SCALE_MAX, LossScaler, step_backward, step_forward
from fp8ref.nn.train import Trainer, build_model, load_data
from tests.nn.test_nn_train import micro

REPO = Path(__file__).resolve().parents[2]


# ---- the train step -----------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", ["fp32", "fp8-amax", "fp8-delayed"])
def test_train_step_is_the_loop_body(tmp_path: Path, recipe: str) -> None:
    """forward, backward, update by hand with train_step give the weights train() writes, bit for bit."""
    cfg = micro(recipe, steps=6)
    data = load_data(cfg)
    model, _ = build_model(cfg, data.vocab_size)
    params = init_params(model.cfg, cfg.seed)
    opt = AdamW(params, AdamWConfig(weight_decay=cfg.weight_decay))
    sched = Schedule(cfg.lr, cfg.warmup, cfg.steps, cfg.min_lr_ratio)
    scaler = LossScaler(*cfg.loss_scaling())
    losses = []
    for step in range(cfg.steps):
        batch = data.batch(cfg.seed, step, cfg.batch_size, cfg.block_size)
        res = train_step(model, params, opt, scaler, batch, sched(step), cfg.grad_clip)
        assert not res.skipped and res.lr == sched(step)
        losses.append(res.loss)
    full = train(cfg, tmp_path / "r")
    assert all(np.array_equal(params[k], full.params[k]) for k in params)
    assert losses == [r["loss"] for r in RunFolder(tmp_path / "r").read_metrics()]


def test_backward_with_a_power_of_two_loss_scale_gives_the_same_gradients() -> None:
    cfg = micro("fp8-amax")
    data = load_data(cfg)
    model, _ = build_model(cfg, data.vocab_size)
    params = init_params(model.cfg, 0)
    idx, tg = data.batch(0, 0, cfg.batch_size, cfg.block_size)
    loss, fw = step_forward(model, params, idx, tg)
    g1, n1, bad1 = step_backward(model, params, fw, 1.0)
    loss2, fw2 = step_forward(model, params, idx, tg)
    g2, n2, bad2 = step_backward(model, params, fw2, 2.0**12)
    assert loss == loss2 and bad1 is bad2 is None and n1 == n2
    assert all(np.array_equal(g1[k], g2[k]) for k in g1)


def test_non_finite_gradients_skip_under_dynamic_scaling_and_stop_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = micro("fp32")
    data = load_data(cfg)
    model, _ = build_model(cfg, data.vocab_size)
    real = Model.backward

    def overflowing(self, p, fw, dloss=1.0):  # noqa: ANN001, ANN202
        g = real(self, p, fw, dloss)
        g["h.0.mlp.fc.w"][0, 0] = np.inf
        return g

    monkeypatch.setattr(Model, "backward", overflowing)
    batch = data.batch(0, 0, cfg.batch_size, cfg.block_size)
    for mode in ("none", "static"):
        params = init_params(model.cfg, 0)
        with pytest.raises(NonFiniteError, match="gradient of h.0.mlp.fc.w"):
            train_step(model, params, AdamW(params), LossScaler(mode, 8.0), batch, 1e-3, 1.0)
    params = init_params(model.cfg, 0)
    before = {k: v.copy() for k, v in params.items()}
    scaler = LossScaler("dynamic", 4096.0, good_steps=17)
    res = train_step(model, params, AdamW(params), scaler, batch, 1e-3, 1.0)
    assert res.skipped and res.grad_norm is None and np.isfinite(res.loss)
    assert (scaler.scale, scaler.good_steps) == (2048.0, 0)
    assert all(np.array_equal(before[k], params[k]) for k in params)


def test_loss_scaler_rules() -> None:
    s = LossScaler("dynamic", 2.0)
    s.after_step(finite=False)
    s.after_step(finite=False)
    assert s.scale == 1.0  # not below 1
    for _ in range(LOSS_SCALE_GROWTH):
        s.after_step(finite=True)
    assert (s.scale, s.good_steps) == (2.0, 0)
    s = LossScaler("dynamic", LOSS_SCALE_MAX, LOSS_SCALE_GROWTH - 1)
    s.after_step(finite=True)
    assert s.scale == LOSS_SCALE_MAX  # not above 2**24
    s = LossScaler("static", 1024.0)
    s.after_step(finite=False)
    assert s.scale == 1024.0


def test_trainer_state_round_trip(tmp_path: Path) -> None:
    cfg = micro("fp8-delayed", steps=4)
    a = Trainer(cfg)
    for step in range(3):
        a.step(step)
    arrays, meta = a.state(3)
    folder = RunFolder.create(tmp_path / "r", cfg)
    path = folder.save_checkpoint(3, arrays, meta)
    b = Trainer(cfg)
    assert b.restore(path, folder.config_path) == 3
    ra, rb = a.step(3), b.step(3)
    assert ra == rb


# ---- the run folder -----------------------------------------------------------------------------------
@pytest.mark.parametrize("marker", ["config.json", "metrics.jsonl", "runs.json"])
def test_create_refuses_a_folder_that_holds_a_run(tmp_path: Path, marker: str) -> None:
    (tmp_path / marker).write_text("{}")
    with pytest.raises(rf.RunExists, match=f"already holds a run; use --resume {tmp_path}"):
        RunFolder.create(tmp_path, micro())
    assert sorted(p.name for p in tmp_path.iterdir()) == [marker]


def test_the_already_holds_a_run_rule_is_written_once() -> None:
    hits = [p for p in (REPO / "fp8ref").rglob("*.py") if "already holds a run" in p.read_text()]
    assert hits == [REPO / "fp8ref" / "nn" / "runfolder.py"]


def test_create_failure_removes_what_it_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path, data):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(rf, "atomic_write", full)
    with pytest.raises(OSError, match="No space"):
        RunFolder.create(tmp_path / "a" / "b" / "run", micro())
    assert list(tmp_path.iterdir()) == []


def test_open_and_read_config_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(rf.RunFileError, match="holds no config.json"):
        RunFolder.open(tmp_path)
    folder = RunFolder.create(tmp_path / "r", micro("fp8-cscale:2"))
    assert RunFolder.open(folder.path).read_config() == micro("fp8-cscale:2")
    assert TrainConfig.from_dict(micro().to_dict()) == micro()


def test_logs_drop_a_torn_last_line_and_cut_back_byte_for_byte(tmp_path: Path) -> None:
    folder = RunFolder.create(tmp_path / "r", micro())
    folder.start_logs()
    with folder.logs() as logs:
        for step in range(5):
            logs.metrics({"step": step, "loss": 1.0 / (step + 1)})
            logs.timing({"step": step, "wall_s": 0.5, "tokens_per_s": 64.0})
    whole = folder.metrics_path.read_bytes()
    folder.metrics_path.write_bytes(whole + b'{"step": 5, "lo')  # a writer killed mid-line
    assert [r["step"] for r in folder.read_metrics()] == list(range(5))
    assert folder.tokens_per_second(0) == 64.0
    assert folder.check_resume(micro()) == 0
    folder.cut_logs(3)
    assert folder.metrics_path.read_bytes() == b"".join(whole.split(b"\n")[i] + b"\n" for i in range(3))
    assert [r["step"] for r in rf.read_jsonl(folder.timing_path)] == [0, 1, 2]
    with pytest.raises(rf.RunFileError, match="steps 0 .. 3"):
        folder.cut_logs(4)
