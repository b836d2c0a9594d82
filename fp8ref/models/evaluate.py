"""FP8 sentence embeddings against float32: the runs behind ``fp8ref embed`` and ``fp8ref infer --model``.

:func:`compare` embeds a sentence set in float32 and with each recipe x accumulation model, and reports per
run the metrics of :mod:`fp8ref.models.metrics`, the per-layer SQNR and each layer's scaling biases.
:func:`ptq_sweep` is the paper's post-training quantisation experiment on the model: FP8-AMAX and
FP8-CSCALE for every constant bias of a sweep, in each format family.

Per-layer SQNR, two kinds (docs/models.md §4):

* ``linear``: each linear layer's FP8 output ``y`` against the float32 output ``x @ w + b`` of the *same*
  input ``x`` (the error this layer adds), energies summed over all tokens of the set;
* ``hidden``: the hidden state after each encoder layer of the FP8 model against the float32 model's (the
  error accumulated so far; the embeddings before the first layer are exact).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fp8ref.models import metrics, recipes
from fp8ref.models.sentences import SentenceSet

#: the paper's criterion: FP8 keeps at least 99.5 % of the higher-precision quality
TOLERANCE = 0.005


class LayerRecorder:
    """A linear executor wrapping another: it also computes the float32 ``x @ w + b`` of the same input and
    sums the energies of that reference and of the difference; it keeps the scaling biases used."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.signal = 0.0
        self.noise = 0.0
        self.bias: dict[str, list[Any]] = {"w": [], "x": []}

    def forward(
        self, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
    ) -> tuple[np.ndarray, Any]:
        y, cache = self.inner.forward(name, x, w, b)
        ref = x @ w
        if b is not None:
            ref = ref + b
        s, n = metrics.energies(y, ref)
        self.signal += s
        self.noise += n
        last = getattr(self.inner, "last_bias", None) or {}
        for role in ("w", "x"):
            if role in last:
                self.bias[role].append(last[role])
        return y, cache


def summary(e: np.ndarray, ref: np.ndarray, topics: Sequence[str] | None) -> dict[str, Any]:
    """Cosine to fp32 (mean, min and where), nearest-neighbour agreement, same-topic retrieval."""
    cos = metrics.cosine(e, ref)
    n = e.shape[0]
    return {
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "cosine_argmin": int(cos.argmin()),
        "nn_agreement": metrics.nn_agreement(e, ref) if n >= 2 else None,
        "retrieval": metrics.retrieval(e, topics) if topics is not None and n >= 2 else None,
    }


def _settings(model: Any, sset: SentenceSet, tok: Any) -> dict[str, Any]:
    b = tok.batch
    return {
        "model": model.name,
        "model_source": model.source,
        "model_sha256": model.sha256,
        "sentences": {
            "source": sset.source,
            "count": len(sset),
            "tokens": b.n_tokens,
            "max_tokens_per_sentence": int(b.lengths.max()),
            "topics": None if sset.topics is None else len(set(sset.topics)),
            "truncated": [sset.lines[i] for i in tok.truncated],
            "truncated_lengths": list(tok.full_lengths),
        },
    }


