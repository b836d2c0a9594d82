"""``fp8ref golden generate``: build the suites' cases, compute them with the reference, write the set."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fp8ref.golden import manifest as mf
from fp8ref.golden.io import write_case, write_manifest
from fp8ref.golden.ops import ALL_SUITES, SUITES, compute, suite_module

__all__ = ["generate", "command_line"]


def command_line(suites: Sequence[str]) -> str:
    """The command recorded in the manifest (the directory is written as ``DIR``: no paths in a set)."""
    parts = ["fp8ref", "golden", "generate", "DIR"]
    if tuple(suites) != SUITES:
        for s in suites:
            parts += ["--suite", s]
    return " ".join(parts)


def _clear_previous(root: Path) -> None:
    """Remove the tensor files of a set previously written to ``root`` (listed in its manifest)."""
    old = root / mf.MANIFEST
    if not old.exists():
        if any(root.iterdir()):
            raise ValueError(f"DIR {root} is not empty and holds no golden set; refusing to write into it")
        return
    try:
        entries = json.loads(old.read_text())["cases"]
        files = [e["file"] for e in entries]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"DIR {root} holds an unreadable manifest.json; remove it first") from None
    for f in files:
        try:
            p = mf.safe_path(root, f)
        except mf.SetError:
            continue
        if p.is_file():
            p.unlink()
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()):
            d.rmdir()


def generate(root: str | Path, suites: Sequence[str] | None = None, *,
             log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Write a golden set of ``suites`` (default: :data:`SUITES`, the default set; an optional suite such
    as ``minilm`` only when named) to directory ``root``; returns the manifest.

    The output is byte-for-byte reproducible: inputs come from fixed seeds through bit-exact integer
    generators, outputs from the bit-exact reference, files and JSON are written deterministically.
    """
    suites = list(SUITES if not suites else dict.fromkeys(suites))
    for s in suites:
        suite_module(s)  # validates the name
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _clear_previous(root)
    entries: list[dict[str, Any]] = []
    for s in ALL_SUITES:
        if s not in suites:
            continue
        cases = suite_module(s).build()
        for case in cases:
            if case.suite != s:
                raise ValueError(f"case {case.id} is built by suite {s}")
            entries.append(write_case(root, case, compute(case.op, case.params, case.inputs)))
        if log:
            log(f"{s}: {len(cases)} cases")
    write_manifest(root, [s for s in ALL_SUITES if s in suites], entries, command_line(
        [s for s in ALL_SUITES if s in suites]))
    return json.loads((root / mf.MANIFEST).read_text())
