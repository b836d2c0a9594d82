"""Benchmark of the conformance scorer on one large case where every element differs.

Usage: python benchmarks/bench_conform_score.py [--n 2000000] [--repeat 3] [--reference]

The case is a float64 ``quantize`` to E4M3 of ``n`` values (normal, beside FP8 midpoints, NaN, Inf,
subnormal), the backend's codes all off by one code. Prints the best time of ``fp8ref.conform.score.score``
(vectorised) and, with ``--reference``, the time of the element-by-element rule
(``fp8ref.conform.score.categorize`` on every differing element, what the harness did before).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fp8ref
from fp8ref.conform.score import categorize, score
from fp8ref.golden.io import LoadedCase


def make_case(n: int) -> tuple[LoadedCase, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 100, n)
    x[::17] = rng.normal(0, 2.0**-8, x[::17].size)
    x[::1001] = np.nan
    x[::1003] = np.inf
    e = fp8ref.quantize(x, "E4M3", saturate=False)
    g = e ^ np.uint8(1)
    case = LoadedCase({"id": "bench/quantize-f64", "op": "quantize",
                       "params": {"format": "E4M3", "rounding": "nearest_even", "saturate": False}},
                      {"x": x}, {"codes": e}, {"codes": "E4M3"})
    return case, {"codes": g}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000, help="elements (default 2,000,000)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reference", action="store_true", help="also time the element-by-element rule")
    args = ap.parse_args(argv)
    case, outputs = make_case(args.n)
    score(case, outputs, 0, 5)  # compile what needs compiling
    best = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        s = score(case, outputs, 0, 5)
        best = min(best, time.perf_counter() - t)
    print(f"score: {args.n} elements, {s.elements - s.exact} differ: {best:.3f} s (best of {args.repeat})")
    print("  categories:", ", ".join(f"{k} {v}" for k, v in s.categories.items()))
    if args.reference:
        e, g = case.outputs["codes"], outputs["codes"]
        t = time.perf_counter()
        for i in np.flatnonzero(e != g):
            categorize(case, "codes", (int(i),), e, g)
        print(f"element-by-element categorize: {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
