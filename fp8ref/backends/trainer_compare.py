"""Run the FP8 trainer on a backend and on the reference side by side, step by step, and find where they part.

:func:`compare_trainer` builds the same model twice from one :class:`~fp8ref.nn.config.TrainConfig` -- one
whose FP8 linear layers run their operations on the backend (with the backend's own accumulation,
``accumulate=None``), one on the reference (with ``reference_accumulate``: by default the accumulation the
backend claims, when the reference has a model of that name, else ``"exact"``) -- and trains both on the same
batches. After every step it compares, in execution order, every tensor the FP8 layers saw and made:

* forward, layers in forward order: ``w``, ``bias_w``, ``w_codes``, ``x``, ``bias_x``, ``x_codes``, ``y``
  (the GEMM output, before the layer bias);
* ``loss``;
* backward, layers in the order backward reaches them: ``dy``, ``bias_g``, ``g_codes``, ``dx``, ``dw``;
* ``params`` after the optimizer step, in parameter order.

Until the first difference both runs are bit-identical, so the first differing tensor is a deviation of the
backend on inputs identical to the reference's; everything after it may be a consequence. Distances are in
ulps: of float32 for float tensors, of the FP8 format's code order for codes (``+0`` and ``-0`` are 0 ulps
apart but still counted as differing bits), integer difference for scaling biases; a NaN against a number is
reported as ``"nan"``.

The step is the trainer's (forward, backward with the loss scale, unscale, global-norm clip, AdamW, dynamic
loss-scale update) built from :mod:`fp8ref.nn`; evaluation and checkpoints are left out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

__all__ = ["compare_trainer", "format_report", "ulp_distance"]

_FORWARD = ("w", "bias_w", "w_codes", "x", "bias_x", "x_codes", "y")
_BACKWARD = ("dy", "bias_g", "g_codes", "dx", "dw")
_CODES = {"w_codes": "fwd", "x_codes": "fwd", "g_codes": "grad"}


def _ordered(bits: np.ndarray, width: int) -> np.ndarray:
    """Map sign-magnitude bit patterns of ``width`` bits to integers in the order of their values."""
    b = bits.astype(np.int64)
    sign = np.int64(1) << (width - 1)
    mag = b & (sign - 1)
    return np.where(b & sign, -mag, mag)


def ulp_distance(a: np.ndarray, b: np.ndarray,
                 fmt: Any = None) -> tuple[int, int | str, tuple[int, ...] | None]:
    """``(differing elements, max distance, index of the first difference)`` of two same-shaped arrays.

    float32 / float64 arrays: distance in ulps of their own format; ``uint8`` codes with ``fmt``: distance in
    the format's code order; integers: the absolute difference. ``max distance`` is ``"nan"`` when a NaN
    faces a number. Elements are "differing" when their bits differ (NaN payloads included).
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        return int(max(a.size, b.size)), "shape", None
    if a.dtype.kind == "f":
        width = a.dtype.itemsize * 8
        ua = a.view(f"u{a.dtype.itemsize}")
        ub = b.astype(a.dtype).view(f"u{a.dtype.itemsize}")
        diff = ua != ub
        na, nb = np.isnan(a), np.isnan(b.astype(a.dtype))
        nan_mismatch = bool(np.any(na != nb))
        both = ~na & ~nb
        d = np.abs(_ordered(ua[both], width) - _ordered(ub[both], width)) if np.any(both) else np.zeros(0)
        maxd: int | str = "nan" if nan_mismatch else int(d.max()) if d.size else 0
    elif fmt is not None:
        from fp8ref.formats import format as resolve

        f = resolve(fmt)
        diff = a != b
        va, vb = f.values()[a], f.values()[b]
        na, nb = np.isnan(va), np.isnan(vb)
        both = ~na & ~nb
        d = np.abs(_ordered(a[both], f.bits) - _ordered(b[both], f.bits)) if np.any(both) else np.zeros(0)
        maxd = "nan" if bool(np.any(na != nb)) else int(d.max()) if d.size else 0
    else:
        diff = a != b
        d = np.abs(a.astype(np.int64) - b.astype(np.int64))
        maxd = int(d.max()) if d.size else 0
    n = int(np.count_nonzero(diff))
    first = tuple(int(i) for i in np.argwhere(diff)[0]) if n else None
    return n, maxd, first


