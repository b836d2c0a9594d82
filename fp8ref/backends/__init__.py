"""Plug-in backends: any implementation of the FP8 operations, compared against the reference.

A backend (:class:`Backend`) has a ``name``, ``capabilities`` (:class:`Capabilities`) and the four operations
``quantize``, ``dequantize``, ``amax`` and ``scaled_mm`` with the reference's signatures and semantics. What
it cannot do it refuses with :class:`Unsupported` (the conformance harness reports such cases as skipped).

>>> from fp8ref import backends
>>> be = backends.get("reference")
>>> "reference" in backends.available()
True

Built-in backends (docs/backends.md has their exact behaviour and known deviations):

``reference``
    fp8ref itself (the specification).
``ml_dtypes``
    casts only, through ``ml_dtypes`` ``astype``, exactly as a user of ml_dtypes gets them.
``torch-cpu``, ``torch-cpu-fastaccum``, ``torch-cuda``, ``torch-cuda-fastaccum``
    casts through torch's float8 dtypes and ``scaled_mm`` through ``torch._scaled_mm`` with
    ``use_fast_accum=False`` / ``True``. Need the optional ``torch`` extra (and a CUDA device of compute
    capability >= 8.9 for ``torch-cuda*``); without it they are listed as unavailable, with the reason.

Third-party backends register through the entry-point group ``fp8ref.backends`` (see
:mod:`fp8ref.backends.registry`); ``fp8ref backends`` lists every backend and its capabilities.
:func:`fp8ref.conform.trainer.compare_trainer` runs the trainer on a backend and on the reference
side by side.
"""

from __future__ import annotations

from fp8ref.backends.base import (
    A_GRANULARITIES,
    B_GRANULARITIES,
    GRANULARITIES,
    OPS,
    Backend,
    BackendUnavailable,
    Capabilities,
    Unsupported,
    dtype_name,
    scale_granularity,
)
from fp8ref.backends.registry import (
    BUILTINS,
    ENTRY_POINT_GROUP,
    BackendInfo,
    available,
    describe,
    get,
    names,
    register,
    reset,
    unregister,
)

__all__ = [
    "Backend",
    "BackendInfo",
    "BackendUnavailable",
    "Capabilities",
    "Unsupported",
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "A_GRANULARITIES",
    "B_GRANULARITIES",
    "GRANULARITIES",
    "OPS",
    "available",
    "describe",
    "dtype_name",
    "get",
    "names",
    "register",
    "reset",
    "scale_granularity",
    "unregister",
]
