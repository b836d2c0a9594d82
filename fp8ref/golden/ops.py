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

__all__ = ["SUITES", "OPTIONAL_SUITES", "ALL_SUITES", "suite_module", "compute", "op_suite"]

#: suite names in generation order: the default set (golden/)
SUITES: tuple[str, ...] = ("casts", "scaling", "matmul", "trainer")
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
