"""The ``trainer`` suite: each FP8 linear layer's tensors captured from an FP8 training run.

The capture run is fp8ref's ``tiny`` training configuration with the paper's ``fp8-amax`` recipe, shortened
to :data:`CAPTURE` (batch size 1 and 40 steps instead of 16 and 400, so that a case is tens of kilobytes
and the run takes seconds). At the first, the middle and the last step, for every FP8 linear layer, a case
``trainer/step<k>/<layer>`` stores the layer's input activation ``x``, weight ``w`` and output gradient
``dy`` (inputs) and what the FP8 layer computes from them (outputs): the codes ``x_codes``, ``w_codes``,
``g_codes``, the scaling biases ``bias_x``, ``bias_w``, ``bias_g`` and the three GEMM outputs ``y``
(without the layer's bias), ``dx`` and ``dw``.

Op ``trainer_linear`` recomputes the outputs from ``x``, ``w``, ``dy`` with a fresh
``fp8ref.nn.fp8.FP8Linear`` of the run's recipe (``fp8-amax`` is stateless: each tensor's bias comes from
its own amax), so verification is exact on every machine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.golden.case import Case, Result

Arrays = dict[str, np.ndarray]

__all__ = ["OPS", "BACKEND_OPS", "build", "CAPTURE", "capture_steps"]

#: overrides of the ``tiny`` preset for the capture run
CAPTURE: dict[str, Any] = {"recipe": "fp8-amax", "batch_size": 1, "steps": 40, "warmup": 4,
                           "eval_every": 1000, "checkpoint_every": 1000}


def capture_steps(steps: int) -> tuple[int, int, int]:
    return (0, steps // 2, steps - 1)


def _config(params: dict[str, Any]) -> Any:
    from fp8ref.nn.config import TrainConfig

    return TrainConfig.from_dict(params["config"])


def _run_layer(params: dict[str, Any], inputs: Arrays, ops: Any = None) -> tuple[Arrays, dict[str, str]]:
    from fp8ref.nn.fp8 import FP8Linear

    recipe = _config(params).fp8_recipe()
    lin = FP8Linear(params["layer"], recipe, ops)
    lin.capture = []
    _, cache = lin.forward(params["layer"], inputs["x"], inputs["w"], None)
    lin.backward(params["layer"], inputs["dy"], cache)
    rec = lin.capture[0]
    return _outputs(rec, recipe)


def _outputs(rec: dict[str, Any], recipe: Any) -> tuple[Arrays, dict[str, str]]:
    out = {"x_codes": np.asarray(rec["x_codes"], np.uint8), "w_codes": np.asarray(rec["w_codes"], np.uint8),
           "g_codes": np.asarray(rec["g_codes"], np.uint8),
           "bias_x": np.asarray(rec["bias_x"], np.int32), "bias_w": np.asarray(rec["bias_w"], np.int32),
           "bias_g": np.asarray(rec["bias_g"], np.int32),
           "y": np.asarray(rec["y"], np.float32), "dx": np.asarray(rec["dx"], np.float32),
           "dw": np.asarray(rec["dw"], np.float32)}
    fwd, grad = recipe.fwd_format.name, recipe.grad_format.name
    return out, {"x_codes": fwd, "w_codes": fwd, "g_codes": grad}


def _ref(params: dict[str, Any], inputs: Arrays) -> Result:
    out, fmts = _run_layer(params, inputs)
    return Result(out, fmts)


def _be(backend: Any, params: dict[str, Any], inputs: Arrays) -> Arrays:
    """The layer with the backend as its ops object (its amax, quantize and scaled_mm)."""
    ops = backend if backend.capabilities.accumulation_selectable else _OwnAccumulation(backend)
    return _run_layer(params, inputs, ops)[0]


class _OwnAccumulation:
    """Calls the backend's ``scaled_mm`` with ``accumulate=None`` (its own accumulation)."""

    def __init__(self, backend: Any) -> None:
        self.b = backend

    def quantize(self, *a: Any, **k: Any) -> Any:
        return self.b.quantize(*a, **k)

    def dequantize(self, *a: Any, **k: Any) -> Any:
        return self.b.dequantize(*a, **k)

    def amax(self, *a: Any, **k: Any) -> Any:
        return self.b.amax(*a, **k)

    def scaled_mm(self, *a: Any, **k: Any) -> Any:
        k["accumulate"] = None
        return self.b.scaled_mm(*a, **k)


OPS = {"trainer_linear": _ref}


def check_sizes(op: str, params: dict[str, Any], tensors: dict[str, dict[str, Any]]) -> None:
    """The configuration's ``delayed_history`` sizes the layer's amax histories: at most
    ``MAX_HISTORY_LEN``."""
    from fp8ref.golden.manifest import MAX_HISTORY_LEN
    from fp8ref.golden.ops import check_count

    cfg = params.get("config")
    if isinstance(cfg, dict) and "delayed_history" in cfg:
        check_count(cfg["delayed_history"], "params.config.delayed_history", 1, MAX_HISTORY_LEN)
BACKEND_OPS = {"trainer_linear": _be}


def capture(overrides: dict[str, Any] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Run the capture training (``fp8ref.nn.capture.capture_training``); returns (config, records)."""
    from fp8ref.nn.capture import capture_training
    from fp8ref.nn.config import TrainConfig

    cfg = TrainConfig.from_preset("tiny", **{**CAPTURE, **(overrides or {})})
    return cfg, capture_training(cfg, capture_steps(cfg.steps))


def build() -> list[Case]:
    cfg, records = capture()
    recipe = cfg.fp8_recipe()
    cases = []
    for rec in records:
        step, name = int(rec["step"]), rec["layer"]
        params = {"step": step, "layer": name, "x_format": recipe.fwd_format.name,
                  "w_format": recipe.fwd_format.name, "g_format": recipe.grad_format.name,
                  "accumulate": recipe.accumulate, "margin_g": recipe.grad_margin, "config": cfg.to_dict()}
        inputs = {"x": np.asarray(rec["x"], np.float32), "w": np.asarray(rec["w"], np.float32),
                  "dy": np.asarray(rec["dy"], np.float32)}
        cases.append(Case(f"trainer/step{step:03d}/{name}", "trainer_linear", params, inputs))
    return cases
