"""``strict_torch=True``: the restrictions of ``torch._scaled_mm`` on CUDA, with torch's messages.

Transcribed from PyTorch ``aten/src/ATen/native/cuda/ScaledBlas.cpp`` (``_scaled_mm_out_cuda``,
``get_joint_scaling``, ``_scaled_rowwise_rowwise``), in torch's order of checks. Everything is raised as
``ValueError`` (torch raises ``RuntimeError`` for its ``TORCH_CHECK`` and ``ValueError`` for its
``TORCH_CHECK_VALUE``). Not modelled: devices, memory layout and strides (fp8ref arrays have none of
torch's column-major requirements), cuBLAS versions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.formats import BF16, E4M3, E4M3FNUZ, E5M2, E5M2FNUZ, FP16, FP32, Format
from fp8ref.matmul import inputs as inp

_TORCH_NAMES = {E4M3: "Float8_e4m3fn", E5M2: "Float8_e5m2", E4M3FNUZ: "Float8_e4m3fnuz",
                E5M2FNUZ: "Float8_e5m2fnuz", FP32: "Float", FP16: "Half", BF16: "BFloat16"}

# torch's joint scaling modes, tried in this order
_PAIRS = (("TensorWise", "TensorWise"), ("RowWise", "RowWise"), ("BlockWise128x128", "BlockWise1x128"),
          ("BlockWise1x128", "BlockWise128x128"), ("BlockWise1x128", "BlockWise1x128"),
          ("BlockWise1x32", "BlockWise1x32"))


def torch_name(f: Format | np.dtype) -> str:
    if isinstance(f, Format):
        return _TORCH_NAMES.get(f, f.name)
    dt = np.dtype(f)
    return {"float32": "Float", "float16": "Half", "bfloat16": "BFloat16", "float64": "Double",
            "float8_e8m0fnu": "Float8_e8m0fnu"}.get(dt.name, dt.name)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _ceil(a, b) * b


def _scale_info(op: inp.Operand, raw: Any) -> tuple[tuple[int, ...], str]:
    """(shape, torch dtype name) of a scale as torch would see it."""
    if op.scales is not None:  # a ScaledTensor: float32 multipliers, E8M0 for MX
        shape = tuple(op.scales.grid.shape) if not op.scales.is_tensor else ()
        return shape, ("Float8_e8m0fnu" if op.scales.granularity == "mx" else "Float")
    arr = np.asarray(raw)
    if arr.dtype.kind in "iuf" and arr.dtype != np.float32 and arr.ndim == 0:
        return (), "Float"  # a Python number: torch.tensor(x, dtype=torch.float32)
    return tuple(arr.shape), torch_name(arr.dtype)


def _modes(shape: tuple[int, ...], dtype: str, outer: int, inner: int) -> set[str]:
    """Scaling modes of torch's ``is_*_scaling`` satisfied by a scale of ``shape`` for a (outer, inner)
    operand (``b`` is seen transposed: outer = N, inner = K)."""
    modes = set()
    numel = int(np.prod(shape)) if shape else 1
    if dtype == "Float":
        if numel == 1:
            modes.add("TensorWise")
        if shape == (outer, 1):
            modes.add("RowWise")
        if shape == (outer, _ceil(inner, 128)):
            modes.add("BlockWise1x128")
        if shape == (_ceil(outer, 128), _ceil(inner, 128)):
            modes.add("BlockWise128x128")
    if dtype == "Float8_e8m0fnu" and numel == _round_up(outer, 128) * _round_up(_ceil(inner, 32), 4):
        modes.add("BlockWise1x32")
    return modes


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def joint_scaling(opa: inp.Operand, opb: inp.Operand, scale_a: Any, scale_b: Any, m: int, k: int,
                  n: int) -> tuple[str, str]:
    sha, dta = _scale_info(opa, scale_a)
    shb, dtb = _scale_info(opb, scale_b)
    modes_a = _modes(sha, dta, m, k)
    shb_t = tuple(reversed(shb))  # torch checks scale_b.t() against b.t(), except for 1x32 (swizzled)
    modes_b = _modes(shb_t, dtb, n, k) - {"BlockWise1x32"}
    if "BlockWise1x32" in _modes(shb, dtb, n, k):
        modes_b.add("BlockWise1x32")
    for pair in _PAIRS:
        if pair[0] in modes_a and pair[1] in modes_b:
            return pair
    ta, tb = torch_name(opa.fmt), torch_name(opb.fmt)
    raise ValueError(
        "Invalid scaling configuration.\n"
        "- For TensorWise scaling, a and b should be float8, scales should be float and singletons.\n"
        "- For RowWise scaling, a and b should be float8, scales should be float, scale_a should be "
        f"({m}, 1) and scale_b should be (1, {n}), and both should be contiguous.\n"
        f"- For BlockWise 1x128 scaling, a and b should be float8, scales should be float, scale_a should be "
        f"({m}, {_ceil(k, 128)}) and scale_b should be ({_ceil(k, 128)}, {n}), and both should be "
        "outer-dim-major.\n"
        "- For BlockWise 128x128 scaling, a and b should be float8, scales should be float, scale_a should "
        f"be ({_ceil(m, 128)}, {_ceil(k, 128)}) and scale_b should be ({_ceil(k, 128)}, {_ceil(n, 128)}), "
        "and both should be near-inner-dim-major (with 16-byte aligned strides).\n"
        f"- For Blockwise 1x32 scaling, a and b should be float8, scales should be float8_e8m0fnu, scale_a "
        f"should have {_round_up(m, 128) * _round_up(_ceil(k, 32), 4)} elements and scale_b should have "
        f"{_round_up(n, 128) * _round_up(_ceil(k, 32), 4)} elements, and both should be contiguous.\n"
        f"Got a.dtype()={ta}, scale_a.dtype()={dta}, scale_a.size()={_fmt_shape(sha)}, "
        f"b.dtype()={tb}, scale_b.dtype()={dtb}, scale_b.size()={_fmt_shape(shb)}")


def check_torch(opa: inp.Operand, opb: inp.Operand, scale_a: Any, scale_b: Any, bias: Any, out: inp.Output,
                scale_result: Any, m: int, k: int, n: int) -> None:
    """Raise ``ValueError`` with torch's message where ``torch._scaled_mm`` (CUDA) rejects the call."""
    pair = joint_scaling(opa, opb, scale_a, scale_b, m, k, n)
    if scale_result is not None:
        sr = np.asarray(scale_result)
        if sr.size != 1 or sr.dtype not in (np.float32,) and not (sr.ndim == 0 and sr.dtype.kind in "iuf"):
            raise ValueError("scale_result must be a float scalar")
    if bias is not None and np.asarray(bias).size != n:
        raise ValueError(f"Bias must be size {n} but got {np.asarray(bias).size}")
    if k % 16 != 0:
        raise ValueError(f"Expected trailing dimension of mat1 to be divisible by 16 but got mat1 shape: "
                         f"({m}x{k}).")
    if k % 16 != 0 or n % 16 != 0:
        raise ValueError(f"mat2 shape ({k}x{n}) must be divisible by 16")
    for name, op in (("mat1", opa), ("mat2", opb)):
        if op.fmt not in (E4M3, E5M2, E4M3FNUZ, E5M2FNUZ):
            raise ValueError(f"Expected {name} to be Float8 or Float4_x2 matrix got {op.fmt.name}")
    if opa.fmt == E5M2 and opb.fmt == E5M2:
        raise ValueError("Multiplication of two Float8_e5m2 matrices is not supported")
    if bias is not None:
        bdt = np.asarray(bias).dtype
        bname = torch_name(bdt)
        oname = torch_name(out.fmt)
        if out.fmt == FP32:
            raise ValueError("Bias is not supported when out_dtype is set to Float32")
        if bname not in ("BFloat16", "Half"):
            raise ValueError(f"Bias must be BFloat16 or Half, but got {bname}")
        if out.fmt == BF16 and bname != "BFloat16":
            raise ValueError(f"Bias must be BFloat16 to compute {oname} output, but got {bname}")
        if out.fmt == FP16 and bname != "Half":
            raise ValueError(f"Bias must be Float16 to compute {oname} output, but got {bname}")
    if pair == ("RowWise", "RowWise") and out.fmt not in (BF16, FP16, FP32):
        raise ValueError("Only bf16, fp16, and fp32 high precision output types are supported for row-wise "
                         "scaling.")
