"""The training loop: a :class:`Trainer` (model, parameters, AdamW, loss scaling) stepped in a run folder.

:func:`train` runs (or, with ``resume=True``, continues) one recipe in one run folder
(:mod:`fp8ref.nn.runfolder` describes its files). Each step is :func:`fp8ref.nn.step.train_step` (forward,
backward, update); the loop around it writes one metrics and one timing line per step, evaluates every
``eval_every`` steps and checkpoints every ``checkpoint_every`` steps. Resuming loads the latest checkpoint,
cuts ``metrics.jsonl`` / ``timing.jsonl`` back to the steps before it and continues; batches are a pure
function of ``(seed, step)``, so the resumed run is bit-identical to an uninterrupted one.

A non-finite loss or gradient stops the run with :class:`TrainingDiverged`, naming the step and the first
non-finite tensor (layer and tensor); the checkpoints already written are left untouched.

:func:`check_config` refuses, before anything is created, a configuration whose data cannot give a window
of ``block_size`` tokens or whose estimated memory (:mod:`fp8ref.nn.memory`) exceeds what the machine has.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fp8ref.nn import checkpoint as ckpt
from fp8ref.nn import memory
from fp8ref.nn.config import TrainConfig
from fp8ref.nn.data import Dataset, check_windows, file_corpus, markov_corpus, source_size
from fp8ref.nn.fp8 import FP8Linear, NonFiniteError
from fp8ref.nn.model import LINEAR_KINDS, Model, init_params
from fp8ref.nn.optim import AdamW, AdamWConfig, Schedule
from fp8ref.nn.progress import Progress
from fp8ref.nn.runfolder import RunExists, RunFolder, read_config, read_jsonl
from fp8ref.nn.step import LossScaler, train_step
from fp8ref.nn.threads import limited_threads
from fp8ref.outputs import UsageError

WARMUP_TIMING_STEPS = 3  # steps left out of tokens/s (first calls compile the Numba kernels)


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN/Inf. ``step`` and ``where`` say when and in which tensor."""

    def __init__(self, step: int, where: str, last_checkpoint: Path | None) -> None:
        self.step, self.where, self.last_checkpoint = step, where, last_checkpoint
        keep = (
            f"last good checkpoint: {last_checkpoint}"
            if last_checkpoint is not None
            else "no checkpoint had been written yet"
        )
        super().__init__(f"training diverged at step {step}: first non-finite tensor is {where}; {keep}")


def load_data(cfg: TrainConfig) -> Dataset:
    if cfg.data is None:
        return markov_corpus(seed=cfg.data_seed, n=cfg.corpus_bytes)
    return file_corpus(cfg.data, seed=cfg.data_seed)


