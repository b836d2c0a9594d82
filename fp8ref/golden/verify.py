"""``fp8ref golden verify``: validate a set and recompute every case with the reference, bit for bit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fp8ref.golden import manifest as mf
from fp8ref.golden.io import load_case
from fp8ref.golden.ops import compute

__all__ = ["Finding", "VerifyReport", "verify", "OK", "MISMATCH", "INVALID"]

OK, MISMATCH, INVALID = 0, 1, 2


@dataclass(frozen=True)
class Finding:
    case: str
    status: str  # "mismatch" or "invalid"
    reason: str


@dataclass
class VerifyReport:
    cases: int = 0
    passed: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if any(f.status == "invalid" for f in self.findings):
            return INVALID
        return MISMATCH if self.findings else OK


def _first_difference(name: str, want: np.ndarray, got: np.ndarray) -> str:
    if want.dtype != got.dtype or want.shape != got.shape:
        return (f"output {name!r}: reference gives {got.dtype}{list(got.shape)}, "
                f"set holds {want.dtype}{list(want.shape)}")
    w = np.ascontiguousarray(want).reshape(-1).view(np.uint8).reshape(want.size, -1)
    g = np.ascontiguousarray(got).reshape(-1).view(np.uint8).reshape(got.size, -1)
    bad = np.flatnonzero((w != g).any(axis=1))
    idx = np.unravel_index(bad[0], want.shape) if want.ndim else ()
    at = tuple(int(i) for i in idx)
    return (f"output {name!r}: {bad.size} of {want.size} elements differ; first at {at}: "
            f"set holds {want.reshape(-1)[bad[0]]!r} (bytes {w[bad[0]].tobytes().hex()}), reference gives "
            f"{got.reshape(-1)[bad[0]]!r} (bytes {g[bad[0]].tobytes().hex()})")


def verify(root: str | Path, *, suites: list[str] | None = None) -> VerifyReport:
    """Verify the set in ``root``. Never raises for a bad set: problems become findings."""
    root = Path(root)
    rep = VerifyReport()
    try:
        manifest = mf.load(root)
    except mf.SetError as exc:
        rep.findings.append(Finding("<manifest>", "invalid", str(exc)))
        return rep
    for entry in manifest["cases"]:
        if suites and entry["suite"] not in suites:
            continue
        rep.cases += 1
        try:
            case = load_case(root, entry)
        except mf.SetError as exc:
            rep.findings.append(Finding(entry["id"], "invalid", str(exc)))
            continue
        try:
            result = compute(case.op, case.params, case.inputs)
        except Exception as exc:  # noqa: BLE001 - bad parameters in a set are reported, never a crash
            rep.findings.append(Finding(case.id, "invalid", f"cannot recompute op {case.op!r}: "
                                        f"{type(exc).__name__}: {exc}"))
            continue
        if set(result.outputs) != set(case.outputs):
            rep.findings.append(Finding(case.id, "invalid", f"op {case.op} outputs {sorted(result.outputs)}, "
                                        f"set holds {sorted(case.outputs)}"))
            continue
        problems = [_first_difference(n, case.outputs[n], np.asarray(result.outputs[n]))
                    for n in sorted(case.outputs)
                    if not _same_bits(case.outputs[n], np.asarray(result.outputs[n]))]
        if problems:
            rep.findings.append(Finding(case.id, "mismatch", "; ".join(problems)))
        else:
            rep.passed += 1
    return rep


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())
