"""One optimizer step, in the paired style of the model's ops: forward, backward, update.

:func:`step_forward` runs the model on a batch and returns the loss and the forward result (the cache of
the backward pass); :func:`step_backward` turns it into unscaled gradients and their global norm;
:func:`step_update` clips and applies them. :func:`train_step` composes the three with loss scaling
(:class:`LossScaler`): the loss gradient is multiplied by the scale and every parameter gradient divided by
it; under dynamic scaling a step with non-finite gradients is skipped and the scale halved, and 200
consecutive good steps double it. A non-finite loss, or non-finite gradients without dynamic scaling,
raise :class:`~fp8ref.nn.fp8.NonFiniteError` naming the first non-finite tensor (the training loop turns it
into ``TrainingDiverged`` with the step and the last checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fp8ref.nn.fp8 import NonFiniteError
from fp8ref.nn.model import ForwardResult, Model, first_nonfinite
from fp8ref.nn.optim import AdamW, clip_grads, global_norm

LOSS_SCALE_GROWTH = 200  # dynamic loss scaling: double after this many overflow-free steps
LOSS_SCALE_MAX = 2.0**24


@dataclass
class LossScaler:
    """Loss-scaling state: ``mode`` ``"none"``, ``"static"`` or ``"dynamic"``, the current ``scale`` and,
    for dynamic scaling, the number of overflow-free steps since it last changed."""

    mode: str
    scale: float
    good_steps: int = 0

    def after_step(self, finite: bool) -> None:
        """Advance dynamic scaling after a step whose gradients were (not) finite: a non-finite step halves
        the scale (not below 1); the ``LOSS_SCALE_GROWTH``-th good step in a row doubles it (not above
        ``LOSS_SCALE_MAX``). Static and no scaling keep their scale."""
        if self.mode != "dynamic":
            return
        if not finite:
            self.scale, self.good_steps = max(1.0, self.scale / 2), 0
            return
        self.good_steps += 1
        if self.good_steps == LOSS_SCALE_GROWTH:
            self.scale, self.good_steps = min(self.scale * 2, LOSS_SCALE_MAX), 0


@dataclass(frozen=True)
class StepResult:
    """What :func:`train_step` did: the batch's loss, the learning rate, the gradient norm before clipping
    (``None`` for a skipped step) and whether the update was skipped."""

    loss: float
    lr: float
    grad_norm: float | None
    skipped: bool


def step_forward(
    model: Model, params: dict[str, np.ndarray], idx: np.ndarray, targets: np.ndarray
) -> tuple[float, ForwardResult]:
    """idx, targets [B, T] -> (loss, forward result). Raises :class:`NonFiniteError` naming the first
    non-finite tensor (an FP8 layer's input, or a float32 op's output) when the loss is not finite."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        fw = model.forward(params, idx, targets)  # an FP8 cast of a non-finite tensor raises here
    loss = float(fw.loss)
    if not math.isfinite(loss):
        raise NonFiniteError(first_nonfinite(fw.trace) or "the loss")
    return loss, fw


def step_backward(
    model: Model, params: dict[str, np.ndarray], fw: ForwardResult, loss_scale: float = 1.0
) -> tuple[dict[str, np.ndarray], float, str | None]:
    """The gradients of the loss (computed for ``loss_scale * loss``, then divided by ``loss_scale`` in
    float32), their global norm, and the first non-finite tensor (``None`` when every gradient is finite)."""
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            grads = model.backward(params, fw, dloss=loss_scale)
    except NonFiniteError as exc:  # an FP8 cast of a non-finite output gradient
        return {}, math.nan, exc.where
    if loss_scale != 1.0:
        inv = np.float32(1.0 / loss_scale)
        for g in grads.values():
            g *= inv
    norm = global_norm(grads)
    if math.isfinite(norm):
        return grads, norm, None
    bad = next((f"gradient of {k}" for k, g in grads.items() if not np.isfinite(g).all()), "a gradient")
    return grads, norm, bad


def step_update(
    opt: AdamW,
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    norm: float,
    lr: float,
    clip: float,
) -> None:
    """Clip the gradients to the global norm ``clip`` and take one AdamW step at learning rate ``lr``."""
    clip_grads(grads, clip, norm)
    opt.step(params, grads, lr)


def train_step(
    model: Model,
    params: dict[str, np.ndarray],
    opt: AdamW,
    scaler: LossScaler,
    batch: tuple[np.ndarray, np.ndarray],
    lr: float,
    clip: float,
) -> StepResult:
    """Forward, backward and update on one batch (see the module docstring)."""
    loss, fw = step_forward(model, params, *batch)
    grads, norm, bad = step_backward(model, params, fw, scaler.scale)
    if bad is not None:
        if scaler.mode != "dynamic":
            raise NonFiniteError(bad)
        scaler.after_step(finite=False)
        return StepResult(loss=loss, lr=lr, grad_norm=None, skipped=True)
    step_update(opt, params, grads, norm, lr, clip)
    scaler.after_step(finite=True)
    return StepResult(loss=loss, lr=lr, grad_norm=norm, skipped=False)
