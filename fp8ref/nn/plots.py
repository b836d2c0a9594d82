"""PNG plots of runs (matplotlib, optional: every ``plot_*`` function returns ``None`` when it is not
installed; the ``*_figure`` functions build the figure without saving it).

* ``loss.png`` (per run) and ``loss_curves.png`` (per comparison): training loss (a 20-step running mean)
  and validation loss against the step, with the best achievable loss as a dotted line. With more than
  one run, a second panel shows each run's loss relative to the reference run (fp32 when it is one of
  them, else the first), in percent: the training-loss difference (every run sees the same batches, so the
  difference is the recipe's, not the data's) and the validation-loss difference at each evaluation.
* ``scale_bias.png`` (per FP8 run): one panel per FP8 linear layer with the scaling bias of its weight (w),
  input activation (x) and output gradient (g) at every step, drawn as step lines of different colours,
  widths (the widest under the narrowest) so that coinciding ones stay visible; each legend entry gives the
  range and the most frequent bias (the paper's distribution, in numbers).
* ``ptq_loss_vs_bias.png`` (``fp8ref infer``): validation loss against the CSCALE bias on a linear axis,
  with the fp32 and AMAX losses and the biases of the window (within the tolerance of fp32) and the plateau
  (within it of AMAX) shaded; below, a zoom on the loss increase over fp32 in percent with the tolerance
  band, points above the zoom marked at its top edge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SMOOTH = 20  # steps of the running mean of the training loss
ROLE_STYLE = {  # colour and line width: the widest is drawn first, so coinciding lines stay visible
    "w": ("tab:blue", 5.0),
    "x": ("tab:green", 2.6),
    "g": ("tab:red", 0.9),
}
ROLE_NAMES = {"w": "w (weight)", "x": "x (activation)", "g": "g (gradient)"}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or ``None`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _smooth(y: np.ndarray, n: int = SMOOTH) -> np.ndarray:
    if y.size < n:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    out[n - 1 :] = (c[n:] - c[:-n]) / n
    out[: n - 1] = c[1:n] / np.arange(1, n)
    return out


def _series(recs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    steps = np.array([r["step"] for r in recs])
    loss = np.array([r["loss"] for r in recs], dtype=float)
    return steps, loss, {r["step"]: r["val_loss"] for r in recs if "val_loss" in r}


def _reference(runs: Sequence[tuple[str, list[dict[str, Any]]]]) -> int:
    return next((i for i, (label, _) in enumerate(runs) if label == "fp32"), 0)


def loss_figure(
    runs: Sequence[tuple[str, list[dict[str, Any]]]], best: float | None = None, title: str = ""
) -> Any:
    """The figure of ``loss.png`` / ``loss_curves.png`` (see the module docstring), or ``None``."""
    plt = pyplot()
    if plt is None or not runs:
        return None
    compare = len(runs) > 1
    if compare:
        fig, (ax, dax) = plt.subplots(
            2, 1, figsize=(7.5, 6.4), sharex=True, gridspec_kw={"height_ratios": [1.4, 1]}
        )
    else:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = {}
    for label, recs in runs:
        steps, loss, val = _series(recs)
        (line,) = ax.plot(steps, _smooth(loss), label=f"{label} (train, {SMOOTH}-step mean)", lw=1.2)
        colors[label] = line.get_color()
        if val:
            ax.plot(
                list(val),
                list(val.values()),
                "o--",
                color=line.get_color(),
                ms=3,
                lw=0.8,
                label=f"{label} (val)",
            )
    if best is not None:
        ax.axhline(best, color="k", ls=":", lw=1, label=f"best achievable {best:.3f}")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if compare else 1)
    ax.set_title(title or "training loss")
    if not compare:
        ax.set_xlabel("step")
        fig.tight_layout()
        return fig
    ref_label, ref_recs = runs[_reference(runs)]
    rsteps, rloss, rval = _series(ref_recs)
    rmean = dict(zip(rsteps.tolist(), _smooth(rloss), strict=True))
    dax.axhline(0.0, color=colors[ref_label], lw=1.2, label=ref_label)
    for label, recs in runs:
        if label == ref_label:
            continue
        steps, loss, val = _series(recs)
        common = [i for i, s in enumerate(steps.tolist()) if s in rmean]
        mean = _smooth(loss)
        rel = [100.0 * (mean[i] / rmean[steps[i]] - 1.0) for i in common]
        dax.plot(steps[common], rel, color=colors[label], lw=1.2, label=f"{label} (train)")
        vs = [s for s in val if s in rval]
        if vs:
            vrel = [100.0 * (val[s] / rval[s] - 1.0) for s in vs]
            dax.plot(vs, vrel, "o--", color=colors[label], ms=4, lw=0.8, label=f"{label} (val)")
            for s, v in zip(vs[-1:], vrel[-1:], strict=True):
                dax.annotate(
                    f"{v:+.2f} %", (s, v), textcoords="offset points", xytext=(-6, 5), ha="right", fontsize=7
                )
    dax.set_ylabel(f"loss vs {ref_label} (%)")
    dax.set_xlabel("step")
    dax.grid(alpha=0.3)
    dax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def plot_losses(
    path: str | Path,
    runs: Sequence[tuple[str, list[dict[str, Any]]]],
    best: float | None = None,
    title: str = "",
) -> Path | None:
    fig = loss_figure(runs, best, title)
    return None if fig is None else _save(pyplot(), fig, path)


def _summary(v: np.ndarray) -> str:
    """``9..13, mostly 9 (72 %)`` or ``always 4``."""
    counts = Counter(v.tolist())
    mode, n = counts.most_common(1)[0]
    fmt = "{:g}".format
    if len(counts) == 1:
        return f"always {fmt(mode)}"
    return f"{fmt(v.min())}..{fmt(v.max())}, mostly {fmt(mode)} ({100 * n / v.size:.0f} %)"


def scale_bias_figure(recs: list[dict[str, Any]], title: str = "") -> Any:
    """The figure of ``scale_bias.png`` (see the module docstring), or ``None`` without scale biases."""
    plt = pyplot()
    sb = [(r["step"], r["scale_bias"]) for r in recs if "scale_bias" in r]
    if plt is None or not sb:
        return None
    layers = list(sb[0][1])
    steps = np.array([s for s, _ in sb])
    ncol = min(4, len(layers))
    nrow = -(-len(layers) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.6 * ncol, 2.9 * nrow + 0.4), squeeze=False, sharex=True, sharey=True
    )
    lo, hi = np.inf, -np.inf
    for i, layer in enumerate(layers):
        ax = axes[i // ncol][i % ncol]
        for role, (color, width) in ROLE_STYLE.items():
            have = [
                (s, b[layer][role])
                for s, b in zip(steps.tolist(), (b for _, b in sb), strict=True)
                if role in b[layer]
            ]
            if not have:
                continue
            st, v = (np.array(t, dtype=float) for t in zip(*have, strict=True))
            lo, hi = min(lo, v.min()), max(hi, v.max())
            ax.step(st, v, where="post", color=color, lw=width, label=f"{role}: {_summary(v)}")
        ax.set_title(layer, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper right", handlelength=2.5)
        if i % ncol == 0:
            ax.set_ylabel("scaling bias", fontsize=7)
        if i // ncol == nrow - 1 or i + ncol >= len(layers):
            ax.set_xlabel("step", fontsize=7)
            ax.tick_params(labelbottom=True)
    if np.isfinite(lo):  # shared; room above the data for the legends; a constant bias is a line, not a block
        from matplotlib.ticker import MaxNLocator

        ax.set_ylim(lo - 1.5, hi + 1.5 + 0.5 * (hi - lo + 3))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for j in range(len(layers), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    roles = ", ".join(ROLE_NAMES.values())
    fig.suptitle(title or f"scaling bias of each FP8 layer at every step: {roles}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_scale_bias(path: str | Path, recs: list[dict[str, Any]], title: str = "") -> Path | None:
    """``scale_bias.png``: each FP8 layer's w, x and g scaling bias against the step."""
    fig = scale_bias_figure(recs, title)
    return None if fig is None else _save(pyplot(), fig, path)


