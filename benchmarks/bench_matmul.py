"""Throughput of ``fp8ref.scaled_mm`` against NumPy float32 / float64 matmul and torch CPU ``_scaled_mm``.

    python benchmarks/bench_matmul.py [--n 2048] [--repeat 3] [--model-n 512] [--no-torch]

Prints GFLOP/s (2*M*N*K / time, median of ``--repeat`` runs) and the ratios measured in this run. Targets
(docs/matmul.md): "exact" E4M3 x E4M3 at 2048^3 >= 0.4x NumPy float32; E5M2 pairs >= 0.1x NumPy float32.
Also prints the per-call time of a small training-step shape (256x128 @ 128x512).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import ml_dtypes
import numpy as np

import fp8ref


def _time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (Numba compilation, BLAS thread start)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _codes(x: np.ndarray, dt: type) -> np.ndarray:
    return x.astype(np.float32).astype(dt).view(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="M = N = K of the large products")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model-n", type=int, default=512, help="size of the model products (0: skip)")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    n, rep = args.n, args.repeat
    rng = np.random.default_rng(0)
    flop = 2.0 * n**3
    x = rng.standard_normal((n, n)).astype(np.float32)
    w = rng.standard_normal((n, n)).astype(np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    results: dict[str, float] = {}

    results["numpy float32 matmul"] = flop / _time(lambda: x @ w, rep) / 1e9
    results["numpy float64 matmul"] = flop / _time(lambda: x64 @ w64, rep) / 1e9

    a4, b4 = _codes(x, ml_dtypes.float8_e4m3fn), _codes(w, ml_dtypes.float8_e4m3fn)
    a5, b5 = _codes(x, ml_dtypes.float8_e5m2), _codes(w, ml_dtypes.float8_e5m2)
    a5_full = rng.integers(0, 256, (n, n), dtype=np.uint8)
    b5_full = rng.integers(0, 256, (n, n), dtype=np.uint8)
    for arr in (a5_full, b5_full):
        arr[(arr & 0x7C) == 0x7C] = 0  # no Inf/NaN codes
    sa, sb = np.float32(0.0371), np.float32(1.37)
    E4, E5 = fp8ref.E4M3, fp8ref.E5M2

    if not args.no_torch:
        try:
            import torch

            ta = torch.from_numpy(x).to(torch.float8_e4m3fn)
            tb = torch.from_numpy(w).to(torch.float8_e4m3fn)
            ts, tw = torch.tensor(float(sa)), torch.tensor(float(sb))
            results["torch CPU _scaled_mm E4M3xE4M3 -> fp32"] = flop / _time(
                lambda: torch._scaled_mm(ta, tb, ts, tw, out_dtype=torch.float32), rep) / 1e9
        except ImportError:
            print("torch not installed: skipping torch CPU _scaled_mm")

    cases = {
        "fp8ref exact E4M3xE4M3 -> fp32": lambda: fp8ref.scaled_mm(a4, b4, sa, sb),
        "fp8ref exact E4M3xE4M3 -> bf16 + bias": lambda: fp8ref.scaled_mm(
            a4, b4, sa, sb, out_dtype=ml_dtypes.bfloat16, bias=w[0].astype(ml_dtypes.bfloat16)),
        "fp8ref exact E4M3xE4M3 rowwise -> fp32": lambda: fp8ref.scaled_mm(
            a4, b4, np.full((n, 1), sa), np.full((1, n), sb)),
        "fp8ref exact E5M2xE4M3 -> fp32": lambda: fp8ref.scaled_mm(a5, b4, sa, sb, a_format=E5, b_format=E4),
        "fp8ref exact E5M2xE5M2 -> fp32": lambda: fp8ref.scaled_mm(a5, b5, sa, sb, a_format=E5, b_format=E5),
        "fp8ref exact E5M2xE5M2 all codes -> fp32": lambda: fp8ref.scaled_mm(
            a5_full, b5_full, sa, sb, a_format=E5, b_format=E5),
    }
    for name, fn in cases.items():
        results[name] = flop / _time(fn, rep) / 1e9

    ref32 = results["numpy float32 matmul"]
    print(f"M = N = K = {n}, median of {rep}")
    print(f"{'case':48s} {'GFLOP/s':>9s} {'x np f32':>9s}")
    for name, g in results.items():
        print(f"{name:48s} {g:9.2f} {g / ref32:9.3f}")
    tname = "torch CPU _scaled_mm E4M3xE4M3 -> fp32"
    if tname in results:
        print(f"fp8ref exact E4M3xE4M3 / torch CPU _scaled_mm: "
              f"{results['fp8ref exact E4M3xE4M3 -> fp32'] / results[tname]:.3f}")

    if args.model_n:
        mn = args.model_n
        am, bm = a4[:mn, :mn], b4[:mn, :mn]
        xm, wm = x[:mn, :mn], w[:mn, :mn]
        ref = 2.0 * mn**3 / _time(lambda: xm @ wm, rep) / 1e9
        print(f"\naccumulation models through scaled_mm, {mn}^3 (numpy float32 {ref:.2f} GFLOP/s)")
        for acc in ("fp32", "h100-fp8", "h100-fp8-fastaccum"):
            g = 2.0 * mn**3 / _time(lambda acc=acc: fp8ref.scaled_mm(am, bm, sa, sb, accumulate=acc), 1) / 1e9
            print(f"{'scaled_mm accumulate=' + acc:48s} {g:9.3f} {g / ref:9.4f}")

    xs, ws = x[:256, :128], w[:128, :512]
    a_s, b_s = a4[:256, :128], b4[:128, :512]
    t_np = _time(lambda: xs @ ws, 50)
    t_ex = _time(lambda: fp8ref.scaled_mm(a_s, b_s, sa, sb), 50)
    print(f"\nsmall shape 256x128 @ 128x512: numpy float32 {t_np * 1e6:.0f} us, "
          f"fp8ref exact {t_ex * 1e6:.0f} us per call")


if __name__ == "__main__":
    main()
