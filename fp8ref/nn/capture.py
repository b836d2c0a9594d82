"""Capture API: the FP8 linear layers' inputs, codes, biases and GEMM outputs at chosen training steps.

:func:`capture_training` is the source of the trainer's golden vectors; the record layout is in the
``fp8ref.nn`` package docstring.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fp8ref.nn.config import TrainConfig
from fp8ref.nn.threads import limited_threads


def capture_training(
    config: TrainConfig, steps: Iterable[int], *, ops: Any = None, threads: int = 1
) -> list[dict[str, Any]]:
    """Train ``config`` (an FP8 recipe) up to step ``max(steps)`` and return, for every step in ``steps``
    and every FP8 linear layer in forward order, the record of its forward and backward pass.

    The run is the same as ``train(config, ...)`` up to that step (same batches, same schedule), so the
    records reproduce what a full run computes; nothing is written outside a temporary folder.
    """
    from fp8ref.nn.train import _train

    if config.recipe == "fp32":
        raise ValueError("capture_training needs an FP8 recipe; config.recipe is 'fp32'")
    wanted = sorted({int(s) for s in steps})
    if not wanted:
        raise ValueError("steps must name at least one step")
    if wanted[0] < 0 or wanted[-1] >= config.steps:
        raise ValueError(
            f"steps must lie in [0, {config.steps - 1}] (config.steps = {config.steps}), got {wanted}"
        )
    sinks: dict[int, list[dict[str, Any]]] = {s: [] for s in wanted}
    with tempfile.TemporaryDirectory(prefix="fp8ref-capture-") as tmp, limited_threads(threads, numba=True):
        _train(
            config,
            Path(tmp),
            ops=ops,
            resume=False,
            progress=False,
            desc=None,
            capture=sinks,
            stop_after=wanted[-1] + 1,
        )
    out: list[dict[str, Any]] = []
    for s in wanted:
        for rec in sinks[s]:
            out.append({"step": s, **rec})
    return out