def check_config(cfg: TrainConfig) -> memory.MemoryEstimate:
    """Refuse (``UsageError``) what would fail only after the run folder is made: a ``--data`` file that is
    missing, unreadable or too short, an estimated peak memory above the memory available, or data that
    cannot give a window of ``block_size`` tokens in both splits. Reads no data; returns the estimate."""
    try:
        n_tokens, vocab = source_size(cfg.data, cfg.corpus_bytes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    est = memory.check(cfg, vocab, n_tokens)
    try:
        check_windows(n_tokens, cfg.block_size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return est


def build_model(cfg: TrainConfig, vocab_size: int, ops: Any = None) -> tuple[Model, dict[str, FP8Linear]]:
    """The model with an :class:`FP8Linear` for every layer whose kind is in ``cfg.fp8_layers``
    (none for ``fp32``). Returns ``(model, {layer name: FP8Linear})`` in forward order."""
    gcfg = cfg.model_config(vocab_size)
    fp8: dict[str, FP8Linear] = {}
    if cfg.recipe != "fp32":
        from fp8ref.nn.blockscaled import linear_for, nvfp4_high_precision_layers

        recipe = cfg.fp8_recipe()
        keep = nvfp4_high_precision_layers(gcfg.n_layer) if cfg.recipe == "nvfp4" else set()
        for name, kind in gcfg.linear_layers():
            if kind in cfg.fp8_layers and not any(name.startswith(f"h.{i}.") for i in keep):
                fp8[name] = linear_for(name, recipe, ops)
    return Model(gcfg, linears=fp8), fp8


def evaluate(
    model: Model,
    params: dict[str, np.ndarray],
    data: Dataset,
    cfg: TrainConfig,
    fp8: dict[str, FP8Linear] | None = None,
) -> float:
    """Mean validation loss over ``cfg.eval_batches`` fixed batches (recipe state is not updated)."""
    for lin in (fp8 or {}).values():
        lin.training = False
    try:
        losses = []
        for i in range(cfg.eval_batches):
            idx, tg = data.batch(cfg.seed, i, cfg.batch_size, cfg.block_size, split="val")
            losses.append(float(model.forward(params, idx, tg).loss))
    finally:
        for lin in (fp8 or {}).values():
            lin.training = True
    return float(np.mean(losses))


def _bias_value(b: Any) -> Any:
    return int(b) if isinstance(b, (int, np.integer)) else round(float(b), 3)


class Trainer:
    """Everything a run holds in memory: data, model (with its FP8 layers), parameters, AdamW, schedule
    and loss scaling. :meth:`step` runs one optimizer step and returns its metrics record; :meth:`state` /
    :meth:`restore` are its checkpoint."""

    def __init__(self, cfg: TrainConfig, ops: Any = None) -> None:
        self.cfg = cfg
        self.data = load_data(cfg)
        self.model, self.fp8 = build_model(cfg, self.data.vocab_size, ops)
        self.params = init_params(self.model.cfg, cfg.seed)
        self.opt = AdamW(self.params, AdamWConfig(weight_decay=cfg.weight_decay))
        self.schedule = Schedule(cfg.lr, cfg.warmup, cfg.steps, cfg.min_lr_ratio)
        self.scaler = LossScaler(*cfg.loss_scaling())
        self.config_sha = cfg.sha256()

    def step(self, step: int, capture: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Optimizer step ``step`` on its batch; its ``metrics.jsonl`` record (with ``val_loss`` at an
        evaluation step). ``capture`` receives the FP8 layers' records of this step."""
        cfg = self.cfg
        batch = self.data.batch(cfg.seed, step, cfg.batch_size, cfg.block_size)
        for lin in self.fp8.values():
            lin.capture = capture
        try:
            res = train_step(
                self.model, self.params, self.opt, self.scaler, batch, self.schedule(step), cfg.grad_clip
            )
        finally:
            for lin in self.fp8.values():
                lin.capture = None
        rec: dict[str, Any] = {"step": step, "loss": res.loss, "lr": res.lr, "grad_norm": res.grad_norm}
        if self.fp8:
            rec["scale_bias"] = {
                name: {r: _bias_value(lin.last_bias[r]) for r in ("w", "x", "g") if r in lin.last_bias}
                for name, lin in self.fp8.items()
            }
        if self.scaler.mode != "none":
            rec["loss_scale"], rec["skipped"] = self.scaler.scale, res.skipped
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            rec["val_loss"] = evaluate(self.model, self.params, self.data, cfg, self.fp8)
        return rec

    def state(self, step: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The checkpoint after ``step`` completed steps: arrays (weights, AdamW moments, recipe state) and
        metadata."""
        arrays = {f"param.{k}": v for k, v in self.params.items()}
        arrays.update(self.opt.state())
        for lin in self.fp8.values():
            arrays.update({f"state.{k}": v for k, v in lin.state_arrays().items()})
        meta = {
            "step": step,
            "adam_t": self.opt.t,
            "loss_scale": self.scaler.scale,
            "good_steps": self.scaler.good_steps,
            "config_sha256": self.config_sha,
        }
        return arrays, meta

    def restore(self, path: Path, config_path: Path) -> int:
        """Load the checkpoint ``path``; returns its step. Raises ``CheckpointError`` naming the file when it
        belongs to another configuration or lacks what this run needs."""
        arrays, meta = ckpt.load(path)
        step = ckpt.check_meta(path, meta, self.config_sha, config_path)
        for k, p in self.params.items():
            for key in (f"param.{k}", f"m.{k}", f"v.{k}"):
                a = arrays.get(key)
                if a is None or a.shape != p.shape or a.dtype != p.dtype:
                    raise ckpt.CheckpointError(
                        f"checkpoint {path}: array {key} is missing or of another shape"
                    )
        for k in self.params:
            self.params[k][...] = arrays[f"param.{k}"]
        self.opt.load_state(arrays, meta["adam_t"])
        states = {k[len("state.") :]: v for k, v in arrays.items() if k.startswith("state.")}
        try:
            for lin in self.fp8.values():
                lin.load_state(states)
        except (ValueError, KeyError) as exc:
            raise ckpt.CheckpointError(f"checkpoint {path}: recipe state: {exc}") from None
        self.scaler.scale, self.scaler.good_steps = meta["loss_scale"], meta["good_steps"]
        return step


@dataclass
class RunResult:
    """What :func:`train` returns."""

    out: Path
    config: TrainConfig
    summary: dict[str, Any]
    params: dict[str, np.ndarray]
    tokens_per_s: float | None


def load_params(path: str | Path) -> dict[str, np.ndarray]:
    """The float32 master weights stored in a checkpoint (in the model's parameter order)."""
    arrays, _ = ckpt.load(path)
    return {k[len("param.") :]: v for k, v in arrays.items() if k.startswith("param.")}


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    ops: Any = None,
    resume: bool = False,
    progress: bool = False,
    desc: str | None = None,
    threads: int = 1,
) -> RunResult:
    """Train one recipe in the run folder ``out`` (created; must not already hold a run unless ``resume``).

    ``ops`` is the object through which the FP8 linear layers quantize and multiply (default: fp8ref's
    reference functions). Returns a :class:`RunResult`; raises :class:`TrainingDiverged` on NaN/Inf, and
    ``UsageError`` (:func:`check_config`) before creating anything for a configuration that cannot run.
    ``threads``: BLAS and Numba threads while training (default 1, see :mod:`fp8ref.nn.threads`; 0 leaves
    them as they are); results do not depend on it.
    """
    out = Path(out)
    if resume:
        cfg = read_config(out)
    check_config(cfg)
    with limited_threads(threads, numba=cfg.recipe != "fp32"):
        return _train(cfg, out, ops=ops, resume=resume, progress=progress, desc=desc)


def _train(
    cfg: TrainConfig,
    out: Path,
    *,
    ops: Any,
    resume: bool,
    progress: bool,
    desc: str | None,
    capture: dict[int, list[dict[str, Any]]] | None = None,
    stop_after: int | None = None,
) -> RunResult:
    """The loop. ``capture`` maps steps to lists that receive the FP8 layers' records at that step;
    ``stop_after`` ends the loop after that many steps (used by :func:`fp8ref.nn.capture_training`)."""
    trainer = Trainer(cfg, ops)  # everything that can fail before the folder is made
    folder = RunFolder.open(out) if resume else RunFolder.create(out, cfg)
    start = _start(folder, trainer) if resume else 0
    if not resume:
        folder.start_logs()
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    tokens = cfg.batch_size * cfg.block_size
    bar = Progress(cfg.steps, start, desc or cfg.label, progress)
    try:
        with folder.logs() as logs:
            for step in range(start, end):
                t0 = time.perf_counter()
                try:
                    rec = trainer.step(step, None if capture is None else capture.get(step))
                except NonFiniteError as exc:
                    raise TrainingDiverged(step, exc.where, folder.latest_checkpoint()) from None
                logs.metrics(rec)
                if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                    folder.save_checkpoint(step + 1, *trainer.state(step + 1))
                dt = time.perf_counter() - t0
                logs.timing({"step": step, "wall_s": dt, "tokens_per_s": tokens / dt})
                bar.update(rec["loss"])
    except TrainingDiverged as exc:
        last = None if exc.last_checkpoint is None else str(exc.last_checkpoint)
        status = {"status": "diverged", "step": exc.step, "where": exc.where, "last_checkpoint": last}
        folder.write_summary(status, sort_keys=False)
        raise
    finally:
        bar.close()
    summary = _summary(cfg, trainer.data, folder)
    summary["status"] = "complete"
    folder.write_summary(summary)
    tps = folder.tokens_per_second(WARMUP_TIMING_STEPS)
    return RunResult(out=out, config=cfg, summary=summary, params=trainer.params, tokens_per_s=tps)


def _start(folder: RunFolder, trainer: Trainer) -> int:
    """Resume: remove the leftovers of killed writes, load the latest checkpoint (none: step 0), cut the
    logs back to the steps before it. Returns the first step to run."""
    folder.remove_stale_temporaries()
    last = folder.latest_checkpoint()
    start = 0 if last is None else trainer.restore(last, folder.config_path)
    folder.cut_logs(start)
    return start


def _summary(cfg: TrainConfig, data: Dataset, folder: RunFolder) -> dict[str, Any]:
    recs = folder.read_metrics()
    vals = [r for r in recs if "val_loss" in r]
    tail = [r["loss"] for r in recs[-max(1, len(recs) // 10) :]]
    return {
        "recipe": cfg.label,
        "steps": len(recs),
        "final_val_loss": vals[-1]["val_loss"] if vals else None,
        "final_train_loss": float(np.mean(tail)) if tail else None,
        "best_loss": data.best_loss(cfg.block_size),
        "entropy_rate": data.entropy_rate,
        "data": data.description,
        "vocab_size": data.vocab_size,
    }


def tokens_per_second(run_dir: str | os.PathLike[str]) -> float | None:
    """Training throughput of a run folder: tokens over wall time of the steps after the first
    ``WARMUP_TIMING_STEPS`` (which compile the Numba kernels), from ``timing.jsonl``."""
    return RunFolder(run_dir).tokens_per_second(WARMUP_TIMING_STEPS)


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a run folder's ``metrics.jsonl``."""
    return read_jsonl(Path(run_dir) / "metrics.jsonl")


__all__ = [
    "TrainingDiverged",
    "RunExists",
    "RunResult",
    "Trainer",
    "train",
    "check_config",
    "evaluate",
    "build_model",
    "load_data",
    "load_params",
    "read_config",
    "read_metrics",
    "tokens_per_second",
    "LINEAR_KINDS",
]
