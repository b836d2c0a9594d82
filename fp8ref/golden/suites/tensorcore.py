"""The ``tensorcore`` suite: every modelled matrix instruction (``fp8ref.accum.tensor_core``) on random and
adversarial operands, so that its outputs can be checked on the hardware with ``fp8ref conform``.

Op ``tensor_core_gemm``: params ``gpu``, ``instruction``, ``in_format``, ``in_format_b``, ``out_format`` and,
for block-scaled instructions, ``block_size`` and ``scale_format``; inputs ``a`` (M, K), ``b`` (K, N) and
``c`` (M, N) as float32 values (of the input formats and of the output format; fp16 values widened to
float32; float64 for the fp64 instructions), ``scale_a`` (M, K/block) and ``scale_b`` (K/block, N)
decoded scales for block-scaled instructions; output ``d`` (M, N) float32 (fp16 outputs widened; fp64:
float64). One chain of instructions along K per
output: ``d = m.gemm(a, b, c[, scale_a, scale_b])``.

The cases iterate every GPU of ``fp8ref.accum.GPUS`` (the vendor tables of ``fp8ref.accum.presets.VENDORS``
and AMD's MFMA table): every instruction, input format, output and block-scaled combination, so a row added
there gets cases without a change here. Rows of ``a``
and columns of ``b`` are random values of the formats (row/column 0..3) and probe-style vectors (rows 4..7):
a large product and its negation with a small one left (alignment width), products straddling a block
boundary, a ``c`` at a rounding midpoint, and tiny products near the exponent floor.

Running on a backend: the backend's ``tensor_core_gemm(gpu, instruction, in_format, in_format_b, out_format,
a, b, c, scale_a=None, scale_b=None, block_size=None, scale_format=None)``; a backend without it skips.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from fp8ref.golden.case import Case, Result
from fp8ref.golden.suites._values import raw_words

Arrays = dict[str, np.ndarray]

__all__ = ["OPS", "BACKEND_OPS", "build", "combinations", "model_of", "result_dtype"]

M, N = 8, 4


def model_of(params: dict[str, Any]) -> Any:
    """The fp8ref model of a case's parameters."""
    from fp8ref import accum

    return accum.tensor_core_pair(params["gpu"], params["in_format"], params["in_format_b"],
                                  params["out_format"], instruction=params["instruction"],
                                  block_size=params.get("block_size"),
                                  scale_format=params.get("scale_format"))


def _ref(params: dict[str, Any], inputs: Arrays) -> Result:
    m = model_of(params)
    kw = {}
    if "scale_a" in inputs:
        kw = {"scale_a": inputs["scale_a"].astype(np.float64),
              "scale_b": inputs["scale_b"].astype(np.float64)}
    d = m.gemm(inputs["a"].astype(np.float64), inputs["b"].astype(np.float64), inputs["c"].astype(np.float64),
               **kw)
    return Result({"d": np.asarray(d, dtype=result_dtype(params["out_format"]))})


def result_dtype(out_format: Any) -> type:
    """The type of a case's arrays and of a backend's result ``d``: float64 for an fp64 output (the fp64
    instructions; any spelling of the format name), else float32."""
    from fp8ref import format as fmt_of
    from fp8ref.formats import FP64

    try:
        return np.float64 if fmt_of(out_format) == FP64 else np.float32
    except (TypeError, ValueError):  # not a format: the case's own check names it
        return np.float32


def _be(backend: Any, params: dict[str, Any], inputs: Arrays) -> Arrays:
    from fp8ref.backends import Unsupported

    fn = getattr(backend, "tensor_core_gemm", None)
    if fn is None:
        raise Unsupported("tensor_core_gemm is not implemented", backend=getattr(backend, "name", None),
                          op="tensor_core_gemm")
    d = fn(params["gpu"], params["instruction"], params["in_format"], params["in_format_b"],
           params["out_format"], inputs["a"], inputs["b"], inputs["c"], scale_a=inputs.get("scale_a"),
           scale_b=inputs.get("scale_b"), block_size=params.get("block_size"),
           scale_format=params.get("scale_format"))
    return {"d": np.asarray(d, dtype=result_dtype(params["out_format"]))}


OPS = {"tensor_core_gemm": _ref}
BACKEND_OPS = {"tensor_core_gemm": _be}


def combinations() -> list[dict[str, Any]]:
    """The parameters of every modelled instruction path, from the vendor tables: each GPU's own (H100 and
    H200 have equal models and each their cases); a model one GPU reaches by two paths, once."""
    from fp8ref import accum
    from fp8ref.accum import presets

    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for g in accum.GPUS:
        for ins in accum.instructions(g):
            for f in presets.IN_FORMATS:
                for o in presets.OUT_FORMATS:
                    try:
                        m = accum.tensor_core(g, f, o, instruction=ins)
                    except ValueError:
                        continue
                    key = repr(m)
                    if key not in seen:
                        seen.add(key)
                        out.append({"gpu": g, "instruction": ins, "in_format": f, "in_format_b": f,
                                    "out_format": o})
            for f, bs, sf in accum.block_scaled(g, ins):
                m = accum.tensor_core(g, f, instruction=ins, block_size=bs, scale_format=sf)
                key = repr(m)
                if key not in seen:
                    seen.add(key)
                    out.append({"gpu": g, "instruction": ins, "in_format": f, "in_format_b": f,
                                "out_format": "fp32", "block_size": bs, "scale_format": sf})
    return out


