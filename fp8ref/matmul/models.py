"""``scaled_mm`` with an accumulation model of :mod:`fp8ref.accum`: the model gives the accumulator values,
this module applies the epilogue (scales, bias, ``scale_result``, output cast) in float32 as the GPU kernels
do. The order of operations is the table "Epilogue of the accumulation models" in docs/matmul.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.formats import FP32, Format
from fp8ref.matmul import inputs as inp
from fp8ref.matmul.rounding import round_values


def resolve_model(accumulate: Any, fa: Format, fb: Format) -> Any:
    """The model object for ``accumulate`` (a preset name or a model), set up for the operand formats."""
    from fp8ref import accum

    try:
        model = accum.resolve(accumulate)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"accumulate: {exc}") from exc
    if hasattr(model, "for_inputs"):
        try:
            model = model.for_inputs(fa, fb)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"accumulate={getattr(model, 'name', model)!r} cannot take {fa.name} x "
                             f"{fb.name} operands: {exc}") from exc
    out_fmt = getattr(model, "out_format", FP32)
    if out_fmt.precision > 24 or out_fmt.ebits > 8:
        raise ValueError(f"accumulate: the model's accumulator format {out_fmt.name} is wider than float32")
    return model


def _block_scaled(model: Any) -> bool:
    from fp8ref.accum import BlockScaled

    return isinstance(model, BlockScaled)


def block_scaled_gemm(model: Any, A: np.ndarray, B: np.ndarray, sa: inp.Scales, sb: inp.Scales, m: int,
                      k: int, n: int) -> np.ndarray:
    """The accumulator of a block-scaled instruction: the operands' block scales along K (blocks of
    ``model.block_size``: MX 1x32 / 32x1, NVFP4 1x16 / 16x1) enter the MMA (docs/accumulation.md §4.2)."""
    bs = model.block_size
    for s, want, name in ((sa, (1, bs), "a"), (sb, (bs, 1), "b")):
        if s.is_tensor or tuple(s.block) != want:
            raise ValueError(f"accumulate={model.name!r} takes block scales of {want[0]}x{want[1]} along K "
                             f"for {name} ({model.scale_format.name} values: an MX or NVFP4 ScaledTensor), "
                             f"got {s.granularity} scales of block {tuple(s.block)}")
    try:
        return model.gemm(A, B, scale_a=sa.grid, scale_b=sb.grid)
    except ValueError as exc:
        raise ValueError(f"accumulate={model.name!r}: {exc}") from exc


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def fma32(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """float32 ``x * y + z`` with one rounding (an FFMA): the product of two float32 numbers is exact in
    float64, the sum is made exact with TwoSum, rounded to odd in float64 and then to float32 (a correct
    single rounding, Boldo & Melquiond 2008; :func:`fp8ref.matmul._kernels.fma32_flat`)."""
    from fp8ref.matmul._kernels import fma32_flat

    xs, ys, zs = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, y, z)))
    out = np.empty(xs.shape, dtype=np.float32)
    fma32_flat(*(np.ascontiguousarray(v).ravel() for v in (xs, ys, zs)), out.reshape(-1))
    return out


def epilogue_constant(acc32: np.ndarray, sa: inp.Scales, sb: inp.Scales, m: int, n: int) -> np.ndarray:
    """Scales that are constant along K. Tensorwise x tensorwise: ``t = acc * fp32(sa * sb)`` (cuBLASLt
    alpha); otherwise the CUTLASS rowwise EVT order ``t = sa_i * (sb_j * acc)``; each operation in float32."""
    with np.errstate(invalid="ignore", over="ignore"):
        if sa.is_tensor and sb.is_tensor:
            alpha = _f32(sa.grid.reshape(())) * _f32(sb.grid.reshape(()))
            return acc32 * alpha
        col = _f32(np.broadcast_to(sb.grid.reshape(1, -1), (1, n)))
        row = _f32(np.broadcast_to(sa.grid.reshape(-1, 1), (m, 1)))
        return row * (col * acc32)


def model_mm(model: Any, args: inp.Args) -> np.ndarray:
    """``scaled_mm`` of the checked ``args`` with the accumulator values of ``model``, then the float32
    epilogue (docs/matmul.md §3)."""
    opa, opb, sa, sb, out = args.a, args.b, args.scale_a, args.scale_b, args.out
    bias, sr = args.bias, args.scale_result
    m, k, n = args.shape
    A = inp.tables(opa.fmt)[0][opa.codes]
    B = inp.tables(opb.fmt)[0][opb.codes]
    bounds = inp.segments(sa, sb, k)
    if _block_scaled(model):
        acc = np.asarray(block_scaled_gemm(model, A, B, sa, sb, m, k, n), dtype=np.float64)
        t = acc.astype(np.float32)
    elif len(bounds) <= 2:
        acc = np.asarray(model.gemm(A, B), dtype=np.float64).reshape(m, n)
        t = epilogue_constant(acc.astype(np.float32), sa, sb, m, n)
    else:
        ga, gb = inp.segment_scales(sa, sb, bounds, m, n)
        t = np.zeros((m, n), dtype=np.float32)
        for s in range(len(bounds) - 1):
            lo, hi = bounds[s], bounds[s + 1]
            part = np.asarray(model.gemm(A[:, lo:hi], B[lo:hi, :]), dtype=np.float64).reshape(m, n)
            with np.errstate(invalid="ignore", over="ignore"):
                c = _f32(ga[:, s:s + 1]) * _f32(gb[s:s + 1, :])
            t = fma32(part.astype(np.float32), c, t)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if args.global_scale is not None:  # two-level scaling: cuBLASLt alpha = fl(ga * gb)
            t = t * np.float32(args.global_scale)
        if bias is not None:
            t = t + _f32(bias)[None, :]
        if sr is not None:
            t = t * (np.float32(1.0) / np.float32(sr))
    t = np.asarray(t, dtype=np.float32)
    if out.fmt == FP32:
        return t
    if inp.is_fp8(out.fmt):
        return round_values(t.astype(np.float64), out.fmt).astype(out.dtype)
    return t.astype(out.dtype)
