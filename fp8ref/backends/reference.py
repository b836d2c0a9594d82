"""The ``reference`` backend: fp8ref itself behind the backend protocol.

Every call goes straight to ``fp8ref.quantize`` / ``dequantize`` / ``amax`` / ``scaled_mm`` with the same
arguments, so the reference backend is the specification: the conformance harness must find it 100 % exact.
Its ``scaled_mm`` accepts every ``accumulate=`` the reference accepts; ``None`` means the reference default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.backends.base import A_GRANULARITIES, B_GRANULARITIES, Backend, Capabilities

__all__ = ["ReferenceBackend"]


def _reference_capabilities() -> Capabilities:
    from fp8ref.cast import ROUNDING_MODES
    from fp8ref.formats import formats

    casts = tuple(f.name for f in formats() if f.bits <= 16)  # what fp8ref.quantize encodes
    operands = tuple(f.name for f in formats() if f.bits <= 8 and f.signed)  # scaled_mm operand formats
    outputs = tuple(f.name for f in formats() if f.bits <= 8 and f.signed and f.ml_dtype is not None)
    return Capabilities(
        formats=casts,
        rounding=tuple(ROUNDING_MODES),
        saturate=(False, True),
        ops=("quantize", "dequantize", "amax", "scaled_mm"),
        mm_formats=tuple((a, b) for a in operands for b in operands),
        granularities=tuple((a, b) for a in A_GRANULARITIES for b in B_GRANULARITIES),
        out_dtypes=("float32", "float16", "bfloat16", *outputs),
        accumulation="exact",
        accumulation_selectable=True,
        device="cpu",
        deviations=(),
    )


class ReferenceBackend(Backend):
    """fp8ref's own implementation: the specification every other backend is compared against."""

    name = "reference"

    def __init__(self) -> None:
        self.capabilities = _reference_capabilities()

    def quantize(self, x: Any, fmt: Any, *, rounding: str = "nearest_even", saturate: bool = True,
                 srbits: Any = None, srnumbits: int | None = None, seed: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        from fp8ref.cast import quantize

        return quantize(x, fmt, rounding=rounding, saturate=saturate, srbits=srbits, srnumbits=srnumbits,
                        seed=seed, out=out)

    def dequantize(self, codes: Any, fmt: Any, *, dtype: Any = np.float32) -> np.ndarray:
        from fp8ref.cast import dequantize

        return dequantize(codes, fmt, dtype=dtype)

    def amax(self, x: Any, axis: Any = None, *, nan: str = "propagate") -> Any:
        from fp8ref.scaling import amax

        return amax(x, axis=axis, nan=nan)

    def tensor_core_gemm(self, gpu: str, instruction: str, in_format: Any, in_format_b: Any, out_format: Any,
                         a: Any, b: Any, c: Any, *, scale_a: Any = None, scale_b: Any = None,
                         block_size: int | None = None, scale_format: Any = None) -> np.ndarray:
        """One chain of ``instruction`` along K per output (the golden suite ``tensorcore``):
        ``fp8ref.accum.tensor_core(...).gemm`` on float values, the result as float32 (float64 for the fp64
        instructions)."""
        from fp8ref import accum

        m = accum.tensor_core_pair(gpu, in_format, in_format_b, out_format, instruction=instruction,
                                   block_size=block_size, scale_format=scale_format)
        kw = {} if scale_a is None else {"scale_a": np.asarray(scale_a, np.float64),
                                         "scale_b": np.asarray(scale_b, np.float64)}
        d = m.gemm(np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(c, np.float64), **kw)
        return np.asarray(d, dtype=np.float64 if m.out_format.bits == 64 else np.float32)

    def scaled_mm(self, a: Any, b: Any, scale_a: Any = 1.0, scale_b: Any = 1.0, *, a_format: Any = "E4M3",
                  b_format: Any = "E4M3", bias: Any = None, out_dtype: Any = np.float32,
                  scale_result: Any = None, accumulate: Any = None, strict_torch: bool = False) -> np.ndarray:
        from fp8ref.matmul import scaled_mm

        return scaled_mm(a, b, scale_a, scale_b, a_format=a_format, b_format=b_format, bias=bias,
                         out_dtype=out_dtype, scale_result=scale_result,
                         accumulate="exact" if accumulate is None else accumulate, strict_torch=strict_torch)