def ptq_figure(res: dict[str, Any]) -> Any:
    """The figure of ``ptq_loss_vs_bias.png`` (see the module docstring), or ``None``."""
    plt = pyplot()
    if plt is None:
        return None
    b = np.array([int(k) for k in res["cscale"]])
    v = np.array([res["cscale"][k] for k in res["cscale"]], dtype=float)
    ref, amax, tol = float(res["fp32"]), float(res["amax"]), float(res["tolerance"])
    pct = f"{100 * tol:g} %"
    fig, (ax, zax) = plt.subplots(2, 1, figsize=(7, 7), sharex=True, gridspec_kw={"height_ratios": [1.3, 1]})

    def spans(axis: Any, members: list[int], color: str, label: str) -> None:
        for k, m in enumerate(members):
            axis.axvspan(m - 0.5, m + 0.5, color=color, alpha=0.18, lw=0, label=label if k == 0 else None)

    for axis in (ax, zax):
        spans(axis, res["plateau"], "tab:green", f"plateau: within {pct} of FP8-AMAX")
        spans(axis, res["window"], "tab:olive", f"window: within {pct} of fp32")
    if not res["window"]:
        ax.plot([], [], " ", label=f"window (within {pct} of fp32): empty")
    ax.plot(b, v, "o-", color="tab:blue", ms=4, label="FP8-CSCALE")
    ax.axhline(ref, color="k", lw=1, label=f"fp32 {ref:.4f}")
    ax.axhline(amax, color="tab:green", ls="--", lw=1, label=f"FP8-AMAX {amax:.4f}")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("post-training FP8 quantisation: constant scaling bias (FP8-CSCALE) sweep")
    ax.grid(alpha=0.3)

    rel = 100.0 * (v / ref - 1.0)
    amax_rel = 100.0 * (amax / ref - 1.0)
    top = max(4 * 100 * tol, 1.5 * amax_rel, 1.5 * float(np.min(rel)) if rel.size else 0.0)
    bottom = min(-0.5 * 100 * tol, float(np.min(rel)) - 0.2 * 100 * tol)
    zax.axhspan(0.0, 100 * tol, color="0.55", alpha=0.35, lw=0, label=f"within {pct} of fp32")
    zax.axhline(0.0, color="k", lw=1)
    zax.axhline(amax_rel, color="tab:green", ls="--", lw=1, label=f"FP8-AMAX {amax_rel:+.2f} %")
    inside = rel <= top
    zax.plot(b[inside], rel[inside], "o-", color="tab:blue", ms=4, label="FP8-CSCALE")
    if (~inside).any():
        zax.plot(
            b[~inside],
            np.full((~inside).sum(), top),
            "^",
            color="tab:blue",
            ms=6,
            mfc="none",
            clip_on=False,
            label="FP8-CSCALE, off the scale",
        )
    zax.set_ylim(bottom, top)
    zax.set_ylabel("loss vs fp32 (%)")
    zax.set_xlabel("constant scaling bias")
    zax.grid(alpha=0.3)
    handles: dict[str, Any] = {}
    for axis in (ax, zax):  # one legend below both panels, so that none covers a point
        for h, label in zip(*axis.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_ptq(path: str | Path, res: dict[str, Any]) -> Path | None:
    fig = ptq_figure(res)
    return None if fig is None else _save(pyplot(), fig, path)
