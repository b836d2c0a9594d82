"""Run the FP8 trainer on a backend and on the reference side by side and find where they part.

:func:`compare_trainer` trains the same :class:`~fp8ref.nn.config.TrainConfig` twice through
``fp8ref.nn.capture_training`` (the trainer itself: same batches, same schedule) -- once with the FP8 linear
layers' operations on the backend, with the backend's own accumulation (``accumulate=None``), once on the
reference with ``reference_accumulate`` (by default the accumulation the backend claims, when the reference
has a model of that name, else ``"exact"``) -- and compares every captured step in execution order:

* forward, layers in forward order: ``w``, ``bias_w``, ``scale_w``, ``w_codes``, ``x``, ``bias_x``,
  ``scale_x``, ``x_codes``, ``y`` (the GEMM output, before the layer bias);
* backward, layers in the order backward reaches them (reverse forward order): ``dy``, ``bias_g``,
  ``scale_g``, ``g_codes``, ``dx``, ``dw``.

Until the first difference both runs are bit-identical, so the first differing tensor is a deviation of the
backend on inputs identical to the reference's; everything after it may be a consequence. Distances are in
ulps: of float32 for float tensors, of the FP8 format's code order for codes (``+0`` and ``-0`` are 0 ulps
apart but still counted as differing bits), the integer difference for scaling biases; a NaN facing a number
is reported as ``"nan"``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from fp8ref.backends.base import Unsupported
from fp8ref.conform.contract import CheckedBackend, ContractViolation
from fp8ref.conform.execute import Lost, describe_exception
from fp8ref.conform.isolate import DEFAULT_TIMEOUT
from fp8ref.nn.config import TrainConfig

__all__ = ["compare_trainer", "format_report", "ulp_distance", "locate"]

_FORWARD = ("w", "bias_w", "scale_w", "w_codes", "x", "bias_x", "scale_x", "x_codes", "y")
_BACKWARD = ("dy", "bias_g", "scale_g", "g_codes", "dx", "dw")
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


def _default_reference_accumulate(caps: Any) -> str:
    claim = caps.accumulation
    if isinstance(claim, str):
        from fp8ref.accum import PRESETS

        if claim in PRESETS or claim == "exact":
            return claim
    return "exact"


def compare_trainer(backend: Any, steps: int = 5, *, config: Any = None, preset: str = "tiny",
                    recipe: str = "fp8-amax", reference_accumulate: Any = None, isolate: bool | None = None,
                    timeout: float = DEFAULT_TIMEOUT, **overrides: Any) -> dict[str, Any]:
    """Train on ``backend`` and on the reference side by side for ``steps`` steps and compare every step.

    Args:
      backend: a backend name (``fp8ref.backends.get``) or a :class:`~fp8ref.backends.Backend`.
      steps: the number of training steps to run on both sides (steps ``0 .. steps-1`` are compared).
      config: a :class:`~fp8ref.nn.config.TrainConfig`; default ``TrainConfig.from_preset(preset,
        recipe=recipe, **overrides)``. Its ``steps`` (the schedule length) must exceed ``steps``.
      reference_accumulate: the reference side's accumulation (default: the backend's claimed accumulation
        when the reference has it, else ``"exact"``); the backend side always runs ``accumulate=None``.
      isolate: run the backend side in a worker process (:mod:`fp8ref.conform.isolate`) that may take at most
        ``timeout`` seconds; default: isolate every backend but fp8ref's built-in ones. A worker that exits,
        crashes or runs out of time ends the comparison with status ``"error"`` and the reason.

    Returns:
      A JSON-serialisable dict: ``backend``, ``backend_accumulation`` (the claim), ``reference_accumulate``,
      ``config``, ``steps_run``, ``identical``, ``status`` (``"ok"``; ``"unsupported"``: the backend refused
      an operation; ``"error"``: an operation failed, raised, called ``sys.exit``, returned a result outside
      its contract (:mod:`fp8ref.conform.contract`), or its results made the run diverge), ``reason``,
      ``where`` (when the backend side stopped: ``step``, ``phase``, ``layer``, ``op``, see :func:`locate`),
      ``first_divergence`` (``None`` or ``step``, ``phase``, ``layer``, ``tensor``, ``differing``, ``size``,
      ``max_ulps``, ``index``, ``backend_value``, ``reference_value``), and ``per_step`` (per step: the
      number of differing tensors, the largest distance and the first differing tensor).
    """
    from fp8ref.conform.harness import executor_for

    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    cfg = config if config is not None else TrainConfig.from_preset(preset, recipe=recipe, **overrides)
    if cfg.recipe == "fp32":
        raise ValueError("config: recipe 'fp32' has no FP8 layers to compare; choose an FP8 recipe")
    if steps > cfg.steps:
        raise ValueError(f"steps={steps} exceeds the configuration's schedule length ({cfg.steps} steps)")
    if reference_accumulate is not None and not isinstance(reference_accumulate, str):
        raise TypeError("reference_accumulate must be the name of an accumulation model "
                        f"(fp8ref.accum.PRESETS or 'exact'), got {type(reference_accumulate).__name__}")
    executor = executor_for(backend, isolate=isolate, timeout=timeout)
    try:
        return _compare(executor, cfg, int(steps), reference_accumulate)
    finally:
        executor.close()


def _compare(executor: Any, cfg: TrainConfig, steps: int, reference_accumulate: str | None) -> dict[str, Any]:
    from fp8ref.backends import get
    from fp8ref.nn import capture_training

    ref = get("reference")
    caps = executor.capabilities
    ref_acc = _default_reference_accumulate(caps) if reference_accumulate is None else reference_accumulate
    report: dict[str, Any] = {
        "backend": executor.name,
        "backend_accumulation": caps.accumulation,
        "isolated": executor.isolated,
        "reference_accumulate": ref_acc,
        "config": cfg.to_dict(),
        "steps_run": 0,
        "identical": False,
        "status": "ok",
        "reason": None,
        "first_divergence": None,
        "per_step": [],
    }
    wanted = range(steps)
    side = executor.call(backend_side, cfg.to_dict(), steps)
    if isinstance(side, Lost):
        side = {"status": "error", "reason": f"backend side: {side.reason}",
                "where": {"step": None, "phase": None, "layer": None, "op": side.op}}
    if "records" not in side:
        report.update(side)
        return report
    recs_b = side["records"]
    try:
        recs_r = capture_training(replace(cfg, accumulate=ref_acc, backend="reference"), wanted, ops=ref)
    except (FloatingPointError, ValueError, RuntimeError) as exc:
        report.update(status="error", reason=f"reference side: {_err(exc)}")
        return report
    fwd_fmt, grad_fmt = cfg.fp8_recipe().fwd_format, cfg.fp8_recipe().grad_format
    layers = _forward_order(cfg)
    for step in wanted:
        rb = [r for r in recs_b if r["step"] == step]
        rr = [r for r in recs_r if r["step"] == step]
        report["per_step"].append(_compare_step(step, layers, rb, rr, fwd_fmt, grad_fmt, report))
        report["steps_run"] = step + 1
    report["identical"] = report["first_divergence"] is None
    return report


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def backend_side(ops: CheckedBackend, config: dict[str, Any], steps: int) -> dict[str, Any]:
    """The backend side of :func:`compare_trainer`, run where the backend runs (this process or its worker):
    ``{"records": ...}`` (``capture_training`` of steps ``0 .. steps-1``), or ``status``, ``reason`` and
    ``where`` when the backend stopped it."""
    from fp8ref.nn import capture_training

    cfg = replace(TrainConfig.from_dict(config), accumulate=None, backend=ops.name)
    try:
        return {"records": capture_training(cfg, range(steps), ops=ops)}
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the backend does is reported
        return _failure(exc, ops.op)


def _failure(exc: BaseException, op: str | None) -> dict[str, Any]:
    where = locate(exc, op)
    at = ", ".join(f"{k} {v}" for k, v in where.items() if v is not None) or "outside the training steps"
    if isinstance(exc, Unsupported):
        what = str(exc)
    elif isinstance(exc, SystemExit):
        what = f"the backend called sys.exit({exc.code!r})"
    elif isinstance(exc, ContractViolation):
        what = f"contract violation: {exc}"
    else:
        what = describe_exception(exc)
    return {"status": "unsupported" if isinstance(exc, Unsupported) else "error",
            "reason": f"backend side, {at}: {what}", "where": where}


def locate(exc: BaseException, op: str | None) -> dict[str, Any]:
    """Where in the training run ``exc`` was raised: ``step`` (the training loop's step), ``phase``
    (``forward``, ``backward``, or ``evaluation`` for a forward pass outside training), ``layer`` (the FP8
    linear layer) and ``op`` (the backend operation in progress), read from the frames of its traceback;
    ``None`` for what the traceback does not show."""
    from fp8ref.nn.fp8 import FP8Linear

    where: dict[str, Any] = {"step": None, "phase": None, "layer": None, "op": op}
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        local = frame.f_locals
        step = local.get("step")
        if str(frame.f_globals.get("__name__", "")).startswith("fp8ref.nn.") and type(step) is int:
            where["step"] = step
        lin = local.get("self")
        if isinstance(lin, FP8Linear):
            where["layer"] = lin.name
            if frame.f_code.co_name in ("forward", "backward"):
                where["phase"] = frame.f_code.co_name if lin.training else "evaluation"
        tb = tb.tb_next
    return where


def _model_name(model: Any) -> str:
    return str(getattr(model, "name", None) or repr(model))


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if np.isfinite(f) else str(f)
    if isinstance(v, (np.integer, int)):
        return int(v)
    return v


def _forward_order(cfg: Any) -> list[str]:
    """The FP8 linear layers of ``cfg``'s model in forward order (backward visits them in reverse)."""
    from fp8ref.nn.train import build_model, load_data

    return list(build_model(cfg, load_data(cfg).vocab_size)[1])


def _compare_step(step: int, order: list[str], rb: list[dict[str, Any]], rr: list[dict[str, Any]],
                  fwd_fmt: Any, grad_fmt: Any, report: dict[str, Any]) -> dict[str, Any]:
    by_b = {r["layer"]: r for r in rb}
    by_r = {r["layer"]: r for r in rr}
    layers = [n for n in order if n in by_b] + sorted(set(by_b) - set(order))
    items: list[tuple[str, str, str, Any, Any, Any]] = []  # (phase, layer, tensor, backend, reference, fmt)
    for phase, order, names in (("forward", layers, _FORWARD), ("backward", layers[::-1], _BACKWARD)):
        for layer in order:
            b, r = by_b[layer], by_r.get(layer, {})
            for t in names:
                if t in b and t in r:
                    fmt = None if t not in _CODES else (fwd_fmt if _CODES[t] == "fwd" else grad_fmt)
                    items.append((phase, layer, t, b[t], r[t], fmt))
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
    return {"step": step, "compared_tensors": len(items), "differing_tensors": n_diff, "max_ulps": max_ulps,
            "first": first_here}


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
        lines.append(f"  step {s['step']}: {s['differing_tensors']}/{s['compared_tensors']} tensor(s) "
                     f"differ, max {s['max_ulps']} ulp"
                     + (f", first: {s['first']}" if s["first"] else ""))
    return "\n".join(lines)