class _Order:
    """A linear executor in front of an FP8Linear that records the order in which layers are called."""

    def __init__(self, lin: Any, log: list[tuple[str, str]]) -> None:
        self.lin = lin
        self.log = log

    def forward(self, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> Any:
        self.log.append(("forward", name))
        return self.lin.forward(name, x, w, b)

    def backward(self, name: str, dy: np.ndarray, cache: Any) -> Any:
        self.log.append(("backward", name))
        return self.lin.backward(name, dy, cache)


class _Side:
    """One of the two runs: model, parameters, optimizer and per-step records."""

    def __init__(self, cfg: Any, data: Any, ops: Any) -> None:
        from fp8ref.nn.model import init_params
        from fp8ref.nn.optim import AdamW, AdamWConfig, Schedule
        from fp8ref.nn.train import build_model

        self.cfg = cfg
        self.data = data
        self.model, self.fp8 = build_model(cfg, data.vocab_size, ops)
        self.order: list[tuple[str, str]] = []
        for name, lin in self.fp8.items():
            self.model.linears[name] = _Order(lin, self.order)
        self.params = init_params(self.model.cfg, cfg.seed)
        self.opt = AdamW(self.params, AdamWConfig(weight_decay=cfg.weight_decay))
        self.sched = Schedule(cfg.lr, cfg.warmup, cfg.steps, cfg.min_lr_ratio)
        self.ls_mode, self.loss_scale = cfg.loss_scaling()
        self.good_steps = 0

    def step(self, step: int) -> dict[str, Any]:
        """One training step; returns the loss and the capture records by layer name."""
        from fp8ref.nn.optim import clip_grads, global_norm
        from fp8ref.nn.train import LOSS_SCALE_GROWTH

        cfg = self.cfg
        self.order.clear()
        for lin in self.fp8.values():
            lin.capture = []
        idx, tg = self.data.batch(cfg.seed, step, cfg.batch_size, cfg.block_size)
        fw = self.model.forward(self.params, idx, tg)
        grads = self.model.backward(self.params, fw, dloss=self.loss_scale)
        if self.loss_scale != 1.0:
            inv = np.float32(1.0 / self.loss_scale)
            for g in grads.values():
                g *= inv
        norm = global_norm(grads)
        if np.isfinite(norm):
            clip_grads(grads, cfg.grad_clip, norm)
            self.opt.step(self.params, grads, self.sched(step))
            if self.ls_mode == "dynamic":
                self.good_steps += 1
                if self.good_steps == LOSS_SCALE_GROWTH:
                    self.loss_scale, self.good_steps = min(self.loss_scale * 2, 2.0 ** 24), 0
        elif self.ls_mode == "dynamic":  # overflow: skip the update, halve the scale
            self.loss_scale, self.good_steps = max(1.0, self.loss_scale / 2), 0
        else:
            raise FloatingPointError(f"step {step}: non-finite gradient norm")
        records = {}
        for name, lin in self.fp8.items():
            recs = lin.capture or []
            if recs:
                records[name] = recs[-1]
            lin.capture = None
        return {"loss": np.float32(fw.loss), "records": records, "order": list(self.order), "norm": norm}


def _default_reference_accumulate(backend: Any) -> str:
    claim = backend.capabilities.accumulation
    if isinstance(claim, str):
        from fp8ref.accum import PRESETS

        if claim in PRESETS or claim == "exact":
            return claim
    return "exact"


def compare_trainer(backend: Any, steps: int = 5, *, config: Any = None, preset: str = "tiny",
                    recipe: str = "fp8-amax", reference_accumulate: Any = None, stop_at_first: bool = False,
                    **overrides: Any) -> dict[str, Any]:
    """Train on ``backend`` and on the reference side by side for ``steps`` steps and compare every step.

    Args:
      backend: a backend name (``fp8ref.backends.get``) or a :class:`~fp8ref.backends.Backend`.
      steps: the number of training steps to run on both sides.
      config: a :class:`~fp8ref.nn.config.TrainConfig`; default ``TrainConfig.from_preset(preset, recipe=...,
        **overrides)``. Its ``steps`` sets the learning-rate schedule only.
      reference_accumulate: the reference side's accumulation (default: the backend's claimed accumulation
        when the reference has it, else ``"exact"``); the backend side always runs ``accumulate=None``.
      stop_at_first: stop after the step holding the first divergence.

    Returns:
      A JSON-serialisable dict: ``backend``, ``backend_accumulation`` (the claim), ``reference_accumulate``,
      ``config``, ``steps_run``, ``identical``, ``status`` (``"ok"``; ``"unsupported"``: the backend refused
      an operation; ``"error"``: an operation failed, e.g. on non-finite values), ``reason``,
      ``first_divergence`` (``None`` or ``step``, ``phase``, ``layer``, ``tensor``, ``differing``, ``size``,
      ``max_ulps``, ``index``, ``backend_value``, ``reference_value``), and ``per_step`` (per step: both
      losses, their ulp distance, the number of differing tensors, the largest distance and the first
      differing tensor).
    """
    from fp8ref.backends import Unsupported, get
    from fp8ref.nn.blas import single_threaded_blas
    from fp8ref.nn.config import TrainConfig
    from fp8ref.nn.train import load_data

    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    be = get(backend)
    ref = get("reference")
    cfg = config if config is not None else TrainConfig.from_preset(preset, recipe=recipe, **overrides)
    if cfg.recipe == "fp32":
        raise ValueError("config: recipe 'fp32' has no FP8 layers to compare; choose an FP8 recipe")
    ref_acc = _default_reference_accumulate(be) if reference_accumulate is None else reference_accumulate
    report: dict[str, Any] = {
        "backend": be.name,
        "backend_accumulation": be.capabilities.accumulation,
        "reference_accumulate": ref_acc if isinstance(ref_acc, str) else _model_name(ref_acc),
        "config": cfg.to_dict(),
        "steps_run": 0,
        "identical": True,
        "status": "ok",
        "reason": None,
        "first_divergence": None,
        "per_step": [],
    }
    with single_threaded_blas():
        data = load_data(cfg)
        side_b = _Side(replace(cfg, accumulate=None, backend=be.name), data, be)
        side_r = _Side(replace(cfg, accumulate=ref_acc if isinstance(ref_acc, str) else cfg.accumulate,
                               backend="reference"), data, ref)
        if not isinstance(ref_acc, str):  # a model object: set it on the recipe of every reference layer
            for lin in side_r.fp8.values():
                lin.recipe = replace(lin.recipe, accumulate=ref_acc)
        for step in range(steps):
            try:
                rb = side_b.step(step)
            except Unsupported as exc:
                report.update(status="unsupported", reason=str(exc))
                break
            except (FloatingPointError, ValueError, RuntimeError) as exc:
                report.update(status="error", reason=f"backend side, step {step}: {_err(exc)}")
                break
            try:
                rr = side_r.step(step)
            except (FloatingPointError, ValueError, RuntimeError) as exc:
                report.update(status="error", reason=f"reference side, step {step}: {_err(exc)}")
                break
            summary = _compare_step(step, rb, rr, side_b, side_r, cfg, report)
            report["per_step"].append(summary)
            report["steps_run"] = step + 1
            if stop_at_first and report["first_divergence"] is not None:
                break
    report["identical"] = report["first_divergence"] is None and report["status"] == "ok"
    return report


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _model_name(model: Any) -> str:
    return str(getattr(model, "name", None) or repr(model))


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if np.isfinite(f) else str(f)
    if isinstance(v, (np.integer, int)):
        return int(v)
    return v


def _compare_step(step: int, rb: dict[str, Any], rr: dict[str, Any], side_b: _Side, side_r: _Side, cfg: Any,
                  report: dict[str, Any]) -> dict[str, Any]:
    fwd_fmt, grad_fmt = cfg.fp8_recipe().fwd_format, cfg.fp8_recipe().grad_format
    items: list[tuple[str, str, str, Any, Any, Any]] = []  # (phase, layer, tensor, backend, reference, fmt)
    last_forward = next((n for p, n in reversed(rb["order"]) if p == "forward"), None)
    for phase, layer in rb["order"]:
        if layer not in rb["records"] or layer not in rr["records"]:
            continue
        b, r = rb["records"][layer], rr["records"][layer]
        names = _FORWARD if phase == "forward" else _BACKWARD
        for t in names:
            if t in b and t in r:
                fmt = None if t not in _CODES else (fwd_fmt if _CODES[t] == "fwd" else grad_fmt)
                items.append((phase, layer, t, b[t], r[t], fmt))
        if phase == "forward" and layer == last_forward:
            items.append(("forward", "-", "loss", np.asarray(rb["loss"]), np.asarray(rr["loss"]), None))
    for k in side_b.params:
        items.append(("update", k, "params", side_b.params[k], side_r.params[k], None))

    n_diff = 0
    dists: list[int | str] = []
    first_here = None
    for phase, layer, tensor, vb, vr, fmt in items:
        vb_a, vr_a = np.asarray(vb), np.asarray(vr)
        n, d, idx = ulp_distance(vb_a, vr_a, fmt)
        if n == 0:
            continue
        n_diff += 1
        dists.append(d)
        if first_here is None:
            first_here = f"{phase} {layer} {tensor}"
        if report["first_divergence"] is None:
            report["first_divergence"] = {
                "step": step, "phase": phase, "layer": layer, "tensor": tensor, "differing": n,
                "size": int(vb_a.size), "max_ulps": d, "index": list(idx) if idx is not None else None,
                "backend_value": _jsonable(vb_a[idx]) if idx is not None else None,
                "reference_value": _jsonable(vr_a[idx]) if idx is not None else None,
            }
    words = [d for d in dists if isinstance(d, str)]
    max_ulps: int | str = words[0] if words else max((int(d) for d in dists), default=0)
    _, loss_ulps, _ = ulp_distance(np.asarray(rb["loss"], np.float32), np.asarray(rr["loss"], np.float32))
    return {"step": step, "loss_backend": _jsonable(rb["loss"]), "loss_reference": _jsonable(rr["loss"]),
            "loss_ulps": loss_ulps, "differing_tensors": n_diff, "max_ulps": max_ulps, "first": first_here}


def format_report(report: dict[str, Any]) -> str:
    """A few human-readable lines for the terminal."""
    lines = [f"trainer comparison: backend {report['backend']} (claims accumulation "
             f"{report['backend_accumulation']!r}) vs reference "
             f"(accumulate={report['reference_accumulate']!r}), {report['steps_run']} step(s), "
             f"recipe {report['config']['recipe']}"]
    if report["status"] != "ok":
        lines.append(f"stopped: {report['status']}: {report['reason']}")
    fd = report["first_divergence"]
    if fd is None:
        lines.append("identical: every FP8 tensor, loss and parameter matched bit for bit"
                     if report["status"] == "ok" else "no divergence before the stop")
    else:
        lines.append(f"first divergence: step {fd['step']}, {fd['phase']}, layer {fd['layer']}, tensor "
                     f"{fd['tensor']}: {fd['differing']}/{fd['size']} elements differ, "
                     f"max {fd['max_ulps']} ulp; first at {fd['index']}: backend {fd['backend_value']} "
                     f"vs reference {fd['reference_value']}")
    for s in report["per_step"]:
        lines.append(f"  step {s['step']}: loss {s['loss_backend']} vs {s['loss_reference']} "
                     f"({s['loss_ulps']} ulp), {s['differing_tensors']} tensor(s) differ, "
                     f"max {s['max_ulps']} ulp"
                     + (f", first: {s['first']}" if s["first"] else ""))
    return "\n".join(lines)
