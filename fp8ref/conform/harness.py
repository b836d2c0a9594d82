"""Run a golden set through a backend and measure, case by case and element by element, how it deviates.

For each case: the suite's backend runner (``fp8ref.golden.suites.<suite>.BACKEND_OPS[op]``) calls the
backend; :class:`fp8ref.backends.Unsupported` makes the case *skipped*; every output is compared with the
set's expected output by ulp distance (:mod:`fp8ref.conform.ulps`), and each differing element gets a
*category* naming the rule it breaks (:func:`categorize`). A case *fails* when any element is further than
``tolerance`` ulps (NaN class differences are always failures).

Matmul: a backend that cannot select an accumulation model (``capabilities.accumulation_selectable`` is
false) runs each case with its own accumulation (``accumulate=None``); cases whose model is not the one
the backend claims are then not scored, but every matmul output feeds :mod:`fp8ref.conform.models`, which
finds the accumulation model that explains the backend's outputs best.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import fp8ref
from fp8ref.conform.ulps import distance, histogram
from fp8ref.golden import manifest as mf
from fp8ref.golden.io import LoadedCase, load_case
from fp8ref.golden.ops import ALL_SUITES, suite_module

__all__ = ["CaseResult", "SuiteSummary", "ConformReport", "run", "categorize", "Element", "pick_worst"]


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


@dataclass
class CaseResult:
    id: str
    suite: str
    op: str
    status: str  # "exact", "within", "fail", "skipped", "error"
    reason: str = ""
    elements: int = 0
    exact: int = 0
    max_ulps: float = 0.0
    histogram: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    worst: list[Element] = field(default_factory=list)


@dataclass
class SuiteSummary:
    suite: str
    cases: int = 0
    exact: int = 0
    within: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    elements: int = 0
    exact_elements: int = 0
    histogram: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    worst: list[Element] = field(default_factory=list)


@dataclass
class ConformReport:
    backend: str
    golden: str
    tolerance: float
    suites: dict[str, SuiteSummary]
    cases: list[CaseResult]
    accumulation: dict[str, Any] | None = None
    capabilities: dict[str, Any] | None = None
    not_run: dict[str, int] = field(default_factory=dict)  # op -> cases without a backend operation

    @property
    def passed(self) -> bool:
        return all(s.failed == 0 and s.errors == 0 for s in self.suites.values())

    def to_json(self) -> dict[str, Any]:
        def clean(o: Any) -> Any:
            if isinstance(o, float) and not math.isfinite(o):
                return "inf" if o > 0 else ("-inf" if o < 0 else "nan")
            if isinstance(o, dict):
                return {k: clean(v) for k, v in o.items()}
            if isinstance(o, list):
                return [clean(v) for v in o]
            return o

        return clean({"backend": self.backend, "golden": self.golden, "tolerance": self.tolerance,
                      "passed": self.passed, "fp8ref_version": fp8ref.__version__,
                      "capabilities": self.capabilities,
                      "suites": {k: asdict(v) for k, v in self.suites.items()},
                      "accumulation": self.accumulation, "not_run": self.not_run,
                      "cases": [asdict(c) for c in self.cases]})


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


# ---- running -----------------------------------------------------------------------------------------------
def _compare(case: LoadedCase, outputs: dict[str, np.ndarray], res: CaseResult, tolerance: float,
             keep: int) -> None:
    worst: list[Element] = []
    for name in sorted(case.outputs):
        exp = case.outputs[name]
        if name not in outputs:
            res.status, res.reason = "error", f"backend returned no output {name!r}"
            return
        got = np.asarray(outputs[name])
        if got.shape != exp.shape:
            res.status, res.reason = "error", f"output {name!r} has shape {got.shape}, expected {exp.shape}"
            return
        got = got.astype(exp.dtype, copy=False)
        fmt = case.formats.get(name)
        d = distance(exp, got, fmt)
        res.elements += d.size
        res.exact += int(np.count_nonzero(d == 0))
        if d.size:
            res.max_ulps = max(res.max_ulps, float(d.max()))
        for k, v in histogram(d).items():
            res.histogram[k] = res.histogram.get(k, 0) + v
        bad = np.flatnonzero(d.reshape(-1) > 0)
        if bad.size:
            order = bad[np.argsort(-d.reshape(-1)[bad], kind="stable")]
            cats: dict[str, int] = {}
            first: dict[str, int] = {}  # the furthest element of each category
            for flat in order:  # categorise every deviating element (cheap: small cases)
                idx = np.unravel_index(flat, exp.shape) if exp.ndim else ()
                c = categorize(case, name, idx, exp, got)
                cats[c] = cats.get(c, 0) + 1
                first.setdefault(c, int(flat))
            for k, v in cats.items():
                res.categories[k] = res.categories.get(k, 0) + v
            for flat in dict.fromkeys([*first.values(), *order[:keep].tolist()]):
                idx = np.unravel_index(flat, exp.shape) if exp.ndim else ()
                worst.append(Element(case.id, name, [int(i) for i in idx], float(d.reshape(-1)[flat]),
                                     categorize(case, name, idx, exp, got), _show(exp, idx, fmt),
                                     _show(got, idx, fmt), _element_inputs(case, name, idx)))
    res.worst = pick_worst(worst, keep)
    if res.exact == res.elements:
        res.status = "exact"
    elif res.max_ulps <= tolerance:
        res.status = "within"
    else:
        res.status = "fail"


def run(backend: Any, root: str | Path, *, suites: list[str] | None = None, tolerance: float = 0,
        keep: int = 5, infer_accumulation: bool = True, log: Any = None) -> ConformReport:
    """Run the set in ``root`` through ``backend`` (a Backend or a name). Raises
    :class:`fp8ref.golden.SetError` when the set itself is invalid."""
    from fp8ref.backends import Unsupported, get

    be = get(backend) if isinstance(backend, str) else backend
    root = Path(root)
    manifest = mf.load(root)
    wanted = [s for s in ALL_SUITES if s in manifest["suites"] and (not suites or s in suites)]
    caps = be.capabilities
    not_run: dict[str, int] = {}
    selectable = bool(caps.accumulation_selectable)
    summaries = {s: SuiteSummary(s) for s in wanted}
    results: list[CaseResult] = []
    mm_runs: list[tuple[LoadedCase, np.ndarray]] = []
    for entry in manifest["cases"]:
        s = entry["suite"]
        if s not in summaries:
            continue
        runner = suite_module(s).BACKEND_OPS.get(entry["op"])
        if runner is None:  # an op with no backend operation (recipe arithmetic): golden verify checks it
            not_run[entry["op"]] = not_run.get(entry["op"], 0) + 1
            continue
        case = load_case(root, entry)  # SetError propagates: a corrupt set is not a backend failure
        res = CaseResult(case.id, s, case.op, "error")
        params = dict(case.params)
        scored = True
        if case.op == "scaled_mm" and not selectable:
            scored = params.get("accumulate") == caps.accumulation
            params["accumulate"] = None
        try:
            with np.errstate(all="ignore"):
                outputs = runner(be, params, case.inputs)
        except Unsupported as exc:
            res.status, res.reason = "skipped", exc.reason
        except Exception as exc:  # noqa: BLE001 - a failing backend is a finding, not a crash
            res.status, res.reason = "error", f"{type(exc).__name__}: {exc}"
        else:
            if case.op == "scaled_mm" and (params["accumulate"] is None
                                           or params["accumulate"] == caps.accumulation):
                mm_runs.append((case, np.asarray(outputs["out"])))  # the backend's own accumulation
            if scored:
                _compare(case, outputs, res, tolerance, keep)
            else:
                res.status = "skipped"
                res.reason = (f"expected output uses accumulate={case.params.get('accumulate')!r}; "
                              f"the backend runs only its own ({caps.accumulation!r}); "
                              "used for model inference")
        results.append(res)
        _add(summaries[s], res, keep)
        if log:
            log(res)
    acc = None
    if infer_accumulation and mm_runs:
        from fp8ref.conform.models import explain

        acc = explain(be, mm_runs)
    return ConformReport(be.name, str(root), float(tolerance), summaries, results, acc, caps.to_dict(),
                         not_run)


def _add(s: SuiteSummary, r: CaseResult, keep: int) -> None:
    s.cases += 1
    s.exact += r.status == "exact"
    s.within += r.status == "within"
    s.failed += r.status == "fail"
    s.skipped += r.status == "skipped"
    s.errors += r.status == "error"
    s.elements += r.elements
    s.exact_elements += r.exact
    for k, v in r.histogram.items():
        s.histogram[k] = s.histogram.get(k, 0) + v
    for k, v in r.categories.items():
        s.categories[k] = s.categories.get(k, 0) + v
    s.worst = pick_worst(s.worst + r.worst, keep)
