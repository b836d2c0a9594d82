"""``fp8ref sweep --report DIR``: the summary table (CSV, Markdown) and the figures of a sweep folder.

Reads ``spec.toml``, the cells' records (completion markers, else ``results.jsonl``) and nothing else:
it computes nothing and can run while the sweep runs. Writes ``DIR/report/``:

* ``summary.csv`` -- one row per cell: name, status, every option, the metrics of the kind, error, wall time.
* ``summary.md`` -- for ``train``, final validation loss per (preset, format family, recipe, bias, other
  axes) over the seeds: cells ok / run, mean, standard deviation, minimum, maximum, and the mean over the
  fp32 mean; for ``ptq``, each checkpoint's fp32 / AMAX loss, window and plateau; for ``golden`` and
  ``conform``, pass / fail per cell. Failed cells with their errors.
* ``loss_vs_bias.png`` (``train``): the paper's figure -- final validation loss against the FP8-CSCALE
  scaling bias, one line per format family, a column per preset (and other axis values), mean over the
  seeds with the minimum..maximum over the seeds as bars; the fp32 and FP8-AMAX losses of the sweep's
  cells of those recipes as bands (minimum..maximum over seeds) around a line at their mean. Top row: the
  whole range; bottom row: the part within 10 % of fp32, where the window lies.
* ``ptq_loss_vs_bias.png`` (``ptq``), ``pass_fail.png`` (``golden``, ``conform``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fp8ref.nn.plots import pyplot
from fp8ref.outputs import UsageError
from fp8ref.sweep import results as rs
from fp8ref.sweep.spec import Cell, Sweep

__all__ = ["write_report", "train_groups", "records_of"]

METRICS: dict[str, tuple[str, ...]] = {
    "train": (
        "recipe",
        "final_val_loss",
        "final_train_loss",
        "best_loss",
        "steps",
        "run_status",
        "diverged_step",
    ),
    "ptq": ("formats", "fp32", "amax", "window", "plateau", "cscale"),
    "golden": ("suites", "cases", "bytes"),
    "conform": ("passed", "cases", "exact", "within", "failed", "skipped", "errors"),
}
# what a train cell runs when an option is not given (fp8ref train's defaults)
_TRAIN_DEFAULTS = {"preset": "tiny", "formats": "ocp", "bias": 4, "seed": 0}
_FAMILY = {"ocp": "OCP E4M3 / E5M2", "fnuz": "FNUZ E4M3FNUZ / E5M2FNUZ"}
_SERIES_AXES = ("seed", "bias", "recipe", "formats", "preset")


def records_of(out: Path, cells: list[Cell]) -> dict[str, dict[str, Any]]:
    """Each cell's record: its completion marker, else its last line in ``results.jsonl``."""
    recs = {r["name"]: r for r in rs.read_results(out)}
    recs.update(rs.read_done(out, [c.name for c in cells]))
    return recs


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, dict | list):
        return json.dumps(v)
    return str(v)


# ---- train: groups over seeds ------------------------------------------------------------------------------
def _recipe_bias(params: dict[str, Any], rec: dict[str, Any]) -> tuple[str, int | None]:
    label = rec.get("label") or str(params.get("recipe", ""))
    name, _, b = str(label).partition(":")
    if name != "fp8-cscale":
        return name, None
    if b:
        return name, int(b)
    return name, int(params.get("bias", _TRAIN_DEFAULTS["bias"]))


def train_groups(cells: list[Cell], recs: dict[str, dict[str, Any]], axes: list[str]) -> list[dict[str, Any]]:
    """Cells grouped over seeds: one dict per (panel, formats, recipe, bias) with ``losses`` (final
    validation losses of the ok cells), ``failed`` (count), ``cells`` (count)."""
    other = [a for a in axes if a not in _SERIES_AXES]
    groups: dict[tuple, dict[str, Any]] = {}
    for c in cells:
        p = c.params
        rec = recs.get(c.name)
        recipe, bias = _recipe_bias(p, rec or {})
        preset = p.get("preset", _TRAIN_DEFAULTS["preset"])
        formats = p.get("formats", _TRAIN_DEFAULTS["formats"]) if recipe != "fp32" else "-"
        panel = (preset, *(f"{a}={p[a]}" for a in other if a in p))
        key = (panel, formats, recipe, bias)
        g = groups.setdefault(
            key,
            {
                "panel": panel,
                "formats": formats,
                "recipe": recipe,
                "bias": bias,
                "losses": [],
                "failed": 0,
                "cells": 0,
                "not_run": 0,
            },
        )
        g["cells"] += 1
        if rec is None:
            g["not_run"] += 1
        elif rec.get("status") == "ok" and _finite(rec.get("final_val_loss")):
            g["losses"].append(float(rec["final_val_loss"]))
        else:
            g["failed"] += 1
    return list(groups.values())


