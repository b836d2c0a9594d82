"""The training loop and its run folder.

A run folder holds::

    config.json        the TrainConfig (everything that determines the run)
    metrics.jsonl      one JSON object per step: step, loss, lr, grad_norm, scale_bias {layer: {w, x, g}},
                       val_loss every eval_every steps and at the end, loss_scale / skipped with loss scaling
                       -- deterministic content only: same config -> byte-identical file
    timing.jsonl       one object per step: step, wall_s, tokens_per_s (machine-dependent)
    checkpoints/       step_NNNNNNN.npz every checkpoint_every steps and at the end (see checkpoint.py)
    summary.json       final losses, best achievable loss, status
    *.png              plots, when matplotlib is installed

:func:`train` runs (or, with ``resume=True``, continues) one recipe in one folder. Resuming loads the latest
checkpoint, cuts ``metrics.jsonl`` / ``timing.jsonl`` back to the steps before it and continues; batches are a
pure function of ``(seed, step)``, so the resumed run is bit-identical to an uninterrupted one.

A non-finite loss or gradient stops the run with :class:`TrainingDiverged`, naming the step and the first
non-finite tensor (layer and tensor); the checkpoints already written are left untouched.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fp8ref.nn import checkpoint as ckpt
from fp8ref.nn.config import TrainConfig
from fp8ref.nn.data import Dataset, file_corpus, markov_corpus
from fp8ref.nn.fp8 import FP8Linear, NonFiniteError
from fp8ref.nn.model import LINEAR_KINDS, Model, first_nonfinite, init_params
from fp8ref.nn.optim import AdamW, AdamWConfig, Schedule, clip_grads, global_norm
from fp8ref.nn.threads import limited_threads

WARMUP_TIMING_STEPS = 3  # steps left out of tokens/s (first calls compile the Numba kernels)
LOSS_SCALE_GROWTH = 200  # dynamic loss scaling: double after this many overflow-free steps


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


class RunExists(FileExistsError):
    pass


def load_data(cfg: TrainConfig) -> Dataset:
    if cfg.data is None:
        return markov_corpus(seed=cfg.data_seed, n=cfg.corpus_bytes)
    return file_corpus(cfg.data, seed=cfg.data_seed)


def build_model(cfg: TrainConfig, vocab_size: int, ops: Any = None) -> tuple[Model, dict[str, FP8Linear]]:
    """The model with an :class:`FP8Linear` for every layer whose kind is in ``cfg.fp8_layers``
    (none for ``fp32``). Returns ``(model, {layer name: FP8Linear})`` in forward order."""
    gcfg = cfg.model_config(vocab_size)
    fp8: dict[str, FP8Linear] = {}
    if cfg.recipe != "fp32":
        recipe = cfg.fp8_recipe()
        for name, kind in gcfg.linear_layers():
            if kind in cfg.fp8_layers:
                fp8[name] = FP8Linear(name, recipe, ops)
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


class _Progress:
    """tqdm when installed, else a plain one-line bar on stderr."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool) -> None:
        self.enabled = enabled
        self.total, self.n, self.desc = total, initial, desc
        self.bar = None
        self._last = 0.0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit="step", leave=True, dynamic_ncols=True
            )
        except ImportError:
            self.bar = None

    def update(self, loss: float) -> None:
        self.n += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self._last > 0.2 or self.n == self.total:
            self._last = now
            width = 30
            filled = int(width * self.n / max(1, self.total))
            sys.stderr.write(
                f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.n}/{self.total} loss {loss:.4f}"
            )
            if self.n == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a JSONL file (a torn last line, from a killed writer, is dropped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def _truncate_jsonl(path: Path, before_step: int) -> None:
    """Keep the lines of ``path`` whose ``step`` is below ``before_step`` (byte for byte)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break
        if rec.get("step", math.inf) < before_step:
            keep.append(line + b"\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"".join(keep))
    os.replace(tmp, path)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _bias_value(b: Any) -> Any:
    return int(b) if isinstance(b, (int, np.integer)) else round(float(b), 3)


@dataclass
class RunResult:
    """What :func:`train` returns."""

    out: Path
    config: TrainConfig
    summary: dict[str, Any]
    params: dict[str, np.ndarray]
    tokens_per_s: float | None


def _state_arrays(
    params: dict[str, np.ndarray], opt: AdamW, fp8: dict[str, FP8Linear]
) -> dict[str, np.ndarray]:
    arrays = {f"param.{k}": v for k, v in params.items()}
    arrays.update(opt.state())
    for lin in fp8.values():
        arrays.update({f"state.{k}": v for k, v in lin.state_arrays().items()})
    return arrays


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
    reference functions). Returns a :class:`RunResult`; raises :class:`TrainingDiverged` on NaN/Inf.
    ``threads``: BLAS and Numba threads while training (default 1, see :mod:`fp8ref.nn.threads`; 0 leaves
    them as they are); results do not depend on it.
    """
    out = Path(out)
    if resume:
        cfg = read_config(out)
    with limited_threads(threads, numba=cfg.recipe != "fp32"):
        return _train(cfg, out, ops=ops, resume=resume, progress=progress, desc=desc)


def read_config(run_dir: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` of a run folder (its ``config.json``)."""
    saved = Path(run_dir) / "config.json"
    if not saved.is_file():
        raise ValueError(f"{run_dir} holds no config.json (not a run folder)")
    try:
        return TrainConfig.from_dict(json.loads(saved.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{saved} is not a valid fp8ref training config: {exc}") from exc


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
    metrics_path, timing_path = out / "metrics.jsonl", out / "timing.jsonl"
    ck_dir = out / "checkpoints"
    if not resume:
        if (out / "config.json").exists() or (out / "metrics.jsonl").exists():
            raise RunExists(f"{out} already holds a run; use --resume {out} or another --out")
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(cfg.to_json())

    data = load_data(cfg)
    model, fp8 = build_model(cfg, data.vocab_size, ops)
    params = init_params(model.cfg, cfg.seed)
    opt = AdamW(params, AdamWConfig(weight_decay=cfg.weight_decay))
    sched = Schedule(cfg.lr, cfg.warmup, cfg.steps, cfg.min_lr_ratio)
    ls_mode, loss_scale = cfg.loss_scaling()
    good_steps = 0
    start = 0
    config_sha = _config_sha(cfg)

    if resume:
        last = ckpt.latest(ck_dir)
        if last is not None:
            arrays, meta = ckpt.load(last)
            if meta.get("config_sha256") != config_sha:
                raise ckpt.CheckpointError(
                    f"checkpoint {last} belongs to another configuration than {out}/config.json"
                )
            for k in params:
                params[k][...] = arrays[f"param.{k}"]
            opt.load_state(arrays, meta["adam_t"])
            states = {k[len("state.") :]: v for k, v in arrays.items() if k.startswith("state.")}
            for lin in fp8.values():
                lin.load_state(states)
            start = int(meta["step"])
            loss_scale, good_steps = float(meta["loss_scale"]), int(meta["good_steps"])
        _truncate_jsonl(metrics_path, start)
        _truncate_jsonl(timing_path, start)
    else:
        metrics_path.write_bytes(b"")
        timing_path.write_bytes(b"")

    def save(step: int) -> Path:
        meta = {
            "step": step,
            "adam_t": opt.t,
            "loss_scale": loss_scale,
            "good_steps": good_steps,
            "config_sha256": config_sha,
        }
        return ckpt.save(ckpt.checkpoint_path(ck_dir, step), _state_arrays(params, opt, fp8), meta)

    B, T = cfg.batch_size, cfg.block_size
    bar = _Progress(cfg.steps, start, desc or cfg.label, progress)
    status: dict[str, Any] = {"status": "complete"}
    try:
        with open(metrics_path, "ab") as mf, open(timing_path, "ab") as tf:
            for step in range(start, cfg.steps if stop_after is None else min(cfg.steps, stop_after)):
                t0 = time.perf_counter()
                sink = None if capture is None else capture.get(step)
                for lin in fp8.values():
                    lin.capture = sink
                idx, tg = data.batch(cfg.seed, step, B, T)
                rec: dict[str, Any] = {"step": step}
                try:
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        fw = model.forward(params, idx, tg)
                except NonFiniteError as exc:
                    raise TrainingDiverged(step, exc.where, ckpt.latest(ck_dir)) from None
                loss = float(fw.loss)
                if not math.isfinite(loss):
                    where = first_nonfinite(fw.trace) or "the loss"
                    raise TrainingDiverged(step, where, ckpt.latest(ck_dir))
                skipped = False
                try:
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        grads = model.backward(params, fw, dloss=loss_scale)
                    for lin in fp8.values():
                        lin.capture = None
                    if loss_scale != 1.0:
                        inv = np.float32(1.0 / loss_scale)
                        for g in grads.values():
                            g *= inv
                    norm = global_norm(grads)
                    bad = (
                        None
                        if math.isfinite(norm)
                        else next(
                            (f"gradient of {k}" for k, g in grads.items() if not np.isfinite(g).all()),
                            "a gradient",
                        )
                    )
                except NonFiniteError as exc:
                    norm, bad = math.nan, exc.where
                if bad is not None:
                    if ls_mode != "dynamic":
                        raise TrainingDiverged(step, bad, ckpt.latest(ck_dir))
                    skipped = True  # overflow under dynamic loss scaling: skip the update, halve the scale
                    loss_scale, good_steps = max(1.0, loss_scale / 2), 0
                lr = sched(step)
                if not skipped:
                    clip_grads(grads, cfg.grad_clip, norm)
                    opt.step(params, grads, lr)
                    if ls_mode == "dynamic":
                        good_steps += 1
                        if good_steps == LOSS_SCALE_GROWTH:
                            loss_scale, good_steps = min(loss_scale * 2, 2.0**24), 0
                rec.update({"loss": loss, "lr": lr, "grad_norm": None if skipped else norm})
                if fp8:
                    rec["scale_bias"] = {
                        name: {
                            r: _bias_value(lin.last_bias[r]) for r in ("w", "x", "g") if r in lin.last_bias
                        }
                        for name, lin in fp8.items()
                    }
                if ls_mode != "none":
                    rec["loss_scale"], rec["skipped"] = loss_scale, skipped
                if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                    rec["val_loss"] = evaluate(model, params, data, cfg, fp8)
                mf.write((_dumps(rec) + "\n").encode())
                mf.flush()
                if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                    save(step + 1)
                dt = time.perf_counter() - t0
                tf.write((_dumps({"step": step, "wall_s": dt, "tokens_per_s": B * T / dt}) + "\n").encode())
                tf.flush()
                bar.update(loss)
    except TrainingDiverged as exc:
        status = {
            "status": "diverged",
            "step": exc.step,
            "where": exc.where,
            "last_checkpoint": None if exc.last_checkpoint is None else str(exc.last_checkpoint),
        }
        (out / "summary.json").write_text(json.dumps(status, indent=2) + "\n")
        raise
    finally:
        bar.close()

    summary = _summary(cfg, data, metrics_path)
    summary.update(status)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return RunResult(out=out, config=cfg, summary=summary, params=params, tokens_per_s=tokens_per_second(out))


def _config_sha(cfg: TrainConfig) -> str:
    import hashlib

    return hashlib.sha256(cfg.to_json().encode()).hexdigest()


def _summary(cfg: TrainConfig, data: Dataset, metrics_path: Path) -> dict[str, Any]:
    recs = _read_jsonl(metrics_path)
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


def tokens_per_second(run_dir: str | Path) -> float | None:
    """Training throughput of a run folder: tokens over wall time of the steps after the first
    ``WARMUP_TIMING_STEPS`` (which compile the Numba kernels), from ``timing.jsonl``."""
    recs = _read_jsonl(Path(run_dir) / "timing.jsonl")
    recs = recs[WARMUP_TIMING_STEPS:] if len(recs) > WARMUP_TIMING_STEPS else recs
    if not recs:
        return None
    wall = sum(r["wall_s"] for r in recs)
    tokens = sum(r["wall_s"] * r["tokens_per_s"] for r in recs)
    return tokens / wall if wall > 0 else None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run folder's ``metrics.jsonl``."""
    return _read_jsonl(Path(run_dir) / "metrics.jsonl")


__all__ = [
    "TrainingDiverged",
    "RunExists",
    "RunResult",
    "train",
    "evaluate",
    "build_model",
    "load_data",
    "load_params",
    "read_metrics",
    "tokens_per_second",
    "LINEAR_KINDS",
]
