"""``scaled_mm``: the FP8 scaled matrix product with ``torch._scaled_mm`` semantics (docs/matmul.md).

The entry: the arguments are checked and normalised by :func:`fp8ref.matmul.args.parse`, then
``accumulate="exact"`` runs the exact strategies of :mod:`fp8ref.matmul.exact` and an accumulation model of
:mod:`fp8ref.accum` the model epilogue of :mod:`fp8ref.matmul.models`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.formats import E4M3
from fp8ref.matmul.args import parse
from fp8ref.matmul.exact import exact_mm


def scaled_mm(a: Any, b: Any, scale_a: Any = 1.0, scale_b: Any = 1.0, *, a_format: Any = E4M3,
              b_format: Any = E4M3, bias: Any = None, out_dtype: Any = np.float32, scale_result: Any = None,
              accumulate: Any = "exact", strict_torch: bool = False) -> np.ndarray:
    """``out = round_out((sum_k a[i,k]*sa(i,k) * b[k,j]*sb(k,j) + bias[j]) / scale_result)``.

    ``a`` (M, K) and ``b`` (K, N): uint8 codes of ``a_format`` / ``b_format``, ml_dtypes FP8 arrays (format
    from the dtype) or ScaledTensors (format and scales from them; ``scale_a`` / ``scale_b`` then stay at
    their default). ``scale_a`` / ``scale_b``: float32 dequantisation multipliers, tensorwise (scalar),
    rowwise ((M, 1) / (1, N)), 1x128 / 128x128 blocks or 1x32 (MX, E8M0 allowed) blocks along K.
    ``out_dtype``: float32, float16, bfloat16 or an FP8 format (returned as the ml_dtypes FP8 array;
    ``scale_result`` divides before that final cast). ``accumulate``: ``"exact"`` (exact sum, scales, bias
    and quotient, one rounding), or an accumulation model of :mod:`fp8ref.accum` (a name such as ``"fp32"``
    or ``"h100-fp8"``, or a model object) whose accumulator values go through the fp32 epilogue of
    docs/matmul.md. ``strict_torch=True`` enforces torch's restrictions with torch's messages.
    """
    args = parse(a, b, scale_a, scale_b, a_format=a_format, b_format=b_format, bias=bias, out_dtype=out_dtype,
                 scale_result=scale_result, strict_torch=strict_torch)
    if isinstance(accumulate, str) and accumulate == "exact":
        return exact_mm(args)
    from fp8ref.matmul.models import model_mm, resolve_model

    return model_mm(resolve_model(accumulate, args.a.fmt, args.b.fmt), args)