def _stats(xs: list[float]) -> tuple[float, float, float, float]:
    n = len(xs)
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return mean, std, min(xs), max(xs)


def _train_md(groups: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    ref = {}
    for g in groups:
        if g["recipe"] == "fp32" and g["losses"]:
            ref[g["panel"]] = _stats(g["losses"])[0]
    lines = [
        "| panel | formats | recipe | bias | ok / cells | mean | std | min | max | mean / fp32 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {"fp32": 0, "fp8-amax": 1, "fp8-cscale": 3}

    def key(g: dict[str, Any]) -> tuple:
        return (g["panel"], order.get(g["recipe"], 2), g["recipe"], g["formats"], g["bias"] or 0)

    for g in sorted(groups, key=key):
        n_ok = len(g["losses"])
        if n_ok:
            mean, std, lo, hi = _stats(g["losses"])
            r = ref.get(g["panel"])
            cols = [f"{mean:.4f}", f"{std:.4f}", f"{lo:.4f}", f"{hi:.4f}", f"{mean / r:.4f}" if r else ""]
        else:
            cols = ["", "", "", "", ""]
        bias = "" if g["bias"] is None else str(g["bias"])
        lines.append(
            f"| {' '.join(g['panel'])} | {g['formats']} | {g['recipe']} | {bias} | {n_ok} / {g['cells']} | "
            + " | ".join(cols)
            + " |"
        )
    notes = []
    panels = sorted({g["panel"] for g in groups})
    for panel in panels:
        recipes = {g["recipe"] for g in groups if g["panel"] == panel and g["losses"]}
        planned = {g["recipe"] for g in groups if g["panel"] == panel}
        for want, label in (("fp32", "fp32"), ("fp8-amax", "FP8-AMAX")):
            if want in planned and want not in recipes:
                notes.append(
                    f"No {label} level for panel {' '.join(panel)} yet: its {want} cells have not "
                    "completed (or failed)."
                )
            elif want not in recipes:
                notes.append(
                    f'No {label} level for panel {" ".join(panel)}: add cells with recipe = "{want}" and '
                    "the same preset, steps and seeds (e.g. another [[grid]] with recipe = "
                    f'["{want}"] and the seed axis).'
                )
    return lines, notes


# ---- figures -----------------------------------------------------------------------------------------------
def _band(ax: Any, losses: list[float], color: str, label: str, hatch: str | None = None) -> None:
    mean, _, lo, hi = _stats(losses)
    if hi > lo:
        ax.axhspan(lo, hi, color=color, alpha=0.18, hatch=hatch, lw=0)
    ax.axhline(mean, color=color, ls="--", lw=1.3, label=label)


def plot_train(path: Path, groups: list[dict[str, Any]], title: str) -> Path | None:
    """The paper's figure (see the module docstring). Format families are drawn side by side (their points
    shifted by a fraction of a bias step) so that equal losses do not hide each other."""
    plt = pyplot()
    if plt is None:
        return None
    panels = sorted({g["panel"] for g in groups})
    if not panels:
        return None
    fams = sorted({g["formats"] for g in groups if g["formats"] != "-"})
    colors = dict(zip(fams, ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:red"), strict=False))
    markers = dict(zip(fams, ("o", "s", "^", "D", "v"), strict=False))
    shift = {f: (k - (len(fams) - 1) / 2) * 0.16 for k, f in enumerate(fams)}
    fig, axes = plt.subplots(
        2,
        len(panels),
        figsize=(6.8 * len(panels), 9.6),
        squeeze=False,
        gridspec_kw={"height_ratios": [1, 1.2]},
    )
    for j, panel in enumerate(panels):
        mine = [g for g in groups if g["panel"] == panel]
        fp32 = [x for g in mine if g["recipe"] == "fp32" for x in g["losses"]]
        ref = _stats(fp32)[0] if fp32 else None
        all_ok = [x for g in mine for x in g["losses"]]
        biases = sorted({g["bias"] for g in mine if g["bias"] is not None})
        for i, ax in enumerate(axes[:, j]):
            if fp32:
                _band(ax, fp32, "0.35", f"fp32 (line: mean; band: min..max, {len(fp32)} runs)")
            for fam in fams:
                amax = [
                    x for g in mine if g["recipe"] == "fp8-amax" and g["formats"] == fam for x in g["losses"]
                ]
                if amax:
                    _band(
                        ax,
                        amax,
                        colors[fam],
                        f"FP8-AMAX {fam} (line: mean; band: min..max, {len(amax)} runs)",
                        "//",
                    )
            for fam in fams:
                cs = sorted(
                    (g for g in mine if g["recipe"] == "fp8-cscale" and g["formats"] == fam),
                    key=lambda g: g["bias"],
                )
                pts = [g for g in cs if g["losses"]]
                if pts:
                    st = [_stats(g["losses"]) for g in pts]
                    ax.errorbar(
                        [g["bias"] + shift[fam] for g in pts],
                        [s[0] for s in st],
                        yerr=[[s[0] - s[2] for s in st], [s[3] - s[0] for s in st]],
                        fmt=markers[fam] + "-",
                        color=colors[fam],
                        capsize=3,
                        ms=4.5,
                        lw=1.5,
                        label=f"FP8-CSCALE {_FAMILY.get(fam, fam)} (mean of "
                        f"{max(len(g['losses']) for g in pts)} seeds; bars: min..max)",
                    )
                bad = [g["bias"] + shift[fam] for g in cs if g["failed"]]
                if bad:  # at the top of the axes: a seed of that bias failed (diverged): no loss to plot
                    ax.plot(
                        bad,
                        [0.96] * len(bad),
                        "x",
                        color=colors[fam],
                        ms=9,
                        mew=2,
                        transform=ax.get_xaxis_transform(),
                        label=f"FP8-CSCALE {fam}: a seed failed / diverged",
                    )
            if i == 1 and all_ok:
                base = ref if ref is not None else min(all_ok)
                ax.set_ylim(min(all_ok) - 0.01 * base, base * 1.10)
                ax.set_title(
                    f"{' '.join(panel)}, zoom: losses within 10 % of "
                    + ("fp32" if ref is not None else "the lowest loss"),
                    fontsize=10,
                )
            elif i == 0:
                ax.set_title(f"preset {' '.join(panel)}: whole range", fontsize=10)
            ax.set_xlabel("FP8-CSCALE scaling bias b (x_fp8 = Q(x * 2**b) for every w, x, g)")
            ax.set_ylabel("final validation loss (nats/token)")
            ax.grid(alpha=0.3)
            if biases:
                ax.set_xticks(biases)
        if ref is None:
            axes[1, j].text(
                0.02,
                0.02,
                'no fp32 cells: add recipe = "fp32" cells for the fp32 band',
                transform=axes[1, j].transAxes,
                fontsize=8,
                color="firebrick",
            )
    handles, labels = axes[0, 0].get_legend_handles_labels()
    ncol = 1 if len(panels) == 1 else 2
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.022 * (1 + -(-len(labels) // ncol)), 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ptq(path: Path, cells: list[Cell], recs: dict[str, dict[str, Any]], axes: list[str]) -> Path | None:
    """Loss against the CSCALE bias per (checkpoint, formats, other axes), fp32 and AMAX as lines."""
    plt = pyplot()
    if plt is None:
        return None
    series: dict[str, dict[str, Any]] = {}
    for c in cells:
        r = recs.get(c.name)
        if not r or r.get("status") != "ok" or not isinstance(r.get("cscale"), dict):
            continue
        label = (
            ", ".join(
                f"{a}={Path(str(c.params[a])).name if a == 'checkpoint' else c.params[a]}"
                for a in axes
                if a not in ("biases",) and a in c.params
            )
            or "checkpoint"
        )
        s = series.setdefault(label, {"cscale": {}, "fp32": r.get("fp32"), "amax": r.get("amax")})
        s["cscale"].update({int(b): v for b, v in r["cscale"].items()})
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(9.0, 5.6))
    for k, (label, s) in enumerate(sorted(series.items())):
        color = f"C{k % 10}"
        xs = sorted(s["cscale"])
        ax.plot(xs, [s["cscale"][b] for b in xs], "o-", color=color, ms=3.5, label=label)
        if _finite(s["fp32"]):
            ax.axhline(s["fp32"], color=color, ls=":", lw=1.2)
        if _finite(s["amax"]):
            ax.axhline(s["amax"], color=color, ls="--", lw=1.2)
    ax.plot([], [], color="0.3", ls=":", label="fp32 loss (series colour)")
    ax.plot([], [], color="0.3", ls="--", label="FP8-AMAX loss (series colour)")
    ax.set_xlabel("FP8-CSCALE scaling bias")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("post-training FP8 quantisation: loss against the constant scaling bias (solid: FP8-CSCALE)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _verdict(kind: str, rec: dict[str, Any] | None) -> tuple[str, str]:
    """``(state, text)``: state is pass / fail / error / missing."""
    if rec is None:
        return "missing", "not run"
    if rec.get("status") != "ok":
        return "error", "failed"
    if kind == "conform":
        if rec.get("passed"):
            return "pass", (
                f"pass ({rec.get('exact', 0)} exact, {rec.get('within', 0)} within, "
                f"{rec.get('skipped', 0)} skipped)"
            )
        return "fail", f"FAIL ({rec.get('failed', 0)} failed, {rec.get('errors', 0)} errors)"
    return "pass", f"{rec.get('cases', 0)} cases"


def plot_pass_fail(
    path: Path, kind: str, cells: list[Cell], recs: dict[str, dict[str, Any]], axes: list[str]
) -> Path | None:
    """A grid of cells, coloured pass (green), fail (red), failed to run (grey), not run (white): rows and
    columns are the two axes when the sweep has two, else one row per cell."""
    plt = pyplot()
    if plt is None or not cells:
        return None
    colour = {"pass": "#4caf50", "fail": "#e53935", "error": "#9e9e9e", "missing": "#ffffff"}
    if len(axes) == 2:
        rows = list(dict.fromkeys(str(c.params.get(axes[0])) for c in cells))
        cols = list(dict.fromkeys(str(c.params.get(axes[1])) for c in cells))
        where = {(str(c.params.get(axes[0])), str(c.params.get(axes[1]))): c for c in cells}
        ylabel, xlabel = axes
    else:
        rows, cols = [c.name for c in cells], ["result"]
        where = {(c.name, "result"): c for c in cells}
        ylabel, xlabel = "cell", ""
    w = max(4.5, 1.9 * len(cols) + 0.09 * max(len(r) for r in rows) + 1)
    fig, ax = plt.subplots(figsize=(min(w, 22), max(2.0, 0.42 * len(rows) + 1.4)))
    for i, rname in enumerate(rows):
        for j, cname in enumerate(cols):
            c = where.get((rname, cname))
            state, text = ("missing", "") if c is None else _verdict(kind, recs.get(c.name))
            ax.add_patch(plt.Rectangle((j, i), 0.96, 0.9, color=colour[state], ec="0.6"))
            ax.text(j + 0.48, i + 0.45, text, ha="center", va="center", fontsize=8)
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([j + 0.48 for j in range(len(cols))], cols, fontsize=8)
    ax.set_yticks([i + 0.45 for i in range(len(rows))], rows, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    ok = sum(1 for c in cells if _verdict(kind, recs.get(c.name))[0] == "pass")
    ax.set_title(f"fp8ref sweep ({kind}): {ok} of {len(cells)} cells pass", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- the report --------------------------------------------------------------------------------------------
def _csv(path: Path, kind: str, cells: list[Cell], recs: dict[str, dict[str, Any]]) -> None:
    params = list(dict.fromkeys(k for c in cells for k in c.params))
    metrics = list(METRICS[kind])
    head = [
        "name",
        "status",
        *params,
        *(f"result_{m}" if m in params else m for m in metrics),
        "error",
        "wall_s",
        "worker",
        "dir",
    ]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(head)
        for c in cells:
            r = recs.get(c.name) or {}
            row = [c.name, r.get("status", "not run")]
            row += [
                _fmt(c.params.get(k)) if isinstance(c.params.get(k), dict | list) else c.params.get(k, "")
                for k in params
            ]
            row += [json.dumps(r[m]) if isinstance(r.get(m), dict | list) else r.get(m, "") for m in metrics]
            row += [r.get("error") or "", r.get("wall_s", ""), r.get("worker") or "", c.dir]
            w.writerow(["" if v is None else v for v in row])


def _md_table(head: list[str], rows: Iterable[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in r) + " |" for r in rows]
    return out


def write_report(out: str | Path) -> list[Path]:
    """Write ``out/report/`` (see the module docstring); returns the paths written."""
    out = Path(out)
    if not rs.is_sweep_folder(out):
        raise UsageError(f"--report {out}: not a sweep folder (no {rs.SPEC} and {rs.STATE}/)")
    sweep = Sweep.from_toml(out / rs.SPEC)
    cells = sweep.expand()
    recs = records_of(out, cells)
    axes = sweep.axes
    dest = out / "report"
    dest.mkdir(exist_ok=True)
    written = []
    _csv(dest / "summary.csv", sweep.kind, cells, recs)
    written.append(dest / "summary.csv")

    n_ok = sum(1 for c in cells if recs.get(c.name, {}).get("status") == "ok")
    n_run = sum(1 for c in cells if c.name in recs)
    md = [
        f"# fp8ref sweep report: {out.name}",
        "",
        f"kind `{sweep.kind}`; {len(cells)} cells: {n_ok} ok, {n_run - n_ok} failed, "
        f"{len(cells) - n_run} not run.",
        f"Axes: {', '.join(axes) or '(none)'}; fixed: "
        + (", ".join(f"{k} = {v!r}" for k, v in sweep.fixed.items()) or "(none)"),
        "",
    ]
    figure: Path | None = None
    if sweep.kind == "train":
        groups = train_groups(cells, recs, axes)
        lines, notes = _train_md(groups)
        md += ["## Final validation loss over seeds", "", *lines, ""]
        md += [f"- {n}" for n in notes] + ([""] if notes else [])
        steps = sweep.fixed.get("steps")
        figure = plot_train(
            dest / "loss_vs_bias.png",
            groups,
            f"fp8ref sweep {out.name}: final validation loss against the FP8-CSCALE bias"
            + (f" ({steps} steps)" if steps else ""),
        )
    elif sweep.kind == "ptq":
        rows = []
        for c in cells:
            r = recs.get(c.name) or {}
            rows.append(
                [
                    c.name,
                    r.get("status", "not run"),
                    r.get("formats"),
                    r.get("fp32"),
                    r.get("amax"),
                    r.get("window"),
                    r.get("plateau"),
                ]
            )
        md += _md_table(["cell", "status", "formats", "fp32", "amax", "window", "plateau"], rows) + [""]
        figure = plot_ptq(dest / "ptq_loss_vs_bias.png", cells, recs, axes)
    else:
        rows = [
            [c.name, _verdict(sweep.kind, recs.get(c.name))[1], (recs.get(c.name) or {}).get("dir", c.dir)]
            for c in cells
        ]
        md += _md_table(["cell", "result", "folder"], rows) + [""]
        if sweep.kind == "golden" and (out / "golden" / "manifest.json").is_file():
            md += [
                f"Merged set: `{out / 'golden'}` (check it with `fp8ref golden verify {out / 'golden'}`).",
                "",
            ]
        figure = plot_pass_fail(dest / "pass_fail.png", sweep.kind, cells, recs, axes)
    failed = [
        (c.name, recs[c.name].get("error"))
        for c in cells
        if c.name in recs and recs[c.name].get("status") != "ok"
    ]
    if failed:
        md += ["## Failed cells", ""] + [f"- `{n}`: {e}" for n, e in failed] + [""]
    if figure is not None:
        md += [f"![figure]({figure.name})", ""]
        written.append(figure)
    elif pyplot() is None:
        md += ["(figures need matplotlib: pip install 'fp8ref[plot]')", ""]
    (dest / "summary.md").write_text("\n".join(md), encoding="utf-8")
    written.insert(1, dest / "summary.md")
    return written
