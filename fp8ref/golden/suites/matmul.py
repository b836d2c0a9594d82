"""The ``matmul`` suite: ``scaled_mm`` over shapes, scale granularities, bias, output types and every
accumulation model, including the hardware presets.

Op ``scaled_mm``: params ``a_format``, ``b_format``, ``out_dtype`` (``"float32"``, ``"float16"``,
``"bfloat16"`` or an FP8 format name), ``accumulate`` (a name of ``fp8ref.accum.PRESETS``), optional
``scale_result`` (a float, FP8 outputs only); inputs ``a`` (M, K) and ``b`` (K, N) codes, ``scale_a`` and
``scale_b`` (float32 dequantisation multipliers: scalar, rowwise, 1x128 / 128x1 / 128x128 blocks, or E8M0
codes of 1x32 / 32x1 MX blocks), optional ``bias`` (N,) float32; output ``out`` (M, N).

Every case named ``matmul/models/<preset>`` has the same inputs (a model *family*): the conformance harness
uses the family to find the accumulation model that explains a backend's outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fp8ref
from fp8ref.formats import E4M3
from fp8ref.golden.case import Case, Result
from fp8ref.golden.suites._values import normalish

__all__ = ["OPS", "BACKEND_OPS", "build", "call_args"]

_OUT = {"float32": np.float32, "float16": np.float16}


def call_args(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> tuple[tuple, dict[str, Any]]:
    """Positional and keyword arguments of ``scaled_mm`` for a case (E8M0 scale codes become
    ``ml_dtypes.float8_e8m0fnu`` arrays)."""
    import ml_dtypes

    sa, sb = inputs["scale_a"], inputs["scale_b"]
    if params.get("mx"):
        sa, sb = sa.view(ml_dtypes.float8_e8m0fnu), sb.view(ml_dtypes.float8_e8m0fnu)
    kw: dict[str, Any] = {"a_format": params["a_format"], "b_format": params["b_format"],
                          "bias": inputs.get("bias"), "out_dtype": params["out_dtype"],
                          "accumulate": params["accumulate"]}
    if "scale_result" in params:
        kw["scale_result"] = np.float32(params["scale_result"])
    return (inputs["a"], inputs["b"], sa, sb), kw


def out_array(params: dict[str, Any], out: Any) -> tuple[np.ndarray, dict[str, str]]:
    """The stored form of a ``scaled_mm`` result: FP8 as uint8 codes, bfloat16 as ml_dtypes.bfloat16."""
    import ml_dtypes

    od = params["out_dtype"]
    arr = np.asarray(out)
    if od == "float32" or od == "float16":
        return arr.astype(_OUT[od], copy=False), {}
    if od == "bfloat16":
        return arr.astype(ml_dtypes.bfloat16, copy=False), {}
    fmt = fp8ref.format(od)
    if arr.dtype == np.uint8:
        return arr, {"out": fmt.name}
    return arr.astype(fmt.ml_dtype, copy=False).view(np.uint8), {"out": fmt.name}


def _ref(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    args, kw = call_args(params, inputs)
    out, fmts = out_array(params, fp8ref.scaled_mm(*args, **kw))
    return Result({"out": out}, fmts)


def _be(backend: Any, params: dict[str, Any], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    args, kw = call_args(params, inputs)
    return {"out": out_array(params, backend.scaled_mm(*args, **kw))[0]}


OPS = {"scaled_mm": _ref}
BACKEND_OPS = {"scaled_mm": _be}


def _codes(seed: int, shape: tuple[int, int], fmt: str, spread: int = 3, axis: int = 0) -> np.ndarray:
    """FP8 codes of bell-shaped values, magnitudes varying by ``2**-spread .. 2**spread`` along ``axis``."""
    x = normalish(seed, shape)
    n = shape[axis]
    e = np.ldexp(1.0, (np.arange(n) % (2 * spread + 1)) - spread)
    x = x * (e[:, None] if axis == 0 else e[None, :])
    return fp8ref.quantize(x, fmt, rounding="nearest_even", saturate=True)


def _probe_operands(k: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Operands whose rows expose the accumulation: row 0 is the promotion-interval probe of
    docs/accumulation.md (one product 1 and the rest 2**-14); the other rows mix large and tiny products
    and cancellation."""
    one, small = fp8ref.quantize(np.array([1.0, 2.0 ** -7]), "E4M3", saturate=True)
    a = _codes(7, (m, k), "E4M3", spread=4, axis=1)
    b = _codes(8, (k, n), "E4M3", spread=4, axis=0)
    a[0, :] = small
    a[0, 0] = one
    b[:, 0] = small
    b[0, 0] = one
    a[1, : k // 2] = a[2, : k // 2]  # rows 1 and 2 share a prefix, then differ
    b[k // 2:, 1] = b[k // 2:, 1] ^ 0x80  # column 1 changes sign halfway: cancellation
    return a, b


def build() -> list[Case]:
    from fp8ref.accum import PRESETS, get

    cases: list[Case] = []
    f32 = np.float32
    # a family over every accumulation model that takes E4M3 operands (mi300x-fp8 takes FNUZ ones): K = 260
    # (not a multiple of 16), promotion probe in row 0
    m, k, n = 8, 260, 6
    a, b = _probe_operands(k, n, m)
    fam = {"a": a, "b": b, "scale_a": np.array(1.0, f32), "scale_b": np.array(1.0, f32)}
    for name in PRESETS:
        if getattr(PRESETS[name], "block_size", None) is not None or get(name).in_format != E4M3:
            continue  # block-scaled instructions take block scales; this family's operands are E4M3
        cases.append(Case(f"matmul/models/{name}", "scaled_mm",
                          {"a_format": "E4M3", "b_format": "E4M3", "out_dtype": "float32",
                           "accumulate": name}, fam, {"a": "E4M3", "b": "E4M3"}))
    # shapes and scale granularities (exact accumulation and the H100 models)
    rng_scales = [0.5, 0.75, 1.25, 3.0, 0.0625, 6.0]
    for (mm, kk, nn), tag in (((16, 40, 12), "k40"), ((5, 1, 7), "k1"), ((9, 130, 3), "k130"),
                              ((4, 0, 3), "k0")):
        a = _codes(11 + kk, (mm, kk), "E4M3", axis=1)
        b = _codes(12 + kk, (kk, nn), "E5M2", axis=0)
        sa = np.array([rng_scales[i % 6] for i in range(mm)], f32).reshape(mm, 1)
        sb = np.array([rng_scales[(i + 2) % 6] for i in range(nn)], f32).reshape(1, nn)
        for acc in ("exact", "fp32", "h100-fp8"):
            cases.append(Case(f"matmul/{tag}-e4m3xe5m2-rowwise-{acc}", "scaled_mm",
                              {"a_format": "E4M3", "b_format": "E5M2", "out_dtype": "float32",
                               "accumulate": acc},
                              {"a": a, "b": b, "scale_a": sa, "scale_b": sb}, {"a": "E4M3", "b": "E5M2"}))
    m, k, n = 6, 300, 10
    a = _codes(21, (m, k), "E4M3", axis=1)
    b = _codes(22, (k, n), "E4M3", axis=0)
    kb = -(-k // 128)
    blocks = {
        "tensor": (np.array(0.375, f32), np.array(2.5, f32)),
        "block1x128": (np.ldexp(np.float32(1), (np.arange(m * kb) % 5 - 2)).reshape(m, kb).astype(f32),
                       np.ldexp(np.float32(1), (np.arange(kb * n) % 3 - 1)).reshape(kb, n).astype(f32)),
        "block128x128": (np.array([[0.5, 1.5, 3.0]], f32), np.array([[2.0], [0.25], [1.0]], f32)),
    }
    bias = (normalish(23, (n,)) * 4).astype(f32)
    for gname, (sa, sb) in blocks.items():
        for acc in ("exact", "fp32", "h100-fp8", "h100-fp8-fastaccum"):
            cases.append(Case(f"matmul/k300-{gname}-{acc}", "scaled_mm",
                              {"a_format": "E4M3", "b_format": "E4M3", "out_dtype": "float32",
                               "accumulate": acc},
                              {"a": a, "b": b, "scale_a": sa, "scale_b": sb}, {"a": "E4M3", "b": "E4M3"}))
    # MX: 1x32 / 32x1 blocks of E8M0 scales
    k = 96
    a = _codes(31, (m, k), "E4M3", axis=1)
    b = _codes(32, (k, n), "E4M3", axis=0)
    sa = (124 + np.arange(m * 3) % 6).astype(np.uint8).reshape(m, 3)
    sb = (125 + np.arange(3 * n) % 5).astype(np.uint8).reshape(3, n)
    for acc in ("exact", "fp32", "b200-fp8"):
        cases.append(Case(f"matmul/mx-e8m0-{acc}", "scaled_mm",
                          {"a_format": "E4M3", "b_format": "E4M3", "out_dtype": "float32", "accumulate": acc,
                           "mx": True},
                          {"a": a, "b": b, "scale_a": sa, "scale_b": sb},
                          {"a": "E4M3", "b": "E4M3", "scale_a": "E8M0", "scale_b": "E8M0"}))
    # bias and every output type
    a = _codes(41, (m, 300), "E4M3", axis=1)
    b = _codes(42, (300, n), "E4M3", axis=0)
    sa, sb = np.array(0.5, f32), np.array(0.125, f32)
    for od in ("float32", "float16", "bfloat16", "E4M3", "E5M2"):
        for acc in ("exact", "h100-fp8"):
            params: dict[str, Any] = {"a_format": "E4M3", "b_format": "E4M3", "out_dtype": od,
                                      "accumulate": acc}
            if od in ("E4M3", "E5M2"):
                params["scale_result"] = 0.25
            cases.append(Case(f"matmul/bias-out-{od}-{acc}", "scaled_mm", params,
                              {"a": a, "b": b, "scale_a": sa, "scale_b": sb, "bias": bias},
                              {"a": "E4M3", "b": "E4M3"}))
    return cases
