"""Benchmark of the accumulation-model GEMM kernels against NumPy float32 matmul (same run, same inputs).

Usage: python benchmarks/bench_accum.py [--size 1024] [--models h100-fp8,h100-fp8-fastaccum,fp32,exact]
       [--repeat 3] [--threads N] [--cpu-time]
       python benchmarks/bench_accum.py --models amd      # every AMD MFMA model (docs/accumulation.md §10)
       OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_accum.py --models amd --cpu-time

Prints GFLOP/s (2*M*N*K / best time) of each model's ``.gemm`` on inputs of its operand format (standard
normal values rounded to it: E4M3 for the NVIDIA FP8 presets; E2M1 for the FP4 block-scaled presets, with
random block scales of the model's scale format) and the ratio to NumPy float32 matmul of float32 matrices
of the same size (NumPy timed first and again after each model; the ratio uses the best NumPy time so far).
The target for "h100-fp8", every instruction model of issue 12 and every AMD model at 1024^3 is >= 1/50. A
model is a preset name or ``GPU:in_format[:out_format]`` (``accum.tensor_core``), e.g. ``MI300X:xf32``,
``A100:fp64:fp64`` (the f64 instructions' fp64 FMA chain). ``--threads``
sets Numba's thread count (run 1 and 2 to see the parallel kernels scale); ``--cpu-time`` times with the
process CPU clock (steadier on a loaded machine; run it single-threaded).
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

from fp8ref import accum

TARGETS = {name: 1 / 50 for name in ("h100-fp8", "b200-fp8", "rtx5090-fp8", "h100-fp8-wgmma-fp16",
                                      "b200-mxfp8", "b200-mxfp4", "b200-nvfp4", "rtx5090-mxfp8",
                                      "rtx5090-mxfp4", "rtx5090-nvfp4", "mi300x-fp8", "A100:fp64:fp64",
                                      "MI300X:fp64:fp64")}
DEFAULT_MODELS = ("h100-fp8,h100-fp8-fastaccum,b200-fp8,b200-fp8-mma,rtx5090-fp8,h100-fp8-wgmma-fp16,"
                  "b200-mxfp8,b200-mxfp4,b200-nvfp4,A100:fp64:fp64,fp32,fp16,exact")
AMD = ["MI100:fp32", "MI100:fp16", "MI100:bf16", "MI250X:fp16", "MI250X:bf16", "MI300X:fp32", "MI300X:xf32",
       "MI300X:fp16", "MI300X:bf16", "mi300x-fp8", "MI300X:E5M2FNUZ", "MI300X:fp64:fp64"]
_DTYPES = {"E4M3": ml_dtypes.float8_e4m3fn, "E5M2": ml_dtypes.float8_e5m2,
           "E4M3FNUZ": ml_dtypes.float8_e4m3fnuz, "E5M2FNUZ": ml_dtypes.float8_e5m2fnuz, "FP16": np.float16,
           "BF16": ml_dtypes.bfloat16, "FP32": np.float32, "E2M1": ml_dtypes.float4_e2m1fn,
           "FP64": np.float64}
CLOCK = [time.perf_counter]


def _model(name: str):
    if ":" in name:
        gpu, fmt, *out = name.split(":")
        return accum.tensor_core(gpu, fmt, *out)
    return accum.get(name)


def _operand(x: np.ndarray, fmt) -> np.ndarray:
    return x.astype(_DTYPES[fmt.name]).astype(np.float64)


def _scales(model, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if model.scale_format.name == "E8M0":
        return np.ldexp(1.0, rng.integers(-8, 8, shape))
    return rng.choice(np.array([0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 448.0]), shape)


def _arguments(model, X: np.ndarray, Y: np.ndarray, rng: np.random.Generator) -> tuple[tuple, dict]:
    """``.gemm`` arguments for ``model``: ``X``, ``Y`` rounded to its operand formats; block-scaled models
    also get random scales of their scale format."""
    A, B = _operand(X, model.in_format), _operand(Y, model.format_b)
    if not isinstance(model, accum.BlockScaled):
        return (A, B), {}
    nb = -(-A.shape[1] // model.block_size)
    return (A, B), {"scale_a": _scales(model, (A.shape[0], nb), rng),
                    "scale_b": _scales(model, (nb, B.shape[1]), rng)}


def _best(fn, repeat: int) -> float:
    best = float("inf")
    clock = CLOCK[0]
    for _ in range(repeat):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="M = N = K (default 1024)")
    ap.add_argument("--models", default=DEFAULT_MODELS,
                    help="comma-separated preset names or GPU:in_format; 'amd': every AMD MFMA model")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with the process CPU clock (steadier on a loaded machine; run it "
                    "single-threaded: OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1)")
    args = ap.parse_args(argv)
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    if args.cpu_time:
        CLOCK[0] = time.process_time
    n = args.size
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    flops = 2.0 * n * n * n
    A32, B32 = X.astype(np.float32), Y.astype(np.float32)
    np.matmul(A32, B32)
    t_np = _best(lambda: np.matmul(A32, B32), max(args.repeat, 3))
    g_np = flops / t_np / 1e9
    print(f"size {n}^3; NumPy float32 matmul: {g_np:8.2f} GFLOP/s ({t_np * 1e3:.1f} ms)")
    names = AMD if args.models == "amd" else [s.strip() for s in args.models.split(",")]
    for name in names:
        model = _model(name)
        pos, kw = _arguments(model, X, Y, rng)
        small, skw = _arguments(model, X[:64, :64], Y[:64, :64], rng)
        model.gemm(*small, **skw)  # compile / load the kernels outside the timing
        model.gemm(*pos, **kw)  # and the parallel build
        t = _best(lambda m=model, pos=pos, kw=kw: m.gemm(*pos, **kw), args.repeat)
        g = flops / t / 1e9
        t_near = _best(lambda: np.matmul(A32, B32), 3)  # NumPy again beside each model (load drifts)
        g_np = max(g_np, flops / t_near / 1e9)
        ratio = g / g_np
        goal = TARGETS.get(name, 1 / 50 if isinstance(model, accum.Mfma) else None)
        tail = f"  (target >= {goal:.3f}: {'met' if ratio >= goal else 'NOT met'})" if goal else ""
        print(f"{name:20} {g:8.3f} GFLOP/s  {t:8.3f} s  ratio vs NumPy float32 {ratio:.4f} "
              f"(1/{1 / ratio:.0f}){tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
