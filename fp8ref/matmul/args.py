"""The one argument parser of ``scaled_mm``: :func:`fp8ref.scaled_mm` and every peer that takes the same
arguments (the torch backend's ``prepare_scaled_mm``) check and normalise them here, so that bad input gives
the same error everywhere (docs/matmul.md §1, §4)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.matmul import inputs as inp
from fp8ref.matmul.strict import check_torch


def parse(a: Any, b: Any, scale_a: Any, scale_b: Any, *, a_format: Any, b_format: Any, bias: Any,
          out_dtype: Any, scale_result: Any, strict_torch: bool = False,
          torch_restrictions: bool | None = None) -> inp.Args:
    """Check and normalise the arguments of ``scaled_mm``, in this order: the operands, their shapes, the
    scales, ``out_dtype``, torch's CUDA restrictions (``torch_restrictions``, default ``strict_torch``:
    :func:`fp8ref.matmul.strict.check_torch`), the bias, ``scale_result``. ``strict_torch``: torch's
    message for operands that cannot be multiplied, and ``scale_result`` ignored for a wide output (as torch
    does) instead of refused."""
    opa = inp.operand(a, a_format, "a", "a_format")
    opb = inp.operand(b, b_format, "b", "b_format")
    m, k = opa.codes.shape
    k2, n = opb.codes.shape
    if k != k2:
        if strict_torch:
            raise ValueError(f"mat1 and mat2 shapes cannot be multiplied ({m}x{k} and {k2}x{n})")
        raise ValueError(f"a and b shapes cannot be multiplied: a is ({m}, {k}), b is ({k2}, {n}); "
                         "a's columns must equal b's rows")
    sa = _scales(opa, scale_a, "scale_a", "a", lambda s: inp.a_scales(s, m, k))
    sb = _scales(opb, scale_b, "scale_b", "b", lambda s: inp.b_scales(s, k, n))
    out = inp.output(out_dtype)
    if strict_torch if torch_restrictions is None else torch_restrictions:
        check_torch(opa, opb, scale_a, scale_b, bias, out, scale_result, m, k, n)
    bias_v = inp.bias_values(bias, n)
    sr = _scale_result(scale_result, out, strict_torch)
    return inp.Args(opa, opb, sa, sb, out, bias_v, sr)


def _scales(op: inp.Operand, s: Any, name: str, opname: str, parse_scales: Any) -> inp.Scales:
    """The scales of one operand: a ScaledTensor's own (``s`` must stay at its default), or ``s`` parsed."""
    if op.scales is not None:
        if not (np.ndim(s) == 0 and not isinstance(s, (bool, np.bool_)) and float(s) == 1.0):
            raise ValueError(f"{opname} is a ScaledTensor, which carries its own scales: leave {name} at its "
                             "default (1.0)")
        return op.scales
    return parse_scales(s)


def _scale_result(scale_result: Any, out: inp.Output, strict: bool) -> float | None:
    if scale_result is None:
        return None
    arr = np.asarray(scale_result)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        raise ValueError(f"scale_result must be a float scalar, got {arr.dtype} of shape {arr.shape}")
    if not inp.is_fp8(out.fmt):
        if strict:
            return None  # torch ignores scale_result for high-precision outputs
        raise ValueError(f"scale_result divides the result before an FP8 cast; out_dtype={out.fmt.name} is "
                         "not FP8 (torch ignores it there: pass strict_torch=True for that behaviour)")
    return float(np.float32(arr.reshape(())))
