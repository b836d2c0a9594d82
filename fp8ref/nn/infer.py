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
``tolerance`` changes the 0.5 %.

FP8 quantisation has a cost of its own that no scale removes (E4M3 keeps 4 significant bits; the tiny
preset's 32-wide dot products average little of that noise away), so the report also gives the
*plateau*: the CSCALE biases within the same tolerance of the AMAX loss -- the biases where a constant scale
is as good as the per-tensor dynamic one. Outside it, weights underflow (bias too small) or activations
saturate (bias too large).
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
    tolerance: float = TOLERANCE,
) -> dict[str, Any]:
    """Evaluate a checkpoint in fp32, FP8-AMAX and FP8-CSCALE for each bias. Returns a JSON-able dict:
    ``fp32``, ``amax``, ``cscale`` ({bias: loss}), ``window`` (biases within ``tolerance`` of fp32),
    ``plateau`` (biases within ``tolerance`` of AMAX), ``tolerance``, settings."""
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must lie in [0, 1), got {tolerance}")
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
    win = window(bias_list, [sweep[b] for b in bias_list], ref, tolerance)
    plateau = window(bias_list, [sweep[b] for b in bias_list], amax, tolerance)
    return {
        "checkpoint": str(path),
        "run": str(run),
        "formats": base.formats,
        "accumulate": accumulate,
        "fp8_layers": list(base.fp8_layers),
        "eval_batches": base.eval_batches,
        "tolerance": tolerance,
        "fp32": ref,
        "amax": amax,
        "cscale": {str(b): sweep[b] for b in bias_list},
        "window": win,
        "plateau": plateau,
    }


def describe_biases(biases: list[int], swept: list[int]) -> str:
    """``biases LO .. HI``, with the full list when the biases are not one run of the swept ones."""
    if not biases:
        return "empty"
    i = swept.index(biases[0])
    contiguous = swept[i : i + len(biases)] == biases
    return f"biases {biases[0]} .. {biases[-1]}" + ("" if contiguous else f" (not contiguous: {biases})")


def format_report(res: dict[str, Any]) -> str:
    """The table ``fp8ref infer`` prints."""
    ref, tol = res["fp32"], res["tolerance"]
    pct = f"{tol * 100:g} %"
    lines = [
        f"checkpoint {res['checkpoint']}  (formats {res['formats']}, accumulate {res['accumulate']}, "
        f"FP8 layers {','.join(res['fp8_layers'])})",
        f"{'method':<16}{'val loss':>10}{'/ fp32':>9}  within {pct} of fp32",
        f"{'fp32':<16}{ref:>10.4f}{1.0:>9.4f}  -",
        f"{'fp8-amax':<16}{res['amax']:>10.4f}{res['amax'] / ref:>9.4f}  "
        f"{'yes' if res['amax'] <= ref * (1 + tol) else 'no'}",
    ]
    for b, v in res["cscale"].items():
        ok = "yes" if v <= ref * (1 + tol) else "no"
        lines.append(f"{'fp8-cscale:' + b:<16}{v:>10.4f}{v / ref:>9.4f}  {ok}")
    swept = [int(b) for b in res["cscale"]]
    win = describe_biases(res["window"], swept)
    if not res["window"]:
        win += " -- no constant bias keeps the loss that close to fp32"
    lines.append(f"CSCALE window (loss within {pct} of fp32): {win}")
    lines.append(f"CSCALE plateau (loss within {pct} of FP8-AMAX): {describe_biases(res['plateau'], swept)}")
    return "\n".join(lines)
