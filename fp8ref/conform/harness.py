"""Run a golden set through a backend and measure, case by case and element by element, how it deviates.

First the whole set is checked (:mod:`fp8ref.conform.cases`: unknown suites and ops, missing or bad
parameters are the set's fault). Then, for each case, the suite's backend runner
(``fp8ref.golden.suites.<suite>.BACKEND_OPS[op]``) calls the backend -- in this process for fp8ref's
built-in backends, in a worker process with a time limit for any other (:mod:`fp8ref.conform.isolate`) --
and every result is checked against its operation's contract (:mod:`fp8ref.conform.contract`).
:class:`fp8ref.backends.Unsupported` makes the case *skipped*, a contract violation *fails* it, an exception,
exit, crash or timeout makes it an *error* (unless the reference cannot compute the case either: then the
set is invalid). Every output is compared with the set's expected output by ulp distance
(:mod:`fp8ref.conform.ulps`), and each differing element gets a *category* naming the rule it breaks
(:mod:`fp8ref.conform.score`). A case *fails* when any element is further than ``tolerance`` ulps (NaN
class differences are always failures).

Matmul: a backend that cannot select an accumulation model (``capabilities.accumulation_selectable`` is
false) runs each case with its own accumulation (``accumulate=None``); cases whose model is not the one
the backend claims are then not scored, but every matmul output feeds :mod:`fp8ref.conform.models`, which
finds the accumulation model that explains the backend's outputs best.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

import fp8ref
from fp8ref.conform.cases import plan
from fp8ref.conform.execute import InProcess, Lost, Outcome, describe_exception, run_case
from fp8ref.conform.isolate import DEFAULT_TIMEOUT, BackendSpec, Isolated
from fp8ref.conform.score import Differences, Element, Score, categorize, pick_worst, score
from fp8ref.golden import manifest as mf
from fp8ref.golden.io import LoadedCase, load_case
from fp8ref.golden.ops import ALL_SUITES, compute

__all__ = ["CaseResult", "SuiteSummary", "ConformReport", "run", "categorize", "Element", "pick_worst"]


@dataclass(kw_only=True)
class CaseResult(Score):
    """One case's outcome: its :class:`Score` fields (``status`` also "skipped" or "error"), and why."""

    id: str
    suite: str
    op: str
    reason: str = ""


@dataclass
class SuiteSummary(Differences):
    """A suite's cases counted by status, their elements, and the merged :class:`Differences`."""

    suite: str
    cases: int = 0
    exact: int = 0
    within: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    elements: int = 0
    exact_elements: int = 0


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
    isolated: bool = False  # the backend ran in a worker process
    timeout: float | None = None  # its limit per case, in seconds (isolated only)

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
                      "isolated": self.isolated, "timeout": self.timeout,
                      "cases": [asdict(c) for c in self.cases]})


# ---- running -----------------------------------------------------------------------------------------------
def run(backend: Any, root: str | Path, *, suites: list[str] | None = None, tolerance: float = 0,
        keep: int = 5, infer_accumulation: bool = True, log: Any = None, isolate: bool | None = None,
        timeout: float = DEFAULT_TIMEOUT) -> ConformReport:
    """Run the set in ``root`` through ``backend`` (a Backend or a name).

    ``isolate``: run the backend's calls in a worker process with ``timeout`` seconds per case
    (:mod:`fp8ref.conform.isolate`); default: isolate every backend but fp8ref's built-in ones.
    Raises :class:`fp8ref.golden.SetError` when the set itself is invalid, ``ValueError`` for an unknown
    backend name and :class:`fp8ref.backends.BackendUnavailable` when the backend cannot run here."""
    from fp8ref.outputs import UsageError

    root = Path(root)
    manifest = mf.load(root)
    unknown = [s for s in manifest["suites"] if s not in ALL_SUITES]
    if unknown:
        raise mf.SetError(f"manifest: suite(s) {unknown} unknown to fp8ref {fp8ref.__version__} (it runs "
                          f"{', '.join(ALL_SUITES)})")
    missing = [s for s in suites or () if s not in manifest["suites"]]
    if missing:
        raise UsageError(f"the set in {root} has no suite {', '.join(map(repr, missing))} (it has "
                         f"{', '.join(manifest['suites']) or 'none'})")
    wanted = [s for s in ALL_SUITES if s in manifest["suites"] and (not suites or s in suites)]
    entries, not_run = plan(manifest, wanted)  # the whole set is checked before the backend starts
    executor = executor_for(backend, isolate=isolate, timeout=timeout)
    try:
        return _run(executor, root, entries, not_run, wanted, tolerance, keep, infer_accumulation, log)
    finally:
        executor.close()


