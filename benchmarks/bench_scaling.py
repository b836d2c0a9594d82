"""Per-tensor ``quantize_scaled`` with ``JustInTime`` against a plain ``fp8ref.quantize`` of the same data.

Target (issue 3): JustInTime on 2**24 float32 costs <= 1.5x the plain quantize (amax pass + fused
scale-and-cast pass). Also printed: Delayed (one fused pass), Current, rowwise, 1x128 blocks and MX,
each as a ratio to the plain quantize measured in the same run. Usage::

    python benchmarks/bench_scaling.py [--log2n 24] [--repeat 11]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fp8ref
from fp8ref.scaling import MX, Current, Delayed, JustInTime, quantize_scaled


def _best_ms(fns: dict, repeat: int) -> dict:
    """Best time (ms) of each function over ``repeat`` rounds, the functions interleaved within a round
    so that a noisy neighbour slows all of them alike."""
    for fn in fns.values():
        fn()  # compile / warm up
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: t * 1e3 for name, t in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=11)
    args = ap.parse_args()
    n = 1 << args.log2n
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * np.exp(rng.uniform(-4, 4, n))).astype(np.float32)
    x2 = x.reshape(-1, 1024) if n >= 1024 else x.reshape(1, -1)
    e4 = fp8ref.E4M3

    cases = {
        "fp8ref.quantize (plain)": lambda: fp8ref.quantize(x, e4),
        "JustInTime (tensor)": lambda: quantize_scaled(x, e4, JustInTime()),
        "Delayed (tensor, 1 pass)": lambda: quantize_scaled(x, e4, Delayed(history_len=16)),
        "Current (tensor, TE)": lambda: quantize_scaled(x, e4, Current()),
        "JustInTime (row)": lambda: quantize_scaled(x2, e4, JustInTime(granularity="row")),
        "Current (1x128, pow2)": lambda: quantize_scaled(x2, e4, Current(granularity=(1, 128),
                                                                          power_of_2=True)),
        "MX (RCEIL)": lambda: quantize_scaled(x2, e4, MX("RCEIL")),
    }
    best = _best_ms(cases, args.repeat)
    base = best["fp8ref.quantize (plain)"]
    print(f"n = 2**{args.log2n} float32 -> E4M3, nearest_even, saturating; "
          f"best of {args.repeat} interleaved rounds")
    for name, t in best.items():
        print(f"{name:32s} {t:9.2f} ms   {t / base:.2f}x")
    ratio = best["JustInTime (tensor)"] / base
    print(f"\nratio quantize_scaled(JustInTime) / quantize = {ratio:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
