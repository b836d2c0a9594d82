"""Scoring one case: ulp distances, their histogram, the rule each differing element breaks, and the worst
elements with the inputs that produced them.

:func:`categorize` is the rule for one element, written out plainly (the specification);
:func:`categorize_many` applies the same rule to many elements at once with NumPy (what :func:`score` uses:
a case of two million differing elements is scored in seconds instead of minutes). The tests hold the two
equal element by element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import fp8ref
from fp8ref.conform.ulps import distance, histogram
from fp8ref.golden.io import LoadedCase

__all__ = ["Element", "Differences", "Score", "CATEGORIES", "categorize", "categorize_many", "score",
           "pick_worst"]

#: the categories, in the order their rules are tested
CATEGORIES = ("nan_payload", "nan_vs_number", "double_rounding", "overflow", "signed_zero", "subnormal",
              "rounding")


@dataclass
class Element:
    """One deviating element, with what is needed to reproduce it."""

    case: str
    output: str
    index: list[int]
    ulps: float
    category: str
    expected: str
    got: str
    inputs: dict[str, str]



# ---- element formatting and categories ---------------------------------------------------------------------
def _show(arr: np.ndarray, idx: tuple[int, ...], fmt: str | None) -> str:
    v = arr[idx] if arr.ndim else arr[()]
    if fmt is not None:
        c = int(v)
        return f"0x{c:02x} ({fp8ref.format(fmt).decode(c)!r})"
    if arr.dtype.name == "bfloat16":
        return f"{float(v)!r} (0x{int(np.asarray(v).view(np.uint16)):04x})"
    if arr.dtype.kind == "f":
        bits = np.asarray(v).view(np.dtype(f"u{arr.dtype.itemsize}"))
        return f"{float(v)!r} (0x{int(bits):0{2 * arr.dtype.itemsize}x})"
    return repr(v.item() if hasattr(v, "item") else v)


def _element_inputs(case: LoadedCase, out_name: str, idx: tuple[int, ...]) -> dict[str, str]:
    """The inputs that produced element ``idx`` of output ``out_name``."""
    ins = case.inputs
    if case.op == "quantize":
        d = {"x": _show(ins["x"], idx, None)}
        if "srbits" in ins:
            d["srbits"] = str(int(ins["srbits"][idx]))
        return d
    if case.op == "dequantize":
        return {"codes": _show(ins["codes"], idx, case.formats.get("codes"))}
    if case.op == "scaled_mm" and len(idx) == 2:
        i, j = idx
        d = {"a_row": ins["a"][i].tobytes().hex(),
             "b_col": np.ascontiguousarray(ins["b"][:, j]).tobytes().hex()}
        for s in ("scale_a", "scale_b"):
            d[s] = repr(ins[s].tolist()) if ins[s].size <= 4 else f"shape {ins[s].shape}"
        return d
    if case.op not in ("quantize_scaled", "scaled_sequence") or not out_name.startswith("codes"):
        return {}
    x = ins.get("x") if "x" in ins else ins.get("x." + out_name.rsplit(".", 1)[-1])
    if x is not None and x.shape == case.outputs[out_name].shape:
        return {"x": _show(x, idx, None)}
    return {}


def categorize(case: LoadedCase, out_name: str, idx: tuple[int, ...], expected: np.ndarray,
               got: np.ndarray) -> str:
    """The rule a deviating element breaks: ``nan_payload`` (both NaN, other bits), ``nan_vs_number``,
    ``overflow`` (input beyond the format's range, or Inf), ``double_rounding`` (the backend's code is the
    reference's cast of the input first rounded to float32), ``signed_zero``, ``subnormal`` (expected or
    observed value below the smallest normal), or ``rounding`` for anything else."""
    fmt_name = case.formats.get(out_name)
    e, g = expected[idx], got[idx]
    if fmt_name is not None:
        fmt = fp8ref.format(fmt_name)
        ev, gv = fmt.decode(int(e)), fmt.decode(int(g))
    else:
        ev, gv = float(e), float(g)
    if math.isnan(ev) and math.isnan(gv):
        return "nan_payload"
    x = None
    if case.op == "quantize":
        x = case.inputs["x"][idx]
        fmt = fp8ref.format(case.params["format"])
        xf = float(x)
        if math.isnan(xf):
            return "nan_vs_number"
        if case.inputs["x"].dtype == np.float64 and "srbits" not in case.inputs and "seed" not in case.params:
            kw = {k: case.params[k] for k in ("rounding", "saturate")}
            with np.errstate(over="ignore"):
                twice = fp8ref.quantize(np.array([np.float32(xf)]), fmt, **kw)[0]
            if int(twice) == int(g):
                return "double_rounding"
        if math.isinf(xf) or abs(xf) > fmt.max:
            return "overflow"
    if math.isnan(ev) or math.isnan(gv):
        return "nan_vs_number" if not (math.isinf(ev) or math.isinf(gv)) else "overflow"
    if math.isinf(ev) or math.isinf(gv):
        return "overflow"
    if ev == 0 and gv == 0:
        return "signed_zero"
    if fmt_name is not None:
        fmt = fp8ref.format(fmt_name)
        if min(abs(ev), abs(gv)) < fmt.min_normal:
            return "subnormal"
    return "rounding"


def pick_worst(elements: list[Element], keep: int) -> list[Element]:
    """The ``keep`` elements to show: the furthest element of each category first (so that every kind of
    deviation appears), then the furthest of the rest."""
    ranked = sorted(elements, key=lambda e: -e.ulps)
    chosen: list[Element] = []
    seen: set[str] = set()
    for e in ranked:
        if e.category not in seen:
            seen.add(e.category)
            chosen.append(e)
    chosen = chosen[:keep]
    for e in ranked:
        if len(chosen) >= keep:
            break
        if e not in chosen:
            chosen.append(e)
    return sorted(chosen, key=lambda e: -e.ulps)


def _double_rounding_applies(case: LoadedCase) -> bool:
    """A deterministic quantize of float64 input: the only cases where rounding through float32 first can
    be told apart."""
    return (case.inputs["x"].dtype == np.float64 and "srbits" not in case.inputs
            and "seed" not in case.params)


def categorize_many(case: LoadedCase, out_name: str, expected: np.ndarray, got: np.ndarray,
                    flat: np.ndarray) -> np.ndarray:
    """:func:`categorize` of the elements at the flat indices ``flat`` (C order) of ``expected`` / ``got``,
    as indices into :data:`CATEGORIES` (``int8``), the rules tested in the same order."""
    fmt_name = case.formats.get(out_name)
    e = expected.reshape(-1)[flat]
    g = got.reshape(-1)[flat]
    if fmt_name is not None:
        table = fp8ref.format(fmt_name).values()
        ev, gv = table[e.astype(np.intp)], table[g.astype(np.intp)]
    else:
        with np.errstate(invalid="ignore"):  # NaN of bfloat16 / float16 widen to NaN
            ev, gv = e.astype(np.float64), g.astype(np.float64)
    cat = np.full(flat.size, -1, np.int8)

    def assign(mask: np.ndarray, name: str) -> None:
        cat[(cat < 0) & mask] = CATEGORIES.index(name)

    ev_nan, gv_nan = np.isnan(ev), np.isnan(gv)
    assign(ev_nan & gv_nan, "nan_payload")
    if case.op == "quantize":
        with np.errstate(invalid="ignore"):
            xf = case.inputs["x"].reshape(-1)[flat].astype(np.float64)
        fmt = fp8ref.format(case.params["format"])
        assign(np.isnan(xf), "nan_vs_number")
        if _double_rounding_applies(case):
            open_ = np.flatnonzero(cat < 0)
            with np.errstate(over="ignore"):
                x32 = xf[open_].astype(np.float32)
                twice = fp8ref.quantize(x32, fmt, rounding=case.params["rounding"],
                                        saturate=case.params["saturate"])
            hit = np.zeros(flat.size, bool)
            hit[open_] = twice.astype(np.int64) == g[open_].astype(np.int64)
            assign(hit, "double_rounding")
        assign(np.isinf(xf) | (np.abs(xf) > fmt.max), "overflow")
    one_nan = ev_nan | gv_nan
    any_inf = np.isinf(ev) | np.isinf(gv)
    assign(one_nan & ~any_inf, "nan_vs_number")
    assign(one_nan | any_inf, "overflow")
    assign((ev == 0) & (gv == 0), "signed_zero")
    if fmt_name is not None:
        min_normal = fp8ref.format(fmt_name).min_normal
        assign(np.minimum(np.abs(ev), np.abs(gv)) < min_normal, "subnormal")
    assign(np.ones(flat.size, bool), "rounding")
    return cat


@dataclass
class Differences:
    """How the differing elements of one case, or of all cases of a suite, are spread: the ulp histogram,
    the count per deviation category and the worst elements (keyword-only fields, after a subclass's own)."""

    histogram: dict[str, int] = field(default_factory=dict, kw_only=True)
    categories: dict[str, int] = field(default_factory=dict, kw_only=True)
    worst: list[Element] = field(default_factory=list, kw_only=True)

    def add_differences(self, other: Differences, keep: int) -> None:
        """Merge ``other``'s histogram and category counts into these; keep the ``keep`` worst of both."""
        for mine, theirs in ((self.histogram, other.histogram), (self.categories, other.categories)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.worst = pick_worst(self.worst + other.worst, keep)


@dataclass
class Score(Differences):
    """What :func:`score` finds in one case's outputs."""

    status: str  # "exact", "within" or "fail"
    elements: int = 0
    exact: int = 0
    max_ulps: float = 0.0


def score(case: LoadedCase, outputs: dict[str, np.ndarray], tolerance: float, keep: int) -> Score:
    """Compare ``outputs`` (same names, dtypes and shapes as the case's expected outputs) with the expected
    outputs. Categories are counted in the order they first appear among the differing elements sorted by
    distance (furthest first); the worst elements are the furthest of each category, then the furthest."""
    res = Score("fail")
    worst: list[Element] = []
    for name in sorted(case.outputs):
        exp, got = case.outputs[name], outputs[name]
        fmt = case.formats.get(name)
        d = distance(exp, got, fmt)
        flat_d = d.reshape(-1)
        res.elements += d.size
        res.exact += int(np.count_nonzero(flat_d == 0))
        if d.size:
            res.max_ulps = max(res.max_ulps, float(flat_d.max()))
        for k, v in histogram(d).items():
            res.histogram[k] = res.histogram.get(k, 0) + v
        bad = np.flatnonzero(flat_d > 0)
        if not bad.size:
            continue
        order = bad[np.argsort(-flat_d[bad], kind="stable")]
        cats = categorize_many(case, name, exp, got, order)
        kinds, first, counts = np.unique(cats, return_index=True, return_counts=True)
        by_appearance = np.argsort(first)
        for i in by_appearance:
            c = CATEGORIES[kinds[i]]
            res.categories[c] = res.categories.get(c, 0) + int(counts[i])
        positions = dict.fromkeys([*(int(first[i]) for i in by_appearance), *range(min(keep, order.size))])
        for p in positions:
            idx = np.unravel_index(int(order[p]), exp.shape) if exp.ndim else ()
            worst.append(Element(case.id, name, [int(i) for i in idx], float(flat_d[order[p]]),
                                 CATEGORIES[cats[p]], _show(exp, idx, fmt), _show(got, idx, fmt),
                                 _element_inputs(case, name, idx)))
    res.worst = pick_worst(worst, keep)
    if res.exact == res.elements:
        res.status = "exact"
    elif res.max_ulps <= tolerance:
        res.status = "within"
    return res
