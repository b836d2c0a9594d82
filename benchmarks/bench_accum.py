"""Benchmark of the accumulation-model GEMM kernels against NumPy float32 matmul (same run, same inputs).

Usage: python benchmarks/bench_accum.py [--size 1024] [--models h100-fp8,h100-fp8-fastaccum,fp32,exact]
       [--repeat 3]

Prints GFLOP/s (2*M*N*K / best time) of each model's ``.gemm`` on E4M3 inputs and the ratio to NumPy
float32 matmul of the same (dequantised) matrices; the target for "h100-fp8" at 1024^3 is >= 1/50.
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

from fp8ref import accum

TARGETS = {"h100-fp8": 1 / 50}


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="M = N = K (default 1024)")
    ap.add_argument("--models", default="h100-fp8,h100-fp8-fastaccum,b200-fp8,fp32,fp16,exact",
                    help="comma-separated preset names")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    n = args.size
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    B = rng.standard_normal((n, n)).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    flops = 2.0 * n * n * n
    A32, B32 = A.astype(np.float32), B.astype(np.float32)
    np.matmul(A32, B32)
    t_np = _best(lambda: np.matmul(A32, B32), max(args.repeat, 3))
    g_np = flops / t_np / 1e9
    print(f"size {n}^3, E4M3 inputs; NumPy float32 matmul: {g_np:8.2f} GFLOP/s ({t_np * 1e3:.1f} ms)")
    small = A[:64, :64], B[:64, :64]
    for name in args.models.split(","):
        model = accum.get(name.strip())
        model.gemm(*small)  # compile / load the kernels outside the timing
        t = _best(lambda m=model: m.gemm(A, B), args.repeat)
        g = flops / t / 1e9
        ratio = g / g_np
        goal = TARGETS.get(name)
        tail = f"  (target >= {goal:.3f}: {'met' if ratio >= goal else 'NOT met'})" if goal else ""
        print(f"{name:20} {g:8.3f} GFLOP/s  {t:8.3f} s  ratio vs NumPy float32 {ratio:.4f} "
              f"(1/{1 / ratio:.0f}){tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
