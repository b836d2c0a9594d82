"""Which accumulation model explains a backend's ``scaled_mm`` outputs.

Two independent answers:

* **presets**: every matmul case the backend ran is recomputed by the reference with each model of
  ``fp8ref.accum.PRESETS``; the models are ranked by the number of output elements they reproduce bit for
  bit (ties broken by the smaller total ulp distance). The best model *explains* the backend when it
  reproduces every element.
* **probes**: ``fp8ref.accum.infer`` runs its black-box probes through the backend's dot product (a 1xK by
  Kx1 ``scaled_mm`` with unit scales and float32 output) and reports the block-FMA parameters and
  promotion interval it finds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fp8ref
from fp8ref.conform.ulps import distance
from fp8ref.golden.suites.matmul import call_args, out_array

__all__ = ["explain", "rank_presets", "probe"]


def rank_presets(runs: list[tuple[Any, np.ndarray]]) -> list[dict[str, Any]]:
    from fp8ref.accum import PRESETS

    rows = []
    total = sum(out.size for _, out in runs)
    for name in PRESETS:
        match, ulps, failed = 0, 0.0, None
        for case, out in runs:
            params = dict(case.params)
            params["accumulate"] = name
            args, kw = call_args(params, case.inputs)
            try:
                with np.errstate(all="ignore"):
                    ref, _ = out_array(params, fp8ref.scaled_mm(*args, **kw))
            except (ValueError, TypeError) as exc:
                failed = str(exc)
                break
            got = np.asarray(out).astype(ref.dtype, copy=False)
            d = distance(ref, got, case.formats.get("out"))
            match += int(np.count_nonzero(d == 0))
            ulps += float(np.where(np.isfinite(d), d, 1e9).sum())
        if failed is None:
            rows.append({"model": name, "bit_exact": match, "elements": total, "total_ulps": ulps})
    rows.sort(key=lambda r: (-r["bit_exact"], r["total_ulps"]))
    return rows


def probe(backend: Any) -> dict[str, Any]:
    """``fp8ref.accum.infer`` on the backend's dot product; ``{"error": ...}`` where it cannot run."""
    try:
        from fp8ref.accum import probes
    except ImportError as exc:
        return {"error": f"probe inference unavailable: {exc}"}

    def dot(a: np.ndarray, b: np.ndarray) -> float:
        ca = fp8ref.quantize(np.asarray(a, np.float64).reshape(1, -1), "E4M3", saturate=True)
        cb = fp8ref.quantize(np.asarray(b, np.float64).reshape(-1, 1), "E4M3", saturate=True)
        out = backend.scaled_mm(ca, cb, np.float32(1), np.float32(1), a_format="E4M3", b_format="E4M3",
                                out_dtype=np.float32, accumulate=None)
        return float(np.asarray(out).reshape(-1)[0])

    try:
        inf = probes.infer(dot, "E4M3", accepts_c=False)
    except Exception as exc:  # noqa: BLE001 - a backend failing a probe is a finding, not a crash
        from fp8ref.conform.execute import describe_exception

        return {"error": describe_exception(exc)}
    out: dict[str, Any] = {}
    for k in ("nfma", "nfma_min", "frac_bits", "frac_bits_min", "out_frac_bits", "rounding", "c_mode",
              "promotion", "promotion_tested_k", "validated", "mismatched"):
        if hasattr(inf, k):
            out[k] = getattr(inf, k)
    if hasattr(inf, "e_floor"):
        out["e_floor"] = list(inf.e_floor)
    if hasattr(inf, "summary"):
        out["summary"] = inf.summary()
    out["notes"] = list(getattr(inf, "notes", ()))
    return out


def explain(claimed: str | None, runs: list[tuple[Any, np.ndarray]],
            probed: dict[str, Any]) -> dict[str, Any]:
    """The analysis of the matmul outputs ``runs`` (case, the backend's output) of a backend that claims
    ``claimed``; ``probed`` is :func:`probe`'s answer for it. ``best`` is the model reproducing the most
    elements bit for bit, ``None`` when none reproduces a single one; ``explains_all`` when it reproduces
    every element."""
    ranking = rank_presets(runs)
    # the top of the ranking explains nothing when it reproduces no element at all
    best = ranking[0] if ranking and ranking[0]["bit_exact"] > 0 else None
    return {"claimed": claimed,
            "best": best["model"] if best else None,
            "explains_all": bool(best and best["bit_exact"] == best["elements"]),
            "ranking": ranking, "probe": probed}
