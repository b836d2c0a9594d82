"""Per-tensor ``quantize_scaled`` with ``JustInTime`` against a plain ``fp8ref.quantize`` of the same data.

Target (issue 3): JustInTime on 2**24 float32 costs <= 1.5x the plain quantize (amax pass + fused
scale-and-cast pass). Also printed: Delayed (one fused pass), Current, rowwise, 1x128 blocks and MX,
each as a ratio to the plain quantize measured in the same run. Usage::

    python benchmarks/bench_scaling.py [--log2n 24] [--repeat 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fp8ref
from fp8ref.scaling import MX, Current, Delayed, JustInTime, quantize_scaled


def _median_ms(fn, repeat: int) -> float:
    fn()  # compile / warm up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    n = 1 << args.log2n
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * np.exp(rng.uniform(-4, 4, n))).astype(np.float32)
    x2 = x.reshape(-1, 1024) if n >= 1024 else x.reshape(1, -1)
    e4 = fp8ref.E4M3

    base = _median_ms(lambda: fp8ref.quantize(x, e4), args.repeat)
    cases = {
        "JustInTime (tensor)": lambda: quantize_scaled(x, e4, JustInTime()),
        "Delayed (tensor, 1 pass)": lambda: quantize_scaled(x, e4, Delayed(history_len=16)),
        "Current (tensor, TE)": lambda: quantize_scaled(x, e4, Current()),
        "JustInTime (row)": lambda: quantize_scaled(x2, e4, JustInTime(granularity="row")),
        "Current (1x128, pow2)": lambda: quantize_scaled(x2, e4, Current(granularity=(1, 128),
                                                                          power_of_2=True)),
        "MX (RCEIL)": lambda: quantize_scaled(x2, e4, MX("RCEIL")),
    }
    print(f"n = 2**{args.log2n} float32 -> E4M3, nearest_even, saturating; medians of {args.repeat}")
    print(f"{'fp8ref.quantize (plain)':32s} {base:9.2f} ms   1.00x")
    for name, fn in cases.items():
        t = _median_ms(fn, args.repeat)
        print(f"{name:32s} {t:9.2f} ms   {t / base:.2f}x")
    jit = _median_ms(cases["JustInTime (tensor)"], args.repeat)
    print(f"\nratio quantize_scaled(JustInTime) / quantize = {jit / base:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
