"""Several recipes side by side: one sub-folder per recipe, a table, ``comparison.json`` and plots.

The comparison folder holds ``<label>/`` run folders (label = recipe spec with ``:`` replaced by ``_``,
e.g. ``fp8-cscale_4``), ``comparison.json`` (the deterministic summary of every run, plus tokens/s) and
``loss_curves.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fp8ref.nn.atomic import atomic_write
from fp8ref.nn.config import TrainConfig
from fp8ref.nn.runfolder import find_runs, read_config
from fp8ref.nn.train import RunResult, TrainingDiverged, read_metrics, tokens_per_second, train


def folder_name(label: str) -> str:
    return label.replace(":", "_")


@dataclass
class Outcome:
    label: str
    out: Path
    result: RunResult | None
    error: str | None


def run_one(
    cfg: TrainConfig,
    out: Path,
    *,
    ops: Any = None,
    resume: bool = False,
    progress: bool = True,
    threads: int = 1,
    plots: bool = True,
) -> Outcome:
    """Train (or resume) one run folder; a divergence is returned as an error, not raised."""
    label = cfg.label if not resume else read_config(out).label
    try:
        res = train(cfg, out, ops=ops, resume=resume, progress=progress, desc=label, threads=threads)
    except TrainingDiverged as exc:
        return Outcome(label, out, None, str(exc))
    if plots:
        plot_run(out, res)
    return Outcome(label, out, res, None)


def plot_run(out: Path, res: RunResult) -> None:
    from fp8ref.nn import plots

    recs = read_metrics(out)
    plots.plot_losses(
        out / "loss.png",
        [(res.config.label, recs)],
        res.summary.get("best_loss"),
        title=f"{res.config.label} ({res.summary.get('data')})",
    )
    plots.plot_scale_bias(
        out / "scale_bias.png",
        recs,
        title=f"{res.config.label}: scaling bias of each FP8 layer at every step "
        "(w weight, x input activation, g output gradient)",
    )


def table_rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """One row per run: recipe, final validation loss, ratio to the fp32 run's, best loss, tokens/s."""
    rows = []
    ref = next(
        (
            o.result.summary["final_val_loss"]
            for o in outcomes
            if o.result is not None and o.result.config.recipe == "fp32"
        ),
        None,
    )
    for o in outcomes:
        if o.result is None:
            rows.append({"recipe": o.label, "folder": o.out.name, "status": "diverged", "error": o.error})
            continue
        s = o.result.summary
        loss = s["final_val_loss"]
        rows.append(
            {
                "recipe": o.label,
                "folder": o.out.name,
                "status": s["status"],
                "final_val_loss": loss,
                "ratio_to_fp32": None if ref is None else loss / ref,
                "best_loss": s["best_loss"],
                "entropy_rate": s["entropy_rate"],
                "tokens_per_s": tokens_per_second(o.out),
            }
        )
    return rows


def write_comparison(folder: Path, outcomes: list[Outcome], plots: bool = True) -> dict[str, Any]:
    """``comparison.json`` and ``loss_curves.png`` of a comparison folder."""
    rows = table_rows(outcomes)
    doc = {"runs": rows}
    atomic_write(folder / "comparison.json", (json.dumps(doc, indent=2) + "\n").encode())
    if plots:
        from fp8ref.nn import plots as pl

        best = next((r["best_loss"] for r in rows if r.get("best_loss") is not None), None)
        pl.plot_losses(
            folder / "loss_curves.png",
            [(o.label, read_metrics(o.out)) for o in outcomes if o.result is not None],
            best,
            title="loss per recipe",
        )
    return doc


def format_table(rows: list[dict[str, Any]]) -> str:
    """Side-by-side table: final validation loss, ratio to fp32, best achievable loss, tokens/s."""
    head = f"{'recipe':<18}{'final loss':>11}{'/ fp32':>9}{'best achievable':>17}{'tokens/s':>11}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["status"] == "diverged":
            lines.append(f"{r['recipe']:<18}{'-':>11}{'-':>9}{'-':>17}{'-':>11}  diverged")
            continue
        ratio = "-" if r["ratio_to_fp32"] is None else f"{r['ratio_to_fp32']:.4f}"
        best = "-" if r["best_loss"] is None else f"{r['best_loss']:.4f}"
        tps = "-" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:,.0f}"
        lines.append(
            f"{r['recipe']:<18}{r['final_val_loss']:>11.4f}{ratio:>9}{best:>17}{tps:>11}  {r['status']}"
        )
    return "\n".join(lines)


__all__ = [
    "Outcome",
    "folder_name",
    "run_one",
    "plot_run",
    "table_rows",
    "write_comparison",
    "format_table",
    "find_runs",
]
