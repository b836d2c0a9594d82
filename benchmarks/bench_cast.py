"""Throughput of fp8ref.quantize / dequantize against torch CPU, ml_dtypes and np.take, in one run.

    python benchmarks/bench_cast.py [--log2n 24] [--repeat 7]

Input: 2**log2n float32 values from a wide distribution (normal times 2**U(-12, 12), so every binade of
E4M3 and its subnormals occur). For 2 threads and 1 thread it prints the median time of each
operation and the ratios the project targets:

    quantize  nearest-even, saturating, -> E4M3:  ours vs torch ``.to(torch.float8_e4m3fn)`` (>= 1.0x)
                                                   ours vs ml_dtypes ``astype`` (>= 15x)
    dequantize E4M3 -> float32:                   ours vs torch ``.to(torch.float32)`` (>= 1.0x)
                                                   ours vs ``np.take`` on a 256-entry table (>= 3x)
    seeded stochastic vs our nearest-even:        >= 0.5x

A ratio is (peer time) / (our time): above 1 means fp8ref is faster. Writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import ml_dtypes
import numba
import numpy as np

import fp8ref


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up (compilation, page faults)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    try:
        import torch
    except ImportError:  # pragma: no cover - torch is an optional extra
        torch = None

    rng = np.random.default_rng(0)
    n = 1 << args.log2n
    x = (rng.standard_normal(n) * np.exp2(rng.uniform(-12, 12, n))).astype(np.float32)
    codes = fp8ref.quantize(x, fp8ref.E4M3)
    out = np.empty_like(codes)
    table = fp8ref.E4M3.values().astype(np.float32)
    xt = torch.from_numpy(x) if torch is not None else None
    ct = xt.to(torch.float8_e4m3fn) if torch is not None else None
    if torch is not None:  # the peers must agree with us before they are timed
        assert np.array_equal(ct.view(torch.uint8).numpy(), codes)

    rows: list[tuple[str, str, float, str, float, float, str]] = []
    for threads in (2, 1):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(threads)
        t_q = _median_time(lambda: fp8ref.quantize(x, fp8ref.E4M3, out=out), args.repeat)
        t_ml = _median_time(lambda: x.astype(ml_dtypes.float8_e4m3fn), max(1, args.repeat // 3))
        t_dq = _median_time(lambda: fp8ref.dequantize(codes, fp8ref.E4M3), args.repeat)
        t_take = _median_time(lambda: np.take(table, codes), args.repeat)
        t_sr = _median_time(lambda: fp8ref.quantize(x, fp8ref.E4M3, rounding="stochastic", seed=1, out=out),
                            args.repeat)
        if torch is not None:
            t_tq = _median_time(lambda: xt.to(torch.float8_e4m3fn), args.repeat)
            t_tdq = _median_time(lambda: ct.to(torch.float32), args.repeat)
            rows.append((str(threads), "quantize RNE sat E4M3", t_q, "torch .to(float8_e4m3fn)", t_tq,
                         t_tq / t_q, ">= 1.0"))
        rows.append((str(threads), "quantize RNE sat E4M3", t_q, "ml_dtypes astype", t_ml, t_ml / t_q,
                     ">= 15"))
        if torch is not None:
            rows.append((str(threads), "dequantize E4M3", t_dq, "torch .to(float32)", t_tdq, t_tdq / t_dq,
                         ">= 1.0"))
        rows.append((str(threads), "dequantize E4M3", t_dq, "np.take 256 table", t_take, t_take / t_dq,
                     ">= 3"))
        rows.append((str(threads), "quantize stochastic seed", t_sr, "ours RNE", t_q, t_q / t_sr, ">= 0.5"))

    print(f"fp8ref cast benchmark: n = 2**{args.log2n} float32, median of {args.repeat} "
          f"(numba {numba.__version__}, ml_dtypes {ml_dtypes.__version__}"
          + (f", torch {torch.__version__}" if torch is not None else ", torch not installed") + ")")
    head = ("thr", "operation", "ours ms", "peer", "peer ms", "ratio", "target")
    fmt = "{:>3}  {:<25} {:>8}  {:<26} {:>8}  {:>7}  {:>7}"
    print(fmt.format(*head))
    for thr, op, t_ours, peer, t_peer, ratio, target in rows:
        print(fmt.format(thr, op, f"{t_ours * 1e3:.2f}", peer, f"{t_peer * 1e3:.2f}", f"{ratio:.2f}x",
                         target))


if __name__ == "__main__":
    main()
