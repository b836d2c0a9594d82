"""Benchmark of the accumulation-model GEMM kernels against NumPy float32 matmul (same run, same inputs).

Usage: python benchmarks/bench_accum.py [--size 1024] [--models h100-fp8,h100-fp8-fastaccum,fp32,exact]
       [--repeat 3] [--threads N]

Prints GFLOP/s (2*M*N*K / best time) of each model's ``.gemm`` on E4M3 inputs (E2M1 for the FP4 block-scaled
presets, with random block scales of the model's scale format) and the ratio to NumPy float32 matmul of the
same (dequantised) E4M3 matrices; the target for "h100-fp8" and every instruction model of issue 12 at 1024^3
is >= 1/50. ``--threads`` sets Numba's thread count (run 1 and 2 to see the parallel kernels scale).
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

from fp8ref import accum

TARGETS = {name: 1 / 50 for name in ("h100-fp8", "b200-fp8", "rtx5090-fp8", "h100-fp8-wgmma-fp16",
                                      "b200-mxfp8", "b200-mxfp4", "b200-nvfp4", "rtx5090-mxfp8",
                                      "rtx5090-mxfp4", "rtx5090-nvfp4")}
DEFAULT_MODELS = ("h100-fp8,h100-fp8-fastaccum,b200-fp8,b200-fp8-mma,rtx5090-fp8,h100-fp8-wgmma-fp16,"
                  "b200-mxfp8,b200-mxfp4,b200-nvfp4,fp32,fp16,exact")


def _operands(model, A: np.ndarray, B: np.ndarray, rng: np.random.Generator) -> tuple[tuple, dict]:
    """``.gemm`` arguments for ``model``: E4M3 ``A``, ``B``; block-scaled models get operands of their
    format and random scales of their scale format."""
    if not isinstance(model, accum.BlockScaled):
        return (A, B), {}
    n = A.shape[0]
    if model.in_format.name == "E2M1":
        vals = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
        A = rng.choice(vals, A.shape) * rng.choice([-1.0, 1.0], A.shape)
        B = rng.choice(vals, B.shape) * rng.choice([-1.0, 1.0], B.shape)
    nb = -(-n // model.block_size)
    if model.scale_format.name == "E8M0":
        sa, sb = np.ldexp(1.0, rng.integers(-8, 8, (n, nb))), np.ldexp(1.0, rng.integers(-8, 8, (nb, n)))
    else:
        v = np.array([0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 448.0])
        sa, sb = rng.choice(v, (n, nb)), rng.choice(v, (nb, n))
    return (A, B), {"scale_a": sa, "scale_b": sb}


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
    ap.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated preset names")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    args = ap.parse_args(argv)
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
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
    for name in args.models.split(","):
        model = accum.get(name.strip())
        pos, kw = _operands(model, A, B, rng)
        small, skw = _operands(model, A[:64, :64], B[:64, :64], rng)
        model.gemm(*small, **skw)  # compile / load the kernels outside the timing
        model.gemm(*pos, **kw)  # and the parallel build
        t = _best(lambda m=model, pos=pos, kw=kw: m.gemm(*pos, **kw), args.repeat)
        g = flops / t / 1e9
        ratio = g / g_np
        goal = TARGETS.get(name)
        tail = f"  (target >= {goal:.3f}: {'met' if ratio >= goal else 'NOT met'})" if goal else ""
        print(f"{name:20} {g:8.3f} GFLOP/s  {t:8.3f} s  ratio vs NumPy float32 {ratio:.4f} "
              f"(1/{1 / ratio:.0f}){tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
