"""PNG plots of runs (matplotlib, optional: every function returns ``None`` when it is not installed).

* ``loss.png`` (per run) and ``loss_curves.png`` (per comparison): training loss (a 20-step running mean)
  and validation loss against the step, with the best achievable loss as a dashed line.
* ``scale_bias.png`` (per FP8 run): the paper's figure -- for every FP8 linear layer, the distribution
  over training steps of the scaling bias of its weight (w), input activation (x) and output gradient (g).
* ``ptq_loss_vs_bias.png`` (``fp8ref infer``): validation loss against the CSCALE bias, with the fp32 and
  AMAX losses and the 0.5 % band.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _smooth(y: np.ndarray, n: int = 20) -> np.ndarray:
    if y.size < n:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    out[n - 1 :] = (c[n:] - c[:-n]) / n
    out[: n - 1] = c[1:n] / np.arange(1, n)
    return out


def _loss_axes(ax: Any, runs: Sequence[tuple[str, list[dict[str, Any]]]], best: float | None) -> None:
    for label, recs in runs:
        steps = np.array([r["step"] for r in recs])
        loss = np.array([r["loss"] for r in recs])
        (line,) = ax.plot(steps, _smooth(loss), label=f"{label} (train)", lw=1.2)
        val = [(r["step"], r["val_loss"]) for r in recs if "val_loss" in r]
        if val:
            vs, vl = zip(*val, strict=True)
            ax.plot(vs, vl, "o--", color=line.get_color(), ms=3, lw=0.8, label=f"{label} (val)")
    if best is not None:
        ax.axhline(best, color="k", ls=":", lw=1, label=f"best achievable {best:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def plot_losses(
    path: str | Path,
    runs: Sequence[tuple[str, list[dict[str, Any]]]],
    best: float | None = None,
    title: str = "",
) -> Path | None:
    plt = _pyplot()
    if plt is None or not runs:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    _loss_axes(ax, runs, best)
    ax.set_title(title or "training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_scale_bias(path: str | Path, recs: list[dict[str, Any]], title: str = "") -> Path | None:
    """Histograms of the per-step scaling biases of each FP8 layer's w, x and g."""
    plt = _pyplot()
    sb = [r["scale_bias"] for r in recs if "scale_bias" in r]
    if plt is None or not sb:
        return None
    layers = list(sb[0])
    ncol = min(4, len(layers))
    nrow = -(-len(layers) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.4 * nrow), squeeze=False, sharey=True)
    colors = {"w": "tab:blue", "x": "tab:green", "g": "tab:red"}
    for i, layer in enumerate(layers):
        ax = axes[i // ncol][i % ncol]
        vals = {r: np.array([s[layer][r] for s in sb if r in s[layer]], dtype=float) for r in ("w", "x", "g")}
        allv = np.concatenate([v for v in vals.values() if v.size])
        lo, hi = np.floor(allv.min()) - 0.5, np.ceil(allv.max()) + 1.5
        bins = np.arange(lo, hi, 1.0)
        for role, v in vals.items():
            if v.size:
                ax.hist(
                    v,
                    bins=bins,
                    weights=np.full(v.size, 1.0 / v.size),
                    alpha=0.55,
                    color=colors[role],
                    label=role,
                )
        ax.set_title(layer, fontsize=8)
        ax.tick_params(labelsize=7)
        if i % ncol == 0:
            ax.set_ylabel("fraction of steps", fontsize=7)
        if i // ncol == nrow - 1:
            ax.set_xlabel("scaling bias", fontsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    for j in range(len(layers), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    fig.suptitle(
        title or "scaling-bias distribution over training (w: weights, x: activations, g: gradients)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_ptq(path: str | Path, res: dict[str, Any]) -> Path | None:
    plt = _pyplot()
    if plt is None:
        return None
    b = [int(k) for k in res["cscale"]]
    v = [res["cscale"][k] for k in res["cscale"]]
    ref = res["fp32"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(b, v, "o-", label="FP8-CSCALE")
    ax.axhline(ref, color="k", lw=1, label=f"fp32 {ref:.4f}")
    ax.axhspan(ref, ref * (1 + res["tolerance"]), color="k", alpha=0.08, label="within 0.5 % of fp32")
    ax.axhline(res["amax"], color="tab:green", ls="--", lw=1, label=f"FP8-AMAX {res['amax']:.4f}")
    ax.set_yscale("log")
    ax.set_xlabel("constant scaling bias")
    ax.set_ylabel("validation loss")
    ax.set_title("post-training FP8 quantisation")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
