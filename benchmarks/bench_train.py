"""Training-step time of the NumPy GPT: each FP8 recipe against fp32, measured in the same run.

Target (docs/trainer.md): an fp8-amax step takes at most 2.0x the fp32 step on the default (tiny) preset.

    python benchmarks/bench_train.py                  # tiny preset, fp32 / fp8-amax / fp8-cscale
    python benchmarks/bench_train.py --preset small --recipes fp32,fp8-amax,fp8-delayed --steps 20

A step is one forward + backward + AdamW update on one batch (``fp8ref.nn.train``'s loop body, no I/O). The
recipes are interleaved round by round and the median over rounds is reported, so load changes on a shared
machine hit every recipe alike. BLAS and Numba run on one thread, as in ``fp8ref train``.
"""

from __future__ import annotations

import argparse
import statistics
import time


def step_timer(cfg, data):  # noqa: ANN001, ANN201 - a closure over one recipe's model and state
    from fp8ref.nn.model import init_params
    from fp8ref.nn.optim import AdamW, AdamWConfig, clip_grads, global_norm
    from fp8ref.nn.train import build_model

    model, _ = build_model(cfg, data.vocab_size)
    params = init_params(model.cfg, cfg.seed)
    opt = AdamW(params, AdamWConfig(weight_decay=cfg.weight_decay))
    state = {"step": 0}

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            idx, tg = data.batch(cfg.seed, state["step"], cfg.batch_size, cfg.block_size)
            fw = model.forward(params, idx, tg)
            grads = model.backward(params, fw)
            clip_grads(grads, cfg.grad_clip, global_norm(grads))
            opt.step(params, grads, cfg.lr)
            state["step"] += 1
        return (time.perf_counter() - t0) / n

    return run


def main() -> None:
    from fp8ref.nn.config import TrainConfig
    from fp8ref.nn.threads import limited_threads
    from fp8ref.nn.train import load_data

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--recipes", default="fp32,fp8-amax,fp8-cscale")
    ap.add_argument("--steps", type=int, default=10, help="steps per round and recipe")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--accumulate", default="exact")
    args = ap.parse_args()

    base = TrainConfig.from_preset(args.preset, accumulate=args.accumulate)
    data = load_data(base)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if "fp32" not in recipes:
        recipes.insert(0, "fp32")
    tokens = base.batch_size * base.block_size
    with limited_threads(1, numba=True):
        timers = {r: step_timer(base.with_recipe(r), data) for r in recipes}
        for r in recipes:  # warm-up: Numba compilation / cache load, first-touch allocations
            timers[r](2)
        times: dict[str, list[float]] = {r: [] for r in recipes}
        for _ in range(args.rounds):
            for r in recipes:
                times[r].append(timers[r](args.steps))
    med = {r: statistics.median(v) for r, v in times.items()}
    print(f"preset {args.preset}: {base.n_layer} layers, {base.n_embd} channels, batch {base.batch_size} x "
          f"T={base.block_size} = {tokens} tokens/step; accumulate {args.accumulate}; "
          f"median of {args.rounds} rounds x {args.steps} steps")
    print(f"{'recipe':<16}{'ms/step':>10}{'tokens/s':>12}{'x fp32':>9}")
    for r in recipes:
        print(f"{r:<16}{med[r] * 1e3:>10.2f}{tokens / med[r]:>12,.0f}{med[r] / med['fp32']:>9.2f}")
    if "fp8-amax" in med:
        ratio = med["fp8-amax"] / med["fp32"]
        verdict = "met" if ratio <= 2.0 else "NOT met"
        print(f"fp8-amax / fp32 step time: {ratio:.2f} (target <= 2.0: {verdict})")


if __name__ == "__main__":
    main()