class _Stream:
    """Choices from PCG64's raw 64-bit words (a stream NumPy keeps stable across versions)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def choice(self, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        self.seed += 1
        n = int(np.prod(shape))
        idx = (raw_words(self.seed, n) % np.uint64(len(values))).astype(np.int64)
        return np.asarray(values)[idx].reshape(shape)


def _values(fmt: Any) -> np.ndarray:
    from fp8ref import format as fmt_of
    from fp8ref.formats import FP32, FP64, TF32

    f = fmt_of(fmt)
    if f == FP64:  # 4096 random significands, exponents -40 .. 40 (products neither overflow nor underflow)
        w = raw_words(13, 4096)
        sig = 1.0 + (w >> np.uint64(12)).astype(np.float64) * 2.0 ** -52
        e = (w & np.uint64(0x7F)).astype(np.int64) % 81 - 40
        return np.where(w & np.uint64(0x80), -1.0, 1.0) * np.ldexp(sig, e)
    if f in (TF32, FP32):  # 4096 random bit patterns (TF32: its 13 low bits clear)
        mask = np.uint32(0xFFFFE000 if f == TF32 else 0xFFFFFFFF)
        bits = (raw_words(11, 4096) >> np.uint64(32)).astype(np.uint32) & mask
        with np.errstate(invalid="ignore"):
            v = bits.view(np.float32).astype(np.float64)
    else:
        v = f.values()
    return v[np.isfinite(v)]


def _operands(model: Any, k: int, rng: _Stream) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fa, fb, fc = model.in_format, model.format_b, model.c_format
    va, vb = _values(fa), _values(fb)
    A = rng.choice(va, (M, k))
    B = rng.choice(vb, (k, N))
    one = 1.0
    big = float(min(va.max(), vb.max()))
    small_a = float(np.min(np.abs(va[va != 0])))
    # probe rows: big - big + small (alignment width), 1 and a smaller product at the far end of a block
    A[4:] = 0.0
    A[4, :3] = [big, -big, small_a]
    A[5, 0] = one
    A[5, k - 1] = small_a
    A[6, :] = rng.choice(va[(np.abs(va) >= 0.25) & (np.abs(va) <= 4)], k)
    A[7, :] = small_a
    B[:3, 0] = [one, one, one]
    B[k - 1, 1] = one
    # fp32 c: bf16 values (any c of fp32 would do); fp64 c: the fp64 operand values
    vc = _values(fc) if fc.bits <= 16 or fc.bits == 64 else _values("bf16")
    c = rng.choice(vc[np.abs(vc) < 64], (M, N))
    c[:, 2] = 0.0
    c[5, 1] = one + 2.0 ** -fc.mbits  # one ulp above 1: the products' last bits decide the rounding
    return A, B, c


def _scales(model: Any, shape: tuple[int, int], rng: _Stream) -> np.ndarray:
    if model.scale_format.name == "E8M0":
        return np.ldexp(1.0, rng.choice(np.arange(-6, 7), shape)).astype(np.float32)
    v = _values("E4M3")
    return rng.choice(v[(v > 0) & (v <= 448)], shape).astype(np.float32)


def build() -> list[Case]:
    from fp8ref import accum

    cases: list[Case] = []
    for params in combinations():
        model = model_of(params)
        name = "-".join(str(params[k]) for k in ("gpu", "instruction", "in_format", "out_format"))
        if "block_size" in params:
            name += f"-{params['scale_format']}x{params['block_size']}"
        rng = _Stream(zlib.crc32(name.encode()))
        if isinstance(model, accum.BlockScaled):
            nfma = model.k
        elif isinstance(model, accum.Mfma):
            nfma = max(model.group, 4)  # products per group (the fp32 FMA chain: 1)
        elif isinstance(model, accum.Sequential):
            nfma = 4  # the fp64 FMA chain: one product per step
        else:
            nfma = model.nfma
        k = 2 * nfma + (nfma // 2)
        A, B, c = _operands(model, k, rng)
        dt = result_dtype(params["out_format"])
        inputs = {"a": A.astype(dt), "b": B.astype(dt), "c": c.astype(dt)}
        if isinstance(model, accum.BlockScaled):
            nb = -(-k // model.block_size)
            inputs["scale_a"] = _scales(model, (M, nb), rng)
            inputs["scale_b"] = _scales(model, (nb, N), rng)
        cases.append(Case(f"tensorcore/{name}", "tensor_core_gemm", params, inputs))
    return cases
