"""PNG figures of the model runs (matplotlib, optional: each function returns ``None`` without it).

* ``embed_metrics.png`` (``fp8ref embed``): per run, the SQNR of every linear layer's output (its own
  error) and of the hidden state after each layer (the accumulated error), the cosine similarity of each
  sentence's FP8 embedding to its fp32 one, and the scaling biases of the weights and input activations
  per layer (the paper's per-tensor scale figure, for inference).
* ``ptq_<model>.png`` (``fp8ref infer --model``): against the constant CSCALE bias, the embedding error
  ``1 - cos`` (log scale) and the same-topic retrieval accuracy, per format family, with FP8-AMAX and fp32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fp8ref.models.bert import LINEAR_KINDS
from fp8ref.nn.plots import pyplot


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def plot_embed(path: str | Path, report: dict[str, Any]) -> Path | None:
    plt = pyplot()
    if plt is None or not report["runs"]:
        return None
    runs = report["runs"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0, 0]
    names = list(runs[0]["sqnr_db"]["linear"])
    x = np.arange(len(names))
    for r in runs:
        ax.plot(x, [_num(r["sqnr_db"]["linear"][n]) for n in names], "o-", ms=3, lw=1, label=r["label"])
    n_kinds = len(LINEAR_KINDS)
    ax.set_xticks(x[::n_kinds], [n.split(".")[0] for n in names[::n_kinds]])
    for b in x[::n_kinds][1:]:
        ax.axvline(b - 0.5, color="k", lw=0.5, alpha=0.3)
    ax.set_xlabel(f"linear layer ({', '.join(LINEAR_KINDS)} in each encoder layer)")
    ax.set_ylabel("SQNR (dB)")
    ax.set_title("each linear layer's FP8 output vs float32 on the same input")
    ax.grid(alpha=0.3)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.35 * (hi - lo))  # room for the legend above the curves
    ax.legend(fontsize=6, ncol=3, loc="upper center")

    ax = axes[0, 1]
    for r in runs:
        h = [_num(v) for v in r["sqnr_db"]["hidden"]]
        ax.plot(np.arange(1, len(h) + 1), h, "o-", ms=4, lw=1, label=r["label"])
    ax.set_xlabel("encoder layer (its output hidden state)")
    ax.set_ylabel("SQNR (dB)")
    ax.set_title("hidden state of the FP8 model vs the float32 model")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    err = [1.0 - np.clip(np.asarray(r["cosine"]), -1, 1) for r in runs] if "cosine" in runs[0] else None
    if err is not None:
        lo = max(min(float(e[e > 0].min()) if (e > 0).any() else 1e-8 for e in err), 1e-9)
        hi = max(float(e.max()) for e in err) * 1.5
        bins = np.logspace(np.log10(lo), np.log10(max(hi, lo * 10)), 40)
        for r, e in zip(runs, err, strict=True):
            ax.hist(np.maximum(e, lo), bins=bins, histtype="step", lw=1.2, label=r["label"])
        ax.set_xscale("log")
    ax.set_xlabel("1 - cosine similarity of FP8 and fp32 embeddings (per sentence)")
    ax.set_ylabel("sentences")
    ax.set_title(f"embedding error, {report['sentences']['count']} sentences")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    shown: set[str] = set()
    for r in runs:  # one line per recipe and role (the accumulation does not change a bias)
        for role, marker in (("w", "s"), ("x", "o")):
            vals = [r["scale_bias"].get(n, {}).get(role) or [] for n in names]
            flat = {float(b) for v in vals for b in v}
            if len(flat) < 2 or r["recipe"] in shown:  # constant biases (fp8-cscale) say nothing per layer
                continue
            y = [float(np.mean(v)) if v else np.nan for v in vals]
            ax.plot(x, y, marker + "-", ms=3, lw=0.8, label=f"{r['recipe']} {role}")
        shown.add(r["recipe"])
    ax.set_xticks(x[::n_kinds], [n.split(".")[0] for n in names[::n_kinds]])
    ax.set_xlabel("linear layer")
    ax.set_ylabel("scaling bias (x_fp8 = Q(x * 2^bias))")
    ax.set_title("per-tensor scaling biases of weights (w) and input activations (x)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2, loc="best")
    else:
        ax.text(
            0.5,
            0.5,
            "no run with per-layer biases (fp8-cscale uses one constant)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=8,
        )
    fig.suptitle(f"{report['model']}: FP8 against float32 (formats {report['formats']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_ptq(path: str | Path, res: dict[str, Any]) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"ocp": "tab:blue", "fnuz": "tab:orange"}
    tol = res["tolerance"]
    for fam, d in res["families"].items():
        c = colors.get(fam)
        b = [int(k) for k in d["cscale"]]
        err = [max(1.0 - v["cosine_mean"], 1e-9) for v in d["cscale"].values()]
        a1.plot(b, err, "o-", ms=4, color=c, label=f"FP8-CSCALE {fam}")
        a1.axhline(
            max(1.0 - d["amax"]["cosine_mean"], 1e-9),
            color=c,
            ls="--",
            lw=1,
            label=f"FP8-AMAX {fam} ({1 - d['amax']['cosine_mean']:.1e})",
        )
        if d["amax"]["retrieval"] is not None:
            a2.plot(
                b,
                [v["retrieval"] for v in d["cscale"].values()],
                "o-",
                ms=4,
                color=c,
                label=f"FP8-CSCALE {fam}",
            )
            a2.axhline(
                d["amax"]["retrieval"],
                color=c,
                ls="--",
                lw=1,
                label=f"FP8-AMAX {fam} ({d['amax']['retrieval']:.3f})",
            )
    a1.axhline(tol, color="k", ls=":", lw=1, label=f"mean cosine {1 - tol:g}")
    a1.set_yscale("log")
    a1.set_xlabel("constant scaling bias (FP8-CSCALE)")
    a1.set_ylabel("1 - mean cosine similarity to fp32")
    a1.set_title("embedding error")
    a1.grid(alpha=0.3, which="both")
    a1.legend(fontsize=7)
    r32 = res["fp32"]["retrieval"]
    if r32 is not None:
        a2.axhline(r32, color="k", lw=1, label=f"fp32 ({r32:.3f})")
        a2.axhspan(r32 * (1 - tol), r32, color="k", alpha=0.08, label=f"within {tol * 100:g} % of fp32")
    a2.set_xlabel("constant scaling bias (FP8-CSCALE)")
    a2.set_ylabel("same-topic retrieval accuracy (top-1)")
    a2.set_title(f"retrieval, {res['sentences']['count']} sentences")
    a2.grid(alpha=0.3)
    a2.legend(fontsize=7)
    fig.suptitle(
        f"{res['model']}: post-training FP8 quantisation, accumulate {res['accumulate'] or 'backend'}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


__all__ = ["plot_embed", "plot_ptq"]
