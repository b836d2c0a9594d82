"""``fp8ref golden generate``: build the suites' cases, compute them with the reference, write the set."""

from __future__ import annotations

import fnmatch
import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fp8ref.golden import manifest as mf
from fp8ref.golden.case import Case
from fp8ref.golden.io import write_case, write_manifest
from fp8ref.golden.ops import SUITES, compute, suite_module

__all__ = ["generate", "command_line", "select", "where_value"]


def where_value(text: str) -> Any:
    """The value of ``--where KEY=VALUE``: a JSON number, ``true``/``false``/``null``, list or object when
    the text parses as one, else the text itself (``E4M3``, ``h100-fp8``)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if not isinstance(value, str) else text


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def select(cases: Sequence[Case], patterns: Sequence[str] | None = None,
           where: Mapping[str, Any] | None = None) -> list[Case]:
    """The cases whose id matches one of the glob ``patterns`` (``fnmatch``, ``*`` crosses ``/``) and whose
    ``params[key]`` equals ``where[key]`` for every key (compared as JSON: ``1`` is not ``1.0`` nor
    ``true``). No patterns and no ``where``: every case. Order is kept."""
    want = {k: _key(v) for k, v in (where or {}).items()}
    out = []
    for c in cases:
        if patterns and not any(fnmatch.fnmatchcase(c.id, p) for p in patterns):
            continue
        if any(k not in c.params or _key(c.params[k]) != v for k, v in want.items()):
            continue
        out.append(c)
    return out


def command_line(suites: Sequence[str], patterns: Sequence[str] | None = None,
                 where: Mapping[str, Any] | None = None) -> str:
    """The command recorded in the manifest (the directory is written as ``DIR``: no paths in a set)."""
    parts = ["fp8ref", "golden", "generate", "DIR"]
    if tuple(suites) != SUITES:
        for s in suites:
            parts += ["--suite", s]
    for p in patterns or ():
        parts += ["--case", shlex.quote(p)]
    for k, v in (where or {}).items():
        parts += ["--where", shlex.quote(f"{k}={v if isinstance(v, str) else json.dumps(v)}")]
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
             log: Callable[[str], Any] | None = None, cases: Sequence[str] | None = None,
             where: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write a golden set of ``suites`` (default: all) to directory ``root``; returns the manifest.

    ``cases`` (glob patterns over case ids) and ``where`` (parameter values) keep a part of the suites'
    cases (:func:`select`; ``fp8ref golden generate --case/--where``): a shard of a set, which
    :func:`fp8ref.golden.merge` joins with others. A selection that keeps no case is refused before
    anything is written. The suites listed in the manifest are those with at least one case.

    The output is byte-for-byte reproducible: inputs come from fixed seeds through bit-exact integer
    generators, outputs from the bit-exact reference, files and JSON are written deterministically.
    """
    suites = list(SUITES if not suites else dict.fromkeys(suites))
    for s in suites:
        suite_module(s)  # validates the name
    suites = [s for s in SUITES if s in suites]
    patterns = list(cases or ())
    where = dict(where or {})
    chosen: dict[str, list[Case]] = {}
    for s in suites:
        built = suite_module(s).build()
        for case in built:
            if case.suite != s:
                raise ValueError(f"case {case.id} is built by suite {s}")
        kept = select(built, patterns, where) if (patterns or where) else built
        if kept:
            chosen[s] = kept
    if not chosen:
        chose = command_line(suites, patterns, where).partition(" DIR ")[2]
        raise ValueError(f"{chose} keeps no case of the suite(s) {', '.join(suites)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _clear_previous(root)
    entries: list[dict[str, Any]] = []
    for s, kept in chosen.items():
        for case in kept:
            entries.append(write_case(root, case, compute(case.op, case.params, case.inputs)))
        if log:
            log(f"{s}: {len(kept)} cases")
    write_manifest(root, list(chosen), entries, command_line(suites, patterns, where))
    return json.loads((root / mf.MANIFEST).read_text())
