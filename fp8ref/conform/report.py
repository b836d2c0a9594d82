"""The human-readable table of a :class:`~fp8ref.conform.harness.ConformReport`."""

from __future__ import annotations

from fp8ref.conform.harness import ConformReport

__all__ = ["format_table"]


def _short(v: str, n: int = 40) -> str:
    return v if len(v) <= n else f"{v[:n]}... ({len(v)} chars; full in --report)"


def _hist(h: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in h.items()) or "-"


def format_table(rep: ConformReport, *, worst: int = 5) -> str:
    lines = [f"fp8ref conform: backend {rep.backend}, golden set {rep.golden}, "
             f"tolerance {rep.tolerance:g} ulp"]
    head = f"{'suite':<9}{'cases':>6}{'exact':>7}{'within':>7}{'fail':>6}{'skip':>6}{'error':>6}" \
           f"{'elements':>10}{'bit-exact':>11}  ulp histogram of the rest"
    lines += ["", head, "-" * len(head)]
    for s in rep.suites.values():
        pct = 100.0 * s.exact_elements / s.elements if s.elements else 100.0
        lines.append(f"{s.suite:<9}{s.cases:>6}{s.exact:>7}{s.within:>7}{s.failed:>6}{s.skipped:>6}"
                     f"{s.errors:>6}{s.elements:>10}{pct:>10.2f}%  {_hist(s.histogram)}")
    for s in rep.suites.values():
        if s.categories:
            cats = sorted(s.categories.items(), key=lambda kv: -kv[1])
            lines.append(f"\n{s.suite}: deviations by rule: " + ", ".join(f"{k} {v}" for k, v in cats))
        fails = [c for c in rep.cases if c.suite == s.suite and c.status in ("fail", "error")]
        if fails:
            lines.append(f"{s.suite}: failing cases:")
            for c in fails:
                what = c.reason if c.status == "error" else (
                    f"{c.elements - c.exact}/{c.elements} elements differ, max {c.max_ulps:g} ulp; "
                    + ", ".join(f"{k} {v}" for k, v in c.categories.items()))
                lines.append(f"  {c.status.upper():5} {c.id}: {what}")
        if s.worst:
            lines.append(f"{s.suite}: worst elements:")
            for e in s.worst[:worst]:
                ins = ", ".join(f"{k}={_short(v)}" for k, v in e.inputs.items())
                lines.append(f"  {e.case} {e.output}{e.index}: expected {e.expected}, got {e.got} "
                             f"({e.ulps:g} ulp, {e.category}){'; ' + ins if ins else ''}")
    skipped = {}
    for c in rep.cases:
        if c.status == "skipped":
            skipped[c.reason] = skipped.get(c.reason, 0) + 1
    if skipped:
        lines.append("\nskipped:")
        for reason, n in sorted(skipped.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {n:4} x {reason}")
    if rep.not_run:
        lines.append("not run (no backend operation; checked by 'fp8ref golden verify'): "
                     + ", ".join(f"{n} x {op}" for op, n in rep.not_run.items()))
    if rep.accumulation:
        a = rep.accumulation
        lines.append(f"\nmatmul accumulation: claimed {a['claimed']!r}; best explained by {a['best']!r}"
                     f"{' (every element bit-exact)' if a['explains_all'] else ''}")
        for r in a["ranking"][:6]:
            lines.append(f"  {r['model']:<22}{r['bit_exact']:>6}/{r['elements']} bit-exact, "
                         f"total {r['total_ulps']:g} ulp")
        p = a.get("probe") or {}
        if "summary" in p:
            lines.append("  probe inference (fp8ref.accum.infer on the backend's dot product):")
            lines += ["    " + ln for ln in str(p["summary"]).splitlines()]
        elif p:
            lines.append("  probe inference: " + "; ".join(f"{k}={v}" for k, v in p.items()))
    lines.append(f"\nresult: {'PASS' if rep.passed else 'FAIL'}")
    return "\n".join(lines)
