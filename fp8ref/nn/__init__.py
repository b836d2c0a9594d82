"""A small NumPy GPT trainer with the paper's FP8 linear layers (``fp8ref train`` / ``fp8ref infer``).

Decoder-only GPT in float32 with hand-written forward/backward pairs (:mod:`fp8ref.nn.ops`,
:mod:`fp8ref.nn.model`), AdamW with gradient clipping and a warm-up + cosine schedule
(:mod:`fp8ref.nn.optim`), and the FP8 linear layer of Perez et al. 2023 (:mod:`fp8ref.nn.fp8`):
forward ``X8 (E4M3) @ W8 (E4M3)``, backward ``dX = G8 (E5M2) @ W8^T`` and ``dW = X8^T @ G8`` reusing ``X8``
and ``W8``, per-tensor scaling biases from a recipe (``fp8-amax``, ``fp8-cscale``, ``fp8-delayed``,
``fp8-current``), biases and everything outside the chosen linear layers in float32. docs/trainer.md is the
full description.

Public API::

    from fp8ref.nn import TrainConfig, train, capture_training

    cfg = TrainConfig.from_preset("tiny", recipe="fp8-amax", steps=200)
    result = train(cfg, "runs/amax")          # run folder: config.json, metrics.jsonl, checkpoints, ...
    result.summary["final_val_loss"]

``TrainConfig``
    frozen dataclass of everything that determines a run; ``from_preset("tiny"|"small", **overrides)``,
    ``with_recipe("fp8-cscale:6")``, ``to_json`` / ``from_dict``.
``train(cfg, out, *, ops=None, resume=False, progress=False, threads=1) -> RunResult``
    train one recipe into the run folder ``out`` (``resume=True`` continues from its latest checkpoint,
    bit-identically). ``ops`` is the object the FP8 layers call -- ``quantize(x, fmt, rounding=, saturate=)``,
    ``dequantize(codes, fmt, dtype=)``, ``amax(x)``, ``scaled_mm(a, b, scale_a, scale_b, a_format=,
    b_format=, out_dtype=, accumulate=)`` -- :class:`ReferenceOps` by default, or a backend of
    ``fp8ref.backends``. Raises :class:`TrainingDiverged` on a NaN/Inf loss or gradient.
``train_step(model, params, opt, scaler, batch, lr, clip) -> StepResult``
    one optimizer step (forward, backward, update; :mod:`fp8ref.nn.step`), the body of ``train``'s loop.
``RunFolder(path)``
    a run folder's files (:mod:`fp8ref.nn.runfolder`): ``create`` (whole or nothing; refuses a folder that
    holds a run), ``open``, the logs, checkpoints, summary; files are read as hostile input.
``capture_training(cfg, steps, *, ops=None) -> list[dict]``
    train ``cfg`` in memory up to ``max(steps)`` and record, at each step in ``steps``, every FP8 linear
    layer's forward and backward (see below).
``evaluate_ptq(checkpoint, biases=range(-8, 17), ...) -> dict``
    post-training FP8 quantisation of a trained checkpoint: fp32, AMAX and a CSCALE sweep
    (``fp8ref infer``).

Capture records (one dict per FP8 layer per captured step, in forward order; arrays are copies)::

    step, layer                 int, layer name such as "h.0.attn.qkv"
    recipe, formats, accumulate recipe name, (E4M3 format name, E5M2 format name), accumulate= passed
    x, w, dy                    float32 [N, K], [K, M], [N, M]: the layer's input, weight, output gradient
    x_codes, w_codes, g_codes   uint8 codes of X8, W8 (forward format) and G8 (gradient format)
    bias_x, bias_w, bias_g      the scaling biases (int; a float -log2(scale) for non-power-of-two scales)
    scale_x, scale_w, scale_g   float32 dequantisation multipliers (2**-bias)
    y                           float32 [N, M] = scaled_mm(X8, W8, scale_x, scale_w)   (before the bias add)
    dx                          float32 [N, K] = scaled_mm(G8, W8^T, scale_g, scale_w)
    dw                          float32 [K, M] = scaled_mm(X8^T, G8, scale_x, scale_g)

The step-``s`` record is taken during optimizer step ``s`` (0-based), i.e. with the weights after ``s``
updates -- the same forward/backward whose loss is line ``s`` of ``metrics.jsonl``.
"""

from __future__ import annotations

from fp8ref.nn.capture import capture_training
from fp8ref.nn.checkpoint import CheckpointError
from fp8ref.nn.config import PRESETS, TrainConfig, parse_recipe
from fp8ref.nn.fp8 import FP8Linear, FP8Recipe, NonFiniteError, ReferenceOps
from fp8ref.nn.infer import evaluate_ptq
from fp8ref.nn.model import GPTConfig, Model, init_params
from fp8ref.nn.runfolder import RunFolder
from fp8ref.nn.step import train_step
from fp8ref.nn.train import RunResult, TrainingDiverged, load_params, read_metrics, train

__all__ = [
    "TrainConfig",
    "PRESETS",
    "parse_recipe",
    "train",
    "train_step",
    "RunFolder",
    "RunResult",
    "TrainingDiverged",
    "CheckpointError",
    "capture_training",
    "evaluate_ptq",
    "FP8Linear",
    "FP8Recipe",
    "ReferenceOps",
    "NonFiniteError",
    "GPTConfig",
    "Model",
    "init_params",
    "load_params",
    "read_metrics",
]