def executor_for(backend: Any, *, isolate: bool | None = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """:class:`~fp8ref.conform.execute.InProcess` or :class:`~fp8ref.conform.isolate.Isolated` for
    ``backend`` (a name or an instance)."""
    from fp8ref.backends.registry import get, is_builtin

    if isolate is None:
        isolate = not is_builtin(backend)
    if not isolate:
        return InProcess(get(backend))
    return Isolated(BackendSpec.of(backend), timeout)


def _run(executor: Any, root: Path, entries: list[dict[str, Any]], not_run: dict[str, int], wanted: list[str],
         tolerance: float, keep: int, infer_accumulation: bool, log: Any) -> ConformReport:
    caps = executor.capabilities
    selectable = bool(caps.accumulation_selectable)
    summaries = {s: SuiteSummary(s) for s in wanted}
    results: list[CaseResult] = []
    mm_runs: list[tuple[LoadedCase, np.ndarray]] = []
    for entry in entries:
        s = entry["suite"]
        case = load_case(root, entry)  # SetError propagates: a corrupt set is not a backend failure
        res = CaseResult(id=case.id, suite=s, op=case.op, status="error")
        params = dict(case.params)
        scored = True
        if case.op == "scaled_mm" and not selectable:
            scored = params.get("accumulate") == caps.accumulation
            params["accumulate"] = None
        out = executor.call(run_case, s, case.op, params, case.inputs)
        if isinstance(out, Lost):
            out = Outcome("error", reason=out.reason)
        if out.kind == "skipped":
            res.status, res.reason = "skipped", out.reason
        elif out.kind == "violation":
            res.status, res.reason = "fail", out.reason
        elif out.kind == "error":
            _blame(case, out.reason)
            res.status, res.reason = "error", out.reason
        else:
            outputs = out.outputs or {}
            _check_outputs(case, outputs)
            if case.op == "scaled_mm" and (params["accumulate"] is None
                                           or params["accumulate"] == caps.accumulation):
                mm_runs.append((case, outputs["out"]))  # the backend's own accumulation
            if scored:
                sc = score(case, outputs, tolerance, keep)
                for f in fields(sc):
                    setattr(res, f.name, getattr(sc, f.name))
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
        from fp8ref.conform.models import explain, probe

        probed = executor.call(probe)
        if isinstance(probed, Lost):
            probed = {"error": probed.reason}
        acc = explain(caps.accumulation, mm_runs, probed)
    return ConformReport(executor.name, str(root), float(tolerance), summaries, results, acc, caps.to_dict(),
                         not_run, executor.isolated, executor.timeout)


def _blame(case: LoadedCase, reason: str) -> None:
    """A case the backend failed is the backend's fault only if the reference can compute it:
    :class:`SetError` when the reference fails too (parameters or tensors that do not fit the op)."""
    try:
        with np.errstate(all="ignore"):
            compute(case.op, case.params, case.inputs)
    except Exception as exc:  # noqa: BLE001 - any failure of the reference on the set's data
        raise mf.SetError(f"case {case.id!r}: the reference cannot compute it either "
                          f"({describe_exception(exc)}); the backend failed with: {reason}") from None


def _check_outputs(case: LoadedCase, outputs: dict[str, np.ndarray]) -> None:
    """The runner's outputs (fp8ref code, from contract-checked backend results) against the set's expected
    tensors: a name, dtype or shape that differs means the set does not hold what its op computes."""
    for name, exp in case.outputs.items():
        got = outputs.get(name)
        if got is None:
            raise mf.SetError(f"case {case.id!r}: output {name!r} is not an output of op {case.op!r} "
                              f"(it gives {', '.join(sorted(outputs))})")
        if got.dtype != exp.dtype or got.shape != exp.shape:
            raise mf.SetError(f"case {case.id!r}: output {name!r} is {exp.dtype}{list(exp.shape)} in the "
                              f"set; op {case.op!r} gives {got.dtype}{list(got.shape)} for its inputs")


def _add(s: SuiteSummary, r: CaseResult, keep: int) -> None:
    s.cases += 1
    s.exact += r.status == "exact"
    s.within += r.status == "within"
    s.failed += r.status == "fail"
    s.skipped += r.status == "skipped"
    s.errors += r.status == "error"
    s.elements += r.elements
    s.exact_elements += r.exact
    s.add_differences(r, keep)
