"""Embedding time of all-MiniLM-L6-v2: each FP8 recipe against float32, measured in the same run.

Target (docs/models.md): embedding fp8ref's 200 evaluation sentences in FP8 with exact accumulation takes at
most 3x the float32 path and under 30 s on 2 cores.

    python benchmarks/bench_models.py                         # fp32 / fp8-amax / fp8-cscale:2, 1 thread
    python benchmarks/bench_models.py --threads 2 --rounds 3

Each round embeds the whole set once per recipe (tokenising included; loading the model is not); the
recipes are interleaved round by round and the median over rounds is reported, so load changes on a shared
machine hit every recipe alike. Wall and CPU time are both printed: on a busy machine the wall time of a
round is its CPU time stretched by the other jobs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    from fp8ref.models import minilm, sentences
    from fp8ref.nn.threads import limited_threads

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="fp32,fp8-amax,fp8-cscale:2")
    ap.add_argument("--accumulate", default="exact")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="BLAS / Numba threads (default 1)")
    args = ap.parse_args()

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if "fp32" not in recipes:
        recipes.insert(0, "fp32")
    t0 = time.perf_counter()
    model = minilm.load()
    load_s = time.perf_counter() - t0
    sset = sentences.default_set()
    texts = list(sset.sentences)
    n_tokens = model.tokenize(texts).batch.n_tokens
    wall: dict[str, list[float]] = {r: [] for r in recipes}
    cpu: dict[str, list[float]] = {r: [] for r in recipes}
    with limited_threads(args.threads, numba=True):
        for r in recipes:  # warm-up: Numba compilation / cache loading
            model.embed(texts[:4], recipe=r, accumulate=args.accumulate)
        for _ in range(args.rounds):
            for r in recipes:
                c0, w0 = time.process_time(), time.perf_counter()
                model.embed(texts, recipe=r, accumulate=args.accumulate)
                wall[r].append(time.perf_counter() - w0)
                cpu[r].append(time.process_time() - c0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"all-MiniLM-L6-v2: {len(texts)} sentences, {n_tokens} tokens; accumulate {args.accumulate}; "
        f"{args.threads} thread(s); median of {args.rounds} rounds; model load {load_s:.1f} s; "
        f"load average {load:.1f}"
    )
    print(f"{'recipe':<16}{'wall s':>9}{'cpu s':>9}{'tokens/s':>11}{'x fp32 (wall)':>15}{'x fp32 (cpu)':>14}")
    w32, c32 = statistics.median(wall["fp32"]), statistics.median(cpu["fp32"])
    for r in recipes:
        w, c = statistics.median(wall[r]), statistics.median(cpu[r])
        print(f"{r:<16}{w:>9.2f}{c:>9.2f}{n_tokens / w:>11,.0f}{w / w32:>15.2f}{c / c32:>14.2f}")
    worst = max(statistics.median(wall[r]) for r in recipes if r != "fp32")
    ok = worst / w32 <= 3.0 and worst < 30.0
    print(
        f"slowest FP8 recipe: {worst:.2f} s, {worst / w32:.2f}x fp32 (target <= 3x and < 30 s: "
        f"{'met' if ok else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