def compare(
    model: Any,
    sset: SentenceSet,
    recipe_specs: Sequence[str],
    accumulates: Sequence[str | None],
    *,
    formats: str = "ocp",
    ops: Any = None,
    max_tokens: int | None = None,
    log: Callable[[str], Any] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Embed ``sset`` in float32 and with every (recipe, accumulation) pair. Returns the JSON-able report
    and the embeddings by run label (``fp32``, ``<recipe>/<accumulate>``)."""
    resolved = [
        (recipes.resolve(r, formats=formats, accumulate=a), a) for r in recipe_specs for a in accumulates
    ]
    kw = {} if max_tokens is None else {"max_tokens": max_tokens}
    tok = model.tokenize(list(sset.sentences))
    t0 = time.perf_counter()
    ref = model.forward(tok.batch, {}, keep_hidden=True, **kw)
    t_ref = time.perf_counter() - t0
    report = _settings(model, sset, tok)
    report.update(
        {
            "formats": formats,
            "backend": getattr(ops, "name", "reference"),
            "fp32": {
                "seconds": t_ref,
                "retrieval": summary(ref.embeddings, ref.embeddings, sset.topics)["retrieval"],
            },
            "runs": [],
        }
    )
    embs = {"fp32": ref.embeddings}
    for rec, acc in resolved:
        label = f"{recipes.label(rec)}/{acc if acc is not None else 'backend'}"
        wrapped = {k: LayerRecorder(v) for k, v in recipes.executors(model.config, rec, ops).items()}
        t0 = time.perf_counter()
        out = model.forward(tok.batch, wrapped, keep_hidden=True, **kw)
        run: dict[str, Any] = {
            "label": label,
            "recipe": recipes.label(rec),
            "accumulate": acc,
            "seconds": time.perf_counter() - t0,
        }
        run.update(summary(out.embeddings, ref.embeddings, sset.topics))
        run["cosine"] = [round(float(c), 8) for c in metrics.cosine(out.embeddings, ref.embeddings)]
        run["sqnr_db"] = {
            "linear": {k: metrics.sqnr_db(r.signal, r.noise) for k, r in wrapped.items()},
            "hidden": [
                metrics.sqnr_db(*metrics.energies(h, h0))
                for h, h0 in zip(out.hidden[1:], ref.hidden[1:], strict=True)
            ],
        }
        run["scale_bias"] = {k: r.bias for k, r in wrapped.items()}
        report["runs"].append(run)
        embs[label] = out.embeddings
        if log:
            log(format_run(run))
    return report, embs


def ptq_sweep(
    model: Any,
    sset: SentenceSet,
    biases: Sequence[int],
    *,
    families: Sequence[str] = ("ocp", "fnuz"),
    accumulate: str | None = "exact",
    ops: Any = None,
    tolerance: float = TOLERANCE,
    max_tokens: int | None = None,
    log: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """fp32, FP8-AMAX and FP8-CSCALE (every bias of ``biases``) in each format family of ``families``.

    Per family: ``amax`` and ``cscale`` ({bias: :func:`summary`}) and two windows of CSCALE biases:
    ``window``, those keeping same-topic retrieval at ``>= (1 - tolerance)`` times fp32's (the paper's
    99.5 % criterion on the task metric; ``None`` for sentences without topics), and ``cosine_window``,
    those whose mean cosine similarity to the fp32 embeddings is ``>= 1 - tolerance``."""
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must lie in [0, 1), got {tolerance}")
    bias_list = [int(b) for b in biases]
    if not bias_list:
        raise ValueError("biases must hold at least one bias")
    kw = {} if max_tokens is None else {"max_tokens": max_tokens}
    for f in families:
        recipes.resolve("fp8-amax", formats=f, accumulate=accumulate)  # validates before any work
    tok = model.tokenize(list(sset.sentences))
    t0 = time.perf_counter()
    ref = model.forward(tok.batch, {}, **kw).embeddings
    report = _settings(model, sset, tok)
    fp32_retrieval = summary(ref, ref, sset.topics)["retrieval"]
    report.update(
        {
            "accumulate": accumulate,
            "backend": getattr(ops, "name", "reference"),
            "tolerance": tolerance,
            "biases": bias_list,
            "fp32": {"retrieval": fp32_retrieval, "seconds": time.perf_counter() - t0},
            "families": {},
        }
    )

    def run(spec: str, fam: str) -> dict[str, Any]:
        rec = recipes.resolve(spec, formats=fam, accumulate=accumulate)
        t = time.perf_counter()
        e = model.forward(tok.batch, recipes.executors(model.config, rec, ops), **kw).embeddings
        s = summary(e, ref, sset.topics)
        s["seconds"] = time.perf_counter() - t
        if log:
            log(f"{fam:<5} {spec:<16} {_line(s)}")
        return s

    for fam in families:
        amax = run("fp8-amax", fam)
        cscale = {b: run(f"fp8-cscale:{b}", fam) for b in bias_list}
        win = None
        if fp32_retrieval is not None:
            win = [b for b in bias_list if cscale[b]["retrieval"] >= fp32_retrieval * (1 - tolerance) - 1e-12]
        report["families"][fam] = {
            "amax": amax,
            "cscale": {str(b): cscale[b] for b in bias_list},
            "window": win,
            "cosine_window": [b for b in bias_list if cscale[b]["cosine_mean"] >= 1 - tolerance],
        }
    return report


def _line(s: dict[str, Any]) -> str:
    r = "-" if s["retrieval"] is None else f"{s['retrieval']:.3f}"
    nn = "-" if s["nn_agreement"] is None else f"{s['nn_agreement']:.3f}"
    return f"cos mean {s['cosine_mean']:.5f} min {s['cosine_min']:.5f}  NN agreement {nn}  retrieval {r}"


def format_run(run: dict[str, Any]) -> str:
    lin = [v for v in run["sqnr_db"]["linear"].values() if v is not None]
    sq = f"  linear SQNR {min(lin):.1f}..{max(lin):.1f} dB" if lin else ""
    return f"{run['label']:<28} {_line(run)}{sq}  ({run['seconds']:.1f} s)"


__all__ = ["TOLERANCE", "LayerRecorder", "summary", "compare", "ptq_sweep", "format_run"]
