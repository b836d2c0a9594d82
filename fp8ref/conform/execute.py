"""Running one case on a backend: what came back (:class:`Outcome`), in this process (:class:`InProcess`).

:func:`run_case` is the one place that calls a suite's backend runner; an executor (:class:`InProcess`, or
:class:`~fp8ref.conform.isolate.Isolated` in a worker process) calls it, as every function that needs the
backend: ``executor.call(run_case, suite, op, params, inputs)``. The backend is wrapped in a
:class:`~fp8ref.conform.contract.CheckedBackend`, so that every result is checked against its operation's
contract before the runner converts it. What a call can end in:

``ok``         the runner's outputs
``skipped``    the backend raised :class:`fp8ref.backends.Unsupported` (its reason)
``violation``  a result broke its contract (:class:`~fp8ref.conform.contract.ContractViolation`)
``error``      any other exception, or (isolated) the backend process died or ran out of time
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fp8ref.backends.base import Unsupported
from fp8ref.conform.contract import CheckedBackend, ContractViolation
from fp8ref.golden.ops import suite_module

__all__ = ["Outcome", "Lost", "run_case", "InProcess", "describe_exception", "during"]

#: longest exception text kept in a reason (a backend's message can be anything)
MAX_REASON = 500


@dataclass(frozen=True)
class Outcome:
    kind: str  # "ok", "skipped", "violation", "error"
    outputs: dict[str, np.ndarray] | None = None
    reason: str = ""


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, at most :data:`MAX_REASON` characters."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 3] + "..."


def during(op: str | None) -> str:
    return f"during op {op}" if op else "while no backend operation was running"


def run_case(checked: CheckedBackend, suite: str, op: str, params: dict[str, Any],
             inputs: dict[str, np.ndarray]) -> Outcome:
    """Run one case's backend runner on ``checked``. Exceptions become outcomes; ``SystemExit`` and
    ``KeyboardInterrupt`` pass (the caller decides what they mean)."""
    runner = suite_module(suite).BACKEND_OPS[op]
    checked.op = None
    try:
        with np.errstate(all="ignore"):
            outputs = runner(checked, params, inputs)
    except Unsupported as exc:
        return Outcome("skipped", reason=" ".join(str(getattr(exc, "reason", exc)).split()))
    except ContractViolation as exc:
        return Outcome("violation", reason=f"contract violation: {exc}")
    except Exception as exc:  # noqa: BLE001 - a failing backend is a finding, not a crash
        return Outcome("error", reason=f"{describe_exception(exc)} ({during(checked.op)})")
    return Outcome("ok", {str(k): _plain(v) for k, v in outputs.items()})


def _plain(v: Any) -> np.ndarray:
    """A plain ndarray (no subclass, no object dtype) that pickles and compares as data."""
    arr = np.array(v, copy=True, subok=False)
    if arr.dtype.hasobject:
        raise TypeError(f"output of dtype {arr.dtype}")
    return arr


@dataclass(frozen=True)
class Lost:
    """A call that ended without a result: the backend's process exited, crashed or ran out of time, or
    (in this process) the backend called ``sys.exit``. ``op`` is the operation it was in."""

    reason: str
    op: str | None = None


class InProcess:
    """Runs the backend's calls in this process: fast, but a backend that exits, crashes or hangs takes the
    harness with it (``sys.exit`` is caught and reported). For the built-in backends.

    ``call(fn, *args)`` is ``fn(CheckedBackend(backend), *args)``, or :class:`Lost` when the backend called
    ``sys.exit``; :class:`~fp8ref.conform.isolate.Isolated` has the same interface.
    """

    isolated = False
    timeout = None

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name: str = backend.name
        self.capabilities = backend.capabilities

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        checked = CheckedBackend(self.backend)
        try:
            return fn(checked, *args)
        except SystemExit as exc:
            return Lost(f"backend called sys.exit({exc.code!r}) {during(checked.op)}", checked.op)

    def close(self) -> None:
        pass
