"""Accumulation models of dot products: exact, sequential, and NVIDIA tensor-core block FMAs.

Public API (docs/accumulation.md is the specification)::

    BlockFMA(nfma, frac_bits, out_frac_bits=23, rounding="rz", e_floor=None,
             in_format=E4M3, out_format=FP32, in_format_b=None)     # one MMA dot-product path
    Promoted(inner: BlockFMA, every=128, acc_format=FP32)            # fp32 promotion every `every` K-elements
    Sequential(acc_format=FP32, in_format=E4M3)                      # acc = RN_acc(acc + a_k*b_k), k order
    Exact(out_format=FP32, in_format=E4M3)                           # one rounding of the exact sum
    tensor_core(gpu, in_format, out_format="fp32", *, instruction=None, block_size=None,
                scale_format=None) -> BlockFMA | BlockScaled | Mfma   # GPUS; instructions(gpu)
                                # MI100 MI250X MI300X -> Mfma (instruction "mfma", docs/accumulation.md §10)
    get(name) / PRESETS                                              # "exact", "fp32", "fp16", "bf16",
                                                                     # "h100-fp8", "h100-fp8-fastaccum", ...
    infer(dot_fn, in_format, ...) -> Inference                      # black-box parameter inference

Every model is a frozen dataclass with ``name``, ``describe()``, ``for_inputs(a_format, b_format)``,
``.dot(a, b, c=0.0) -> float`` (1-D arrays of values exactly representable in the input format(s), ``c`` a
value of the accumulator format), ``.gemm(A, B, C=None) -> np.ndarray`` ((M, K) @ (K, N) float64, ``C``
(M, N) or broadcastable), and ``.dot_exact`` (the slow exact implementation of the same rule). The results
are float64 arrays holding values of the model's output format. ``.gemm`` runs Numba kernels (compiled on
first use; nothing compiles at import).

Callers with operands of other formats (e.g. E4M3 x E5M2) use ``model.for_inputs(E4M3, E5M2)``: the formats
matter for subnormal operands, which are aligned with the exponent ``emin`` of their format.
"""

from __future__ import annotations

from typing import Any

from fp8ref.accum.amd import Mfma
from fp8ref.accum.blockscaled import BlockScaled
from fp8ref.accum.models import BlockFMA, Exact, Model, Promoted, Sequential
from fp8ref.accum.presets import (
    GPUS,
    IN_FORMATS,
    PRESETS,
    block_scaled,
    get,
    instructions,
    tensor_core,
    tensor_core_pair,
)
from fp8ref.accum.rows import INSTRUCTIONS

__all__ = ["BlockFMA", "Mfma", "Promoted", "Sequential", "Exact", "BlockScaled", "Model", "tensor_core",
           "tensor_core_pair", "get", "PRESETS", "GPUS", "IN_FORMATS", "INSTRUCTIONS", "instructions",
           "block_scaled", "infer", "Inference", "resolve"]


def resolve(model: Any) -> Model:
    """A model object from a preset name or a model (``scaled_mm(accumulate=...)`` accepts both)."""
    if isinstance(model, (BlockFMA, Promoted, Sequential, Exact, BlockScaled, Mfma)):
        return model
    if isinstance(model, str):
        return get(model)
    raise TypeError(f"accumulation model must be a preset name or a model object, got {type(model).__name__}")


def __getattr__(name: str) -> Any:
    if name in ("infer", "Inference"):
        from fp8ref.accum import probes

        return getattr(probes, name)
    raise AttributeError(f"module 'fp8ref.accum' has no attribute {name!r}")
