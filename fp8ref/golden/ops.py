"""Reference computations of every golden op, keyed by op name.

``compute(op, params, inputs)`` is what ``fp8ref golden generate`` stores and what ``verify`` recomputes.
The ops live with their suite (``fp8ref.golden.suites.<suite>``): each suite module has ``OPS`` (op name ->
reference function), ``BACKEND_OPS`` (op name -> function running the op on a backend) and ``build()``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from fp8ref.golden.case import Result

__all__ = ["SUITES", "OPTIONAL_SUITES", "ALL_SUITES", "suite_module", "compute", "op_suite",
           "check_sizes"]

#: suite names in generation order: the default set (golden/)
SUITES: tuple[str, ...] = ("casts", "scaling", "matmul", "trainer", "tensorcore", "mx", "nvfp4")
#: suites generated only when asked for (``--suite``): their inputs need an optional package
OPTIONAL_SUITES: tuple[str, ...] = ("minilm",)
ALL_SUITES: tuple[str, ...] = SUITES + OPTIONAL_SUITES


def suite_module(suite: str) -> Any:
    if suite not in ALL_SUITES:
        raise ValueError(f"unknown suite {suite!r}; valid suites: {', '.join(ALL_SUITES)}")
    return importlib.import_module(f"fp8ref.golden.suites.{suite}")


def op_suite(op: str) -> str:
    """The suite that defines op ``op``."""
    known: list[str] = []
    for s in ALL_SUITES:
        ops = suite_module(s).OPS
        if op in ops:
            return s
        known += ops
    raise ValueError(f"unknown golden op {op!r}; known ops: {', '.join(known)}")


def compute(op: str, params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    """Run op ``op`` with the reference implementation."""
    fn: Callable[[dict[str, Any], dict[str, np.ndarray]], Result] = suite_module(op_suite(op)).OPS[op]
    return fn(params, inputs)


def check_sizes(op: str, params: dict[str, Any], tensors: dict[str, dict[str, Any]]) -> None:
    """Refuse (``ValueError``) parameters of a case that would make the reference allocate more than the
    limits of docs/golden-format.md section 7 (every other allocation is bounded by the case's tensors).
    ``tensors`` is the manifest's declaration. An unknown op passes here; :func:`compute` reports it."""
    try:
        suite = op_suite(op)
    except ValueError:
        return
    fn = getattr(suite_module(suite), "check_sizes", None)
    if fn is not None:
        fn(op, params, tensors)


def check_count(value: Any, name: str, lo: int, hi: int) -> int:
    """``value`` as an int in ``[lo, hi]``; ``ValueError`` naming ``name`` otherwise."""
    if type(value) is not int or not lo <= value <= hi:
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value!r}"[:300])
    return value
