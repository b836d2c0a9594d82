"""Speed of ``fp8ref sweep`` on a local Dask cluster (docs/sweep.md, docs/performance.md).

Three measurements, each on a fresh ``LocalCluster`` (one thread per worker) whose workers are warmed up
first (imports, Numba kernels loaded from the cache, one training step), so that start-up is not counted:

1. **Scheduling overhead per cell** (target < 50 ms): one worker runs ``--overhead-cells`` train cells of
   one step; overhead = (wall time of ``Sweep.run`` - sum of the cells' own ``wall_s``) / cells: Dask's
   submit / schedule / result transfer, the completion markers, the log file, ``results.jsonl``.
2. **Speed-up of 2 workers over 1** (target >= 1.7x) on ``--cells`` CPU-bound train cells (tiny preset,
   ``--steps`` steps, different seeds): wall time of the same sweep on 1 and on 2 workers.
3. **Memory per worker**: peak resident memory of each worker after its cells (``ru_maxrss``), against the
   peak of one ``fp8ref train`` of the same cell in a fresh process.

Run: ``PYTHONPATH=. python benchmarks/bench_sweep.py [--cells 8] [--steps 300] [--overhead-cells 40]``.
The machine's load average is printed: on a shared machine the speed-up is bounded by the free cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL = {"batch_size": 8, "block_size": 16, "no_plots": True}


def _warm() -> int:
    """In a worker: import the trainer and run one step (loads the Numba kernels); returns the pid."""
    import contextlib
    import io

    from fp8ref.cli import main

    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):
        main(
            [
                "train",
                "--recipe",
                "fp8-amax",
                "--steps",
                "1",
                "--batch-size",
                "8",
                "--block-size",
                "16",
                "--no-plots",
                "--quiet",
                "--out",
                f"{d}/w",
            ]
        )
    return os.getpid()


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cluster(n: int):
    import logging

    from distributed import Client, LocalCluster

    lc = LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
    )
    client = Client(lc)
    client.wait_for_workers(n)
    client.run(_warm)
    return lc, client


def _sweep(kind_fixed: dict, seeds: list[int]):
    from fp8ref.sweep import Sweep

    return Sweep(kind="train", grid={"seed": seeds}, fixed=kind_fixed)


def overhead(cells: int) -> dict:
    lc, client = _cluster(1)
    try:
        s = _sweep({"recipe": "fp8-cscale", "steps": 1, **SMALL}, list(range(cells)))
        s.cells  # noqa: B018 - validation is not scheduling
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            recs = s.run(Path(d) / "o", client, progress=False)
            wall = time.perf_counter() - t0
        busy = sum(r["wall_s"] for r in recs)
        noop = time.perf_counter()
        futs = client.map(lambda i: i, range(cells), pure=False)
        client.gather(futs)
        noop = time.perf_counter() - noop
    finally:
        client.close()
        lc.close()
    return {
        "cells": cells,
        "wall_s": wall,
        "cells_s": busy,
        "per_cell_ms": 1e3 * (wall - busy) / cells,
        "dask_noop_ms": 1e3 * noop / cells,
    }


def speedup(cells: int, steps: int) -> dict:
    out = {}
    for n in (1, 2):
        lc, client = _cluster(n)
        try:
            s = _sweep({"recipe": "fp8-amax", "steps": steps, **SMALL}, list(range(cells)))
            s.cells  # noqa: B018
            cpu0 = client.run(_cpu_s)
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                recs = s.run(Path(d) / "o", client, progress=False)
                out[n] = time.perf_counter() - t0
            cpu1 = client.run(_cpu_s)
            out[f"cores_{n}"] = sum(cpu1[w] - cpu0[w] for w in cpu1) / out[n]
            assert all(r["status"] == "ok" for r in recs)
            rss = client.run(_peak_rss_mib)
            out[f"rss_{n}"] = sorted(rss.values())
            out[f"cell_s_{n}"] = sum(r["wall_s"] for r in recs) / len(recs)
        finally:
            client.close()
            lc.close()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fp8ref",
                "train",
                "--recipe",
                "fp8-amax",
                "--steps",
                str(steps),
                "--batch-size",
                "8",
                "--block-size",
                "16",
                "--no-plots",
                "--quiet",
                "--out",
                f"{d}/one",
            ],
            check=True,
            capture_output=True,
        )
    out["single_rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--overhead-cells", type=int, default=40)
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    o = overhead(a.overhead_cells)
    print(
        f"1. scheduling overhead: {o['cells']} one-step train cells on 1 worker in {o['wall_s']:.2f} s, "
        f"the cells' own time {o['cells_s']:.2f} s -> {o['per_cell_ms']:.1f} ms per cell "
        f"(target < 50 ms: {'met' if o['per_cell_ms'] < 50 else 'NOT met'}); a Dask no-op task: "
        f"{o['dask_noop_ms']:.1f} ms"
    )
    s = speedup(a.cells, a.steps)
    print(f"load average now: {os.getloadavg()[0]:.2f}")
    ratio = s[1] / s[2]
    print(
        f"2. {a.cells} train cells (tiny, fp8-amax, {a.steps} steps, batch 8 x 16): 1 worker {s[1]:.1f} s "
        f"(a cell {s['cell_s_1']:.2f} s), 2 workers {s[2]:.1f} s (a cell {s['cell_s_2']:.2f} s) -> "
        f"{ratio:.2f}x (target >= 1.7x: {'met' if ratio >= 1.7 else 'NOT met'}); the workers' CPU time "
        f"over the wall time: {s['cores_1']:.2f} cores with 1 worker, {s['cores_2']:.2f} with 2 (on a "
        "machine whose other jobs leave fewer than 2 cores free, the speed-up is bounded by the free cores)"
    )
    print(
        f"3. peak RSS per worker after its cells: 1 worker {s['rss_1']} MiB, 2 workers "
        f"{[round(x) for x in s['rss_2']]} MiB; one fp8ref train of such a cell alone: "
        f"{s['single_rss']:.0f} MiB"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
