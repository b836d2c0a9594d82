"""Joining golden sets: :func:`merge` writes one set holding every case of several shards.

A shard is any golden set, typically one written by ``fp8ref golden generate DIR --suite S --case GLOB
--where KEY=VALUE`` (``fp8ref sweep`` of kind ``golden`` writes one per cell). The merged set is an ordinary
set: ``fp8ref golden verify`` and ``fp8ref conform`` accept it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fp8ref.golden import manifest as mf
from fp8ref.golden.io import write_manifest
from fp8ref.golden.ops import ALL_SUITES

__all__ = ["merge"]


def _read_case_file(shard: Path, entry: dict[str, Any]) -> bytes:
    path = mf.safe_path(shard, entry["file"])
    if not path.is_file():
        raise mf.SetError(f"{shard}: case {entry['id']}: tensor file {entry['file']} is missing")
    data = path.read_bytes()
    if len(data) != entry["bytes"] or mf.sha256_hex(data) != entry["sha256"]:
        raise mf.SetError(f"{shard}: case {entry['id']}: {entry['file']} does not match its manifest entry "
                          "(size or SHA-256)")
    return data


def merge(root: str | Path, shards: Sequence[str | Path], *, command: str | None = None) -> dict[str, Any]:
    """Write to ``root`` (absent or an empty folder) the set of every case of the sets ``shards``.

    Every shard is validated first (its manifest, and the size and SHA-256 of every tensor file), before
    anything is written. Order: suites in the order of ``fp8ref.golden.ops.ALL_SUITES``; within a suite, the
    shards in the order given and each shard's cases in its own order (so whole-suite shards merge to the
    set ``generate`` writes for those suites, ``command`` aside). A case id found in two shards must have
    the same manifest entry (same bytes); it is kept once. All shards must come from the running fp8ref
    version. ``command`` is recorded in the manifest (default: the shards' commands). Raises
    :class:`fp8ref.golden.SetError` for an invalid shard or conflicting cases, ``ValueError`` for a
    ``root`` that is not empty. Returns the merged manifest.
    """
    import fp8ref

    root = Path(root)
    if not shards:
        raise ValueError("merge: no shards given")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"{root}: exists and is not an empty folder; merge writes a new set")
    loaded = []
    for s in shards:
        sp = Path(s)
        m = mf.load(sp)
        if m["fp8ref_version"] != fp8ref.__version__:
            raise mf.SetError(f"{sp}: written by fp8ref {m['fp8ref_version']}, this is fp8ref "
                              f"{fp8ref.__version__}; regenerate the shard")
        loaded.append((sp, m))
    order = {s: i for i, s in enumerate(ALL_SUITES)}
    suites: list[str] = []
    for _, m in loaded:
        suites += [s for s in m["suites"] if s not in suites]
    suites.sort(key=lambda s: order.get(s, len(order)))
    picked: dict[str, tuple[Path, dict[str, Any]]] = {}
    ordered: list[tuple[Path, dict[str, Any]]] = []
    for suite in suites:
        for sp, m in loaded:
            for entry in m["cases"]:
                if entry["suite"] != suite:
                    continue
                seen = picked.get(entry["id"])
                if seen is not None:
                    if json.dumps(seen[1], sort_keys=True) != json.dumps(entry, sort_keys=True):
                        raise mf.SetError(f"case {entry['id']} differs between {seen[0]} and {sp}")
                    continue
                picked[entry["id"]] = (sp, entry)
                ordered.append((sp, entry))
    for sp, m in loaded:  # every file of every shard, before anything is written
        for entry in m["cases"]:
            _read_case_file(sp, entry)
    if command is None:
        cmds = list(dict.fromkeys(m["command"] for _, m in loaded))
        command = "merged from: " + "; ".join(cmds)
    root.mkdir(parents=True, exist_ok=True)
    for sp, entry in ordered:
        data = _read_case_file(sp, entry)
        dest = mf.safe_path(root, entry["file"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    entries = [entry for _, entry in ordered]
    write_manifest(root, suites, entries, command)
    return json.loads((root / mf.MANIFEST).read_text())
