"""The sweep folder: its layout, the cells' completion markers and ``results.jsonl``.

::

    DIR/spec.toml              the sweep (paths absolute); fp8ref sweep --resume DIR reads it
    DIR/results.jsonl          one JSON object per cell (spec order once the sweep ends)
    DIR/cells/<name>/          each cell's folder, exactly as the single command writes it
    DIR/logs/<name>.log        what the cell's command printed (stdout and stderr)
    DIR/golden/                golden sweeps: the shards merged into one set
    DIR/report/                fp8ref sweep --report DIR
    DIR/.sweep/started/<name>.json   written before a cell's command starts (pid, host, worker)
    DIR/.sweep/done/<name>.json     the cell's record, written atomically after its command ended

A cell is complete when its ``done`` marker exists: the marker is written (temporary file, fsync, rename)
only after the command has returned, so a killed worker or client never leaves a cell that looks complete.
A cell folder with a ``started`` marker and no ``done`` marker belongs to an attempt that is running or was
interrupted. A running attempt touches its marker every few seconds (:mod:`fp8ref.sweep.cell`); another
attempt of the cell waits for it. Once it is gone (its process no longer exists, on the same host, or its
marker was not touched for a minute), the next attempt removes the partial folder (it was written by this
sweep) and runs the cell again. A cell folder without a ``started`` marker was not written by the sweep
and is never touched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "STATE",
    "SPEC",
    "RESULTS",
    "write_json_atomic",
    "read_done",
    "done_path",
    "started_path",
    "is_sweep_folder",
    "write_results",
    "append_result",
    "read_results",
    "layout",
]

STATE = ".sweep"
SPEC = "spec.toml"
RESULTS = "results.jsonl"


def done_path(out: Path, name: str) -> Path:
    return out / STATE / "done" / f"{name}.json"


def started_path(out: Path, name: str) -> Path:
    return out / STATE / "started" / f"{name}.json"


def layout(out: Path) -> None:
    """Create the folders of a sweep folder (``out`` itself included)."""
    for sub in (f"{STATE}/started", f"{STATE}/done", "cells", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)


def is_sweep_folder(out: Path) -> bool:
    return (out / SPEC).is_file() and (out / STATE).is_dir()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to a temporary file next to ``path``, flush, fsync, rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = (json.dumps(obj, indent=1, allow_nan=True) + "\n").encode()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_done(out: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The records of the complete cells among ``names`` (a marker that cannot be read counts as absent)."""
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        p = done_path(out, name)
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("name") == name:
            found[name] = rec
    return found


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, sort_keys=False, allow_nan=True, separators=(", ", ": ")) + "\n").encode()


def append_result(out: Path, record: dict[str, Any]) -> None:
    with open(out / RESULTS, "ab") as f:
        f.write(_line(record))
        f.flush()


def write_results(out: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite ``results.jsonl`` with ``records`` (temporary file, then rename)."""
    tmp = out / f".{RESULTS}.tmp-{os.getpid()}"
    tmp.write_bytes(b"".join(_line(r) for r in records))
    os.replace(tmp, out / RESULTS)


def read_results(out: Path) -> list[dict[str, Any]]:
    """The records of ``results.jsonl``; for a cell listed more than once, its last record (a torn last
    line, from a killed writer, is dropped)."""
    path = out / RESULTS
    if not path.is_file():
        return []
    by_name: dict[str, dict[str, Any]] = {}
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "name" in rec:
            by_name.pop(rec["name"], None)
            by_name[rec["name"]] = rec
    return list(by_name.values())
