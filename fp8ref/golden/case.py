"""A golden case: one operation, its parameters, input tensors, and the outputs the reference computes.

Tensors in memory are NumPy arrays: FP8 (and E8M0) tensors are ``np.uint8`` codes with their format named
in ``formats``; bfloat16 tensors are ``ml_dtypes.bfloat16`` arrays (stored as ``BF16``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fp8ref.golden.stfile import Tensor

__all__ = ["Case", "Result", "storage_dtype", "from_storage"]


@dataclass(frozen=True)
class Result:
    """What an op computes: output arrays and the 8-bit format of any code arrays among them."""

    outputs: dict[str, np.ndarray]
    formats: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One case of a suite. ``id`` is ``<suite>/<name>``; the tensor file is ``<id>.safetensors``."""

    id: str
    op: str
    params: dict[str, Any]
    inputs: dict[str, np.ndarray]
    formats: dict[str, str] = field(default_factory=dict)

    @property
    def suite(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def file(self) -> str:
        return self.id + ".safetensors"


def storage_dtype(arr: np.ndarray, fmt: str | None) -> str:
    """The safetensors dtype a tensor is stored with."""
    from fp8ref.golden.stfile import _dtype_of

    return _dtype_of("tensor", np.asarray(arr), fmt)[0]


def from_storage(t: Tensor) -> np.ndarray:
    """The in-memory array of a tensor read from a file (BF16 bits become ``ml_dtypes.bfloat16``)."""
    if t.dtype == "BF16":
        import ml_dtypes

        return t.data.view(ml_dtypes.bfloat16)
    return t.data
