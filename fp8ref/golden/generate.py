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
from fp8ref.golden.ops import ALL_SUITES, SUITES, compute, suite_module

__all__ = ["generate", "command_line", "GENERATOR", "select", "where_value"]

#: the start of the ``command`` of every manifest ``generate`` writes: with ``schema`` it marks a set as
#: fp8ref's own, the only kind whose files ``generate`` ever removes
GENERATOR = "fp8ref golden generate"



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
    parts = [*GENERATOR.split(), "DIR"]
    if tuple(suites) != SUITES:
        for s in suites:
            parts += ["--suite", s]
    for p in patterns or ():
        parts += ["--case", shlex.quote(p)]
    for k, v in (where or {}).items():
        parts += ["--where", shlex.quote(f"{k}={v if isinstance(v, str) else json.dumps(v)}")]
    return " ".join(parts)


def _own_files(root: Path) -> list[Path]:
    """The files of the fp8ref golden set in ``root`` that ``generate`` may remove before writing a new one
    (the listed files that exist, inside ``root``, unchanged since they were written); ``[]`` for an empty
    or missing ``root``. Raises ``ValueError`` (removing nothing) for a folder that holds anything else: files
    but no manifest, a manifest that is not fp8ref's, or a listed file that was changed or replaced."""
    if not root.exists() or not any(root.iterdir()):
        return []
    if not (root / mf.MANIFEST).exists():
        raise ValueError(f"{root} is not empty and holds no golden set; refusing to write into it")
    try:
        manifest = mf.load(root)
    except mf.SetError as exc:
        raise ValueError(f"{root} holds a manifest.json that is not a readable fp8ref golden set ({exc}); "
                         "refusing to write into it (remove it, or choose another DIR)") from None
    if not manifest["command"].startswith(GENERATOR + " "):
        raise ValueError(f"{root}/manifest.json was not written by '{GENERATOR}' (its command is "
                         f"{manifest['command'][:80]!r}); refusing to write into {root}")
    files = []
    for entry in manifest["cases"]:
        p = root / entry["file"]  # the path itself, never where a symbolic link points
        if p.is_symlink():
            raise ValueError(f"{p} is a symbolic link, which fp8ref does not write; refusing to replace the "
                             "set (remove it first)")
        try:
            mf.safe_path(root, entry["file"])
        except mf.SetError:
            continue
        if not p.exists():
            continue
        data = p.read_bytes() if p.is_file() and p.stat().st_size == entry["bytes"] else None
        if data is None or mf.sha256_hex(data) != entry["sha256"]:
            raise ValueError(f"{p} differs from what the set's manifest says fp8ref wrote there; refusing "
                             "to replace the set (move the file away first)")
        files.append(p)
    return files


def _check_destinations(root: Path, cases: list[Any], old: list[Path]) -> None:
    """Every file the new set writes stays inside ``root`` and replaces nothing but a file of the old set."""
    if not root.exists():
        return
    mine = set(old)
    for case in cases:
        try:
            mf.safe_path(root, case.file)
        except mf.SetError as exc:
            raise ValueError(f"{root}: cannot write case {case.id} there ({exc})") from None
        p = root / case.file
        if (p.exists() or p.is_symlink()) and p not in mine:
            raise ValueError(f"{p} exists and is not a file of the golden set fp8ref wrote there; refusing "
                             "to overwrite it")


def _remove(root: Path, files: list[Path]) -> None:
    """Remove ``files`` and then the folders that held them, up to (not including) ``root``, that are left
    empty; nothing else."""
    folders: set[Path] = set()
    for p in files:
        p.unlink()
        d = p.parent
        while d != root and root in d.parents:
            folders.add(d)
            d = d.parent
    for d in sorted(folders, key=lambda d: -len(d.parts)):
        if d.is_dir() and not d.is_symlink() and not any(d.iterdir()):
            d.rmdir()


def generate(root: str | Path, suites: Sequence[str] | None = None, *,
             log: Callable[[str], Any] | None = None, cases: Sequence[str] | None = None,
             where: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write a golden set of ``suites`` (default: :data:`SUITES`, the default set; an optional suite such
    as ``minilm`` only when named) to directory ``root``; returns the manifest.

    ``cases`` (glob patterns over case ids) and ``where`` (parameter values) keep a part of the suites'
    cases (:func:`select`; ``fp8ref golden generate --case/--where``): a shard of a set, which
    :func:`fp8ref.golden.merge` joins with others. A selection that keeps no case is refused before
    anything is written. The suites listed in the manifest are those with at least one case.

    The output is byte-for-byte reproducible: inputs come from fixed seeds through bit-exact integer
    generators, outputs from the bit-exact reference, files and JSON are written deterministically.

    ``root`` is checked first (:func:`fp8ref.outputs.check_output_dir`); it must be missing, empty, or hold
    an fp8ref golden set, which is replaced: only the files its manifest lists (unchanged since fp8ref
    wrote them) and the folders they leave empty are removed, after every case has been computed. Anything
    else in ``root`` raises ``ValueError`` before anything is written or removed.
    """
    from fp8ref.outputs import check_output_dir

    suites = list(SUITES if not suites else dict.fromkeys(suites))
    for s in suites:
        suite_module(s)  # validates the name
    suites = [s for s in ALL_SUITES if s in suites]
    patterns = list(cases or ())
    where = dict(where or {})
    root = Path(root)
    check_output_dir(root)
    old = _own_files(root)
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
    computed = []
    for s, kept in chosen.items():
        computed += [(case, compute(case.op, case.params, case.inputs)) for case in kept]
        if log:
            log(f"{s}: {len(kept)} cases")
    _check_destinations(root, [case for case, _ in computed], old)
    _remove(root, old)
    root.mkdir(parents=True, exist_ok=True)
    entries = [write_case(root, case, result) for case, result in computed]
    write_manifest(root, list(chosen), entries, command_line(suites, patterns, where))
    return json.loads((root / mf.MANIFEST).read_text())
