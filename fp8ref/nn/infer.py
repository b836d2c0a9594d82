"""Post-training FP8 quantisation of a trained checkpoint (the paper's inference experiment).

The float32 master weights of a checkpoint are evaluated on the validation batches three ways, running the
chosen linear layers' forward GEMM ``X8 @ W8`` in FP8 (E4M3 x E4M3):

* ``fp32`` -- no FP8 (the reference loss);
* ``amax`` -- FP8-AMAX: per-tensor just-in-time bias of every weight and activation;
* ``cscale`` -- FP8-CSCALE: one constant bias ``b`` for every weight and activation, for each ``b`` of a
  sweep.

The paper's criterion is that FP8 keeps at least 99.5 % of the higher-precision quality; here that is a
loss within 0.5 % of the fp32 loss: ``loss <= fp32_loss * 1.005``. The *window* is the set of CSCALE
biases meeting it (printed as its smallest and largest member and, if it has holes, the full list).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fp8ref.nn import checkpoint as ckpt
from fp8ref.nn.config import TrainConfig
from fp8ref.nn.threads import limited_threads

TOLERANCE = 0.005  # the paper's 99.5 % criterion, as a relative loss increase


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """``(run folder, checkpoint file)`` for a run folder (its latest checkpoint) or a checkpoint file."""
    p = Path(path)
    if p.is_dir():
        if not (p / "config.json").is_file():
            subs = sorted(q.name for q in p.iterdir() if (q / "config.json").is_file())
            hint = f"; it holds the runs {', '.join(subs)}: pass one of them" if subs else ""
            raise ValueError(f"{p} is not a run folder (no config.json){hint}")
        last = ckpt.latest(p / "checkpoints")
        if last is None:
            raise ckpt.CheckpointError(f"{p} holds no checkpoint in {p / 'checkpoints'}")
        return p, last
    if p.is_file():
        run = p.parent.parent
        if not (run / "config.json").is_file():
            raise ValueError(
                f"{p}: no config.json two levels up ({run}); a checkpoint must stay in its run folder"
            )
        return run, p
    raise ValueError(f"{p} does not exist")


def window(biases: list[int], losses: list[float], ref: float, tol: float = TOLERANCE) -> list[int]:
    """The biases whose loss is at most ``ref * (1 + tol)``."""
    return [b for b, v in zip(biases, losses, strict=True) if v <= ref * (1.0 + tol)]


def evaluate_ptq(
    checkpoint: str | Path,
    biases: Iterable[int] = range(-8, 17),
    *,
    formats: str | None = None,
    accumulate: str | None = "exact",
    fp8_layers: tuple[str, ...] | None = None,
    eval_batches: int | None = None,
    ops: Any = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Evaluate a checkpoint in fp32, FP8-AMAX and FP8-CSCALE for each bias. Returns a JSON-able dict:
    ``fp32``, ``amax``, ``cscale`` ({bias: loss}), ``window`` (list of biases), ``tolerance``, settings."""
    from fp8ref.nn.train import build_model, evaluate, load_data, load_params, read_config

    run, path = resolve_checkpoint(checkpoint)
    base = read_config(run)
    over: dict[str, Any] = {"accumulate": accumulate}
    if formats is not None:
        over["formats"] = formats
    if fp8_layers is not None:
        over["fp8_layers"] = tuple(fp8_layers)
    if eval_batches is not None:
        over["eval_batches"] = int(eval_batches)
    base = replace(base, **over)
    bias_list = [int(b) for b in biases]
    if not bias_list:
        raise ValueError("biases must hold at least one bias")
    data = load_data(base)
    params = load_params(path)

    def loss_of(cfg: TrainConfig) -> float:
        model, fp8 = build_model(cfg, data.vocab_size, ops)
        return evaluate(model, params, data, cfg, fp8)

    with limited_threads(threads, numba=True):
        ref = loss_of(replace(base, recipe="fp32"))
        amax = loss_of(replace(base, recipe="fp8-amax"))
        sweep = {b: loss_of(replace(base, recipe="fp8-cscale", bias=b)) for b in bias_list}
    win = window(bias_list, [sweep[b] for b in bias_list], ref)
    return {
        "checkpoint": str(path),
        "run": str(run),
        "formats": base.formats,
        "accumulate": accumulate,
        "fp8_layers": list(base.fp8_layers),
        "eval_batches": base.eval_batches,
        "tolerance": TOLERANCE,
        "fp32": ref,
        "amax": amax,
        "cscale": {str(b): sweep[b] for b in bias_list},
        "window": win,
    }


def format_report(res: dict[str, Any]) -> str:
    """The table ``fp8ref infer`` prints."""
    ref = res["fp32"]
    lines = [
        f"checkpoint {res['checkpoint']}  (formats {res['formats']}, accumulate {res['accumulate']}, "
        f"FP8 layers {','.join(res['fp8_layers'])})",
        f"{'method':<16}{'val loss':>10}{'ratio':>9}  within 0.5 %",
        f"{'fp32':<16}{ref:>10.4f}{1.0:>9.4f}  -",
        f"{'fp8-amax':<16}{res['amax']:>10.4f}{res['amax'] / ref:>9.4f}  "
        f"{'yes' if res['amax'] <= ref * (1 + res['tolerance']) else 'NO'}",
    ]
    for b, v in res["cscale"].items():
        ok = "yes" if v <= ref * (1 + res["tolerance"]) else "NO"
        lines.append(f"{'fp8-cscale:' + b:<16}{v:>10.4f}{v / ref:>9.4f}  {ok}")
    win = res["window"]
    if win:
        contiguous = win == list(range(win[0], win[-1] + 1))
        extra = "" if contiguous else f" (not contiguous: {win})"
        lines.append(f"CSCALE window (loss within 0.5 % of fp32): biases {win[0]} .. {win[-1]}{extra}")
    else:
        lines.append("CSCALE window (loss within 0.5 % of fp32): empty -- no constant bias is good enough")
    return "\n".join(lines)
