"""The ``casts`` suite: ``quantize`` and ``dequantize`` for every FP8 format.

Cases per format (E4M3, E5M2, E4M3FNUZ, E5M2FNUZ):

* ``dequantize``: all 256 codes to float32 and to float64;
* ``quantize`` of the boundary set (:func:`~fp8ref.golden.suites._values.boundary_values`) from float32
  and float64 with every deterministic rounding mode and both overflow policies, and from float16 and
  bfloat16 with round-to-nearest-even and both policies;
* stochastic rounding (each stochastic mode) of the float32 boundary set with explicit random bits
  (``srbits`` tensor, ``srnumbits`` 4 and 8; each input appears twice, with bits ``R`` and ``2**r - 1 - R``)
  and with a seed (fp8ref's Philox stream, ``srnumbits`` 8).
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

import fp8ref
from fp8ref.golden.case import Case, Result
from fp8ref.golden.suites._values import boundary_values, raw_words

Arrays = dict[str, np.ndarray]

__all__ = ["OPS", "BACKEND_OPS", "build", "DTYPES"]

#: source dtype name -> NumPy dtype
DTYPES: dict[str, np.dtype] = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64),
                               "float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
_SHORT = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16"}


def _quantize_kwargs(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    kw: dict[str, Any] = {"rounding": params["rounding"], "saturate": bool(params["saturate"])}
    if "srnumbits" in params:
        kw["srnumbits"] = int(params["srnumbits"])
    if "srbits" in inputs:
        kw["srbits"] = inputs["srbits"]
    if "seed" in params:
        kw["seed"] = int(params["seed"])
    return kw


def _ref_quantize(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    fmt = fp8ref.format(params["format"])
    codes = fp8ref.quantize(inputs["x"], fmt, **_quantize_kwargs(params, inputs))
    return Result({"codes": np.asarray(codes, dtype=np.uint8)}, {"codes": fmt.name})


def _ref_dequantize(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    values = fp8ref.dequantize(inputs["codes"], params["format"], dtype=DTYPES[params["dtype"]])
    return Result({"values": np.asarray(values, dtype=DTYPES[params["dtype"]])})


def _be_quantize(backend: Any, params: dict[str, Any], inputs: Arrays) -> Arrays:
    codes = backend.quantize(inputs["x"], params["format"], **_quantize_kwargs(params, inputs))
    return {"codes": np.asarray(codes, dtype=np.uint8)}


def _be_dequantize(backend: Any, params: dict[str, Any], inputs: Arrays) -> Arrays:
    values = backend.dequantize(inputs["codes"], params["format"], dtype=DTYPES[params["dtype"]])
    return {"values": np.asarray(values, dtype=DTYPES[params["dtype"]])}


OPS = {"quantize": _ref_quantize, "dequantize": _ref_dequantize}
BACKEND_OPS = {"quantize": _be_quantize, "dequantize": _be_dequantize}


def _modes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from fp8ref.cast import ROUNDING_MODES

    stochastic = tuple(m for m in ROUNDING_MODES if m.startswith("stochastic"))
    return tuple(m for m in ROUNDING_MODES if m not in stochastic), stochastic


def build() -> list[Case]:
    deterministic, stochastic = _modes()
    cases: list[Case] = []
    for fmt in fp8ref.FP8_FORMATS:
        codes = np.arange(256, dtype=np.uint8)
        for dt in ("float32", "float64"):
            cases.append(Case(f"casts/{fmt.name}/dequantize-{_SHORT[dt]}", "dequantize",
                              {"format": fmt.name, "dtype": dt}, {"codes": codes}, {"codes": fmt.name}))
        for dt in ("float32", "float64", "float16", "bfloat16"):
            x = boundary_values(fmt, DTYPES[dt])
            modes = deterministic if dt in ("float32", "float64") else ("nearest_even",)
            for mode in modes:
                for sat in (False, True):
                    cases.append(Case(
                        f"casts/{fmt.name}/quantize-{_SHORT[dt]}-{mode}-{'sat' if sat else 'nonsat'}",
                        "quantize", {"format": fmt.name, "rounding": mode, "saturate": sat, "dtype": dt},
                        {"x": x}))
        x = boundary_values(fmt, DTYPES["float32"])
        for i, mode in enumerate(stochastic):
            for r in (4, 8):
                words = raw_words(1000 + 10 * i + r, x.size)
                bits = (words >> np.uint64(64 - r)).astype(np.uint8)
                xs = np.concatenate([x, x])
                rb = np.concatenate([bits, np.uint8((1 << r) - 1) - bits])
                cases.append(Case(f"casts/{fmt.name}/quantize-f32-{mode}-r{r}-bits", "quantize",
                                  {"format": fmt.name, "rounding": mode, "saturate": True, "srnumbits": r,
                                   "dtype": "float32"}, {"x": xs, "srbits": rb}))
            cases.append(Case(f"casts/{fmt.name}/quantize-f32-{mode}-r8-seed", "quantize",
                              {"format": fmt.name, "rounding": mode, "saturate": True, "srnumbits": 8,
                               "seed": 20230917, "dtype": "float32"}, {"x": x}))
    return cases
