"""Throughput of fp8ref.quantize / dequantize against torch CPU, ml_dtypes and np.take, in one run.

    python benchmarks/bench_cast.py [--log2n 24] [--repeat 7]

Input: 2**log2n float32 values from a wide distribution (normal times 2**U(-12, 12), so every binade of
E4M3 and its subnormals occur). For 2 threads and 1 thread it prints the best time of each operation
(ours and the peer called alternately, ``--repeat`` times) and the ratios the project targets:

    quantize  nearest-even, saturating, -> E4M3:  ours vs torch ``.to(torch.float8_e4m3fn)`` (>= 1.0x)
                                                   ours vs ml_dtypes ``astype`` (>= 15x)
    dequantize E4M3 -> float32:                   ours vs torch ``.to(torch.float32)`` (>= 1.0x)
                                                   ours vs ``np.take`` on a 256-entry table (>= 3x)
    seeded stochastic vs our nearest-even:        >= 0.5x

A ratio is (peer time) / (our time): above 1 means fp8ref is faster. It also prints the load average,
since other processes on the machine distort the figures. Writes nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import ml_dtypes
import numba
import numpy as np

import fp8ref


def _paired_times(ours: Callable[[], object], peer: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best times of ``ours`` and ``peer``, called alternately (so that load from other processes and
    the memory system's state hit both alike)."""
    ours()
    peer()
    t_ours, t_peer = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ours()
        t1 = time.perf_counter()
        peer()
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_peer.append(t2 - t1)
    return min(t_ours), min(t_peer)


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

    load_start = os.getloadavg()[0]
    rows: list[tuple[str, str, float, str, float, float, str]] = []

    def pair(threads: int, op: str, ours: Callable[[], object], peer_name: str, peer: Callable[[], object],
             target: str, repeat: int) -> None:
        t_ours, t_peer = _paired_times(ours, peer, repeat)
        rows.append((str(threads), op, t_ours, peer_name, t_peer, t_peer / t_ours, target))

    q_rne = lambda: fp8ref.quantize(x, fp8ref.E4M3, out=out)  # noqa: E731
    q_sr = lambda: fp8ref.quantize(x, fp8ref.E4M3, rounding="stochastic", seed=1, out=out)  # noqa: E731
    dq = lambda: fp8ref.dequantize(codes, fp8ref.E4M3)  # noqa: E731
    for threads in (2, 1):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(threads)
            pair(threads, "quantize RNE sat E4M3", q_rne, "torch .to(float8_e4m3fn)",
                 lambda: xt.to(torch.float8_e4m3fn), ">= 1.0", args.repeat)
        pair(threads, "quantize RNE sat E4M3", q_rne, "ml_dtypes astype",
             lambda: x.astype(ml_dtypes.float8_e4m3fn), ">= 15", max(2, args.repeat // 3))
        if torch is not None:
            pair(threads, "dequantize E4M3", dq, "torch .to(float32)", lambda: ct.to(torch.float32), ">= 1.0",
                 args.repeat)
        pair(threads, "dequantize E4M3", dq, "np.take 256 table", lambda: np.take(table, codes), ">= 3",
             args.repeat)
        pair(threads, "quantize stochastic seed", q_sr, "ours RNE", q_rne, ">= 0.5", args.repeat)

    print(f"fp8ref cast benchmark: n = 2**{args.log2n} float32, best of {args.repeat} alternating runs "
          f"(numba {numba.__version__}, ml_dtypes {ml_dtypes.__version__}"
          + (f", torch {torch.__version__}" if torch is not None else ", torch not installed") + ")")
    print(f"load average (1 min) {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
          f"({os.cpu_count()} CPUs): other processes slow the 2-thread figures")
    head = ("thr", "operation", "ours ms", "peer", "peer ms", "ratio", "target")
    fmt = "{:>3}  {:<25} {:>8}  {:<26} {:>8}  {:>7}  {:>7}"
    print(fmt.format(*head))
    for thr, op, t_ours, peer, t_peer, ratio, target in rows:
        print(fmt.format(thr, op, f"{t_ours * 1e3:.2f}", peer, f"{t_peer * 1e3:.2f}", f"{ratio:.2f}x",
                         target))


if __name__ == "__main__":
    main()
