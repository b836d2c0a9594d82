"""The human-readable table of a :class:`~fp8ref.conform.harness.ConformReport`."""

from __future__ import annotations

from fp8ref.conform.harness import ConformReport, SuiteSummary

__all__ = ["format_table"]


def _short(v: str, n: int = 40) -> str:
    return v if len(v) <= n else f"{v[:n]}... ({len(v)} chars; full in --report)"


def _hist(h: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in h.items()) or "-"


def _skip_reasons(rep: ConformReport, suite: str | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in rep.cases:
        if c.status == "skipped" and (suite is None or c.suite == suite):
            out[c.reason] = out.get(c.reason, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _row_rest(rep: ConformReport, s: SuiteSummary) -> str:
    """The last column: the histogram, or why nothing was compared."""
    if s.cases and s.skipped == s.cases:
        reasons = _skip_reasons(rep, s.suite)
        return f"all skipped: {next(iter(reasons))}" if len(reasons) == 1 else "all skipped (reasons below)"
    if not s.elements:
        return "no element compared"
    return _hist(s.histogram)


def format_table(rep: ConformReport, *, worst: int = 5) -> str:
    where = (f"in a worker process, {rep.timeout:g} s per case" if rep.isolated else "in this process")
    lines = [f"fp8ref conform: backend {rep.backend} ({where}), golden set {rep.golden}, "
             f"tolerance {rep.tolerance:g} ulp"]
    head = f"{'suite':<9}{'cases':>6}{'exact':>7}{'within':>7}{'fail':>6}{'skip':>6}{'error':>6}" \
           f"{'elements':>10}{'bit-exact':>11}  ulp histogram of the rest"
    lines += ["", head, "-" * len(head)]
    for s in rep.suites.values():
        pct = f"{100.0 * s.exact_elements / s.elements:>10.2f}%" if s.elements else f"{'-':>11}"
        elements = f"{s.elements:>10}" if s.elements else f"{'-':>10}"
        lines.append(f"{s.suite:<9}{s.cases:>6}{s.exact:>7}{s.within:>7}{s.failed:>6}{s.skipped:>6}"
                     f"{s.errors:>6}{elements}{pct}  {_row_rest(rep, s)}")
    for s in rep.suites.values():
        if s.categories:
            cats = sorted(s.categories.items(), key=lambda kv: -kv[1])
            lines.append(f"\n{s.suite}: deviations by rule: " + ", ".join(f"{k} {v}" for k, v in cats))
        fails = [c for c in rep.cases if c.suite == s.suite and c.status in ("fail", "error")]
        if fails:
            lines.append(f"{s.suite}: failing cases:")
            for c in fails:
                what = c.reason if c.reason else (
                    f"{c.elements - c.exact}/{c.elements} elements differ, max {c.max_ulps:g} ulp; "
                    + ", ".join(f"{k} {v}" for k, v in c.categories.items()))
                lines.append(f"  {c.status.upper():5} {c.id}: {what}")
        if s.worst:
            lines.append(f"{s.suite}: worst elements:")
            for e in s.worst[:worst]:
                ins = ", ".join(f"{k}={_short(v)}" for k, v in e.inputs.items())
                lines.append(f"  {e.case} {e.output}{e.index}: expected {e.expected}, got {e.got} "
                             f"({e.ulps:g} ulp, {e.category}){'; ' + ins if ins else ''}")
    skipped = _skip_reasons(rep)
    if skipped:
        lines.append("\nskipped:")
        for reason, n in skipped.items():
            lines.append(f"  {n:4} x {reason}")
    if rep.not_run:
        lines.append("not run (no backend operation; checked by 'fp8ref golden verify'): "
                     + ", ".join(f"{n} x {op}" for op, n in rep.not_run.items()))
    if rep.accumulation:
        lines.append(f"\nmatmul accumulation: claimed {rep.accumulation['claimed']!r}; "
                     + _explained(rep.accumulation))
        a = rep.accumulation
        for r in a["ranking"][:6]:
            lines.append(f"  {r['model']:<22}{r['bit_exact']:>6}/{r['elements']} bit-exact, "
                         f"total {r['total_ulps']:g} ulp")
        p = a.get("probe") or {}
        if "summary" in p:
            lines.append("  probe inference (fp8ref.accum.infer on the backend's dot product):")
            lines += ["    " + ln for ln in str(p["summary"]).splitlines()]
        elif p:
            lines.append("  probe inference: " + "; ".join(f"{k}={v}" for k, v in p.items()))
    n_skipped = sum(s.skipped for s in rep.suites.values())
    n_cases = sum(s.cases for s in rep.suites.values())
    note = f" ({n_skipped} of {n_cases} cases skipped)" if n_skipped else ""
    lines.append(f"\nresult: {'PASS' if rep.passed else 'FAIL'}{note}")
    return "\n".join(lines)


def _explained(a: dict) -> str:
    """Which preset explains the backend's matmul outputs, in words."""
    ranking = a["ranking"]
    if not ranking:
        return "no accumulation preset could recompute these cases"
    if a["best"] is None:
        return (f"no model explains it: none of the {len(ranking)} presets reproduces a single element bit "
                "for bit")
    top = ranking[0]
    if a["explains_all"]:
        return f"best explained by {a['best']!r} (every element bit-exact)"
    return (f"best explained by {a['best']!r} ({top['bit_exact']}/{top['elements']} elements bit-exact); "
            "no model reproduces every element")
