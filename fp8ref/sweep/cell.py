"""Running one cell (in a Dask worker, or anywhere): the single command, in this process, into its folder.

The cell's command is ``fp8ref.cli.main(argv)``, the very function of the console script, called in the
worker process with its standard output and error going to ``logs/<name>.log``: the files it writes are
those of ``fp8ref <command> ... --out <cell folder>`` run alone (each cell's seeds are its own options).
A worker process runs one cell at a time (a process-wide lock: redirected output and the BLAS / Numba thread
limits are per process), whatever the worker's thread count.

Outcomes: the command's exit status decides ``ok`` / ``failed`` (:meth:`fp8ref.sweep.kinds.Kind.outcome`);
an exception escaping the command is a failed cell with the exception as its error (traceback in the log).
Either way the record is written as the ``done`` marker: the cell is complete and a resume skips it (unless
``--rerun-failed``). A worker that dies leaves no marker; Dask reschedules the task and the next attempt
starts the cell afresh. An attempt never removes the folder of another attempt that may still run (a task
of an interrupted client that Dask could not stop, a duplicate): while the command runs, its ``started``
marker is touched every :data:`HEARTBEAT_S` seconds, and another attempt waits for the cell's record until
that attempt's process is gone (same host) or its marker is older than :data:`STALE_S` (another host).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import time
import traceback
import uuid
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fp8ref.sweep import results as rs

__all__ = ["Task", "execute"]

_LOCK = threading.Lock()
HEARTBEAT_S = 5.0  # a running attempt touches its started marker this often
STALE_S = 60.0  # a started marker of another host untouched this long belongs to a dead attempt


@dataclass(frozen=True)
class Task:
    """What a worker needs to run one cell (small and picklable)."""

    kind: str
    name: str
    params: dict[str, Any]
    out: str  # the sweep folder, absolute

    @property
    def cell_dir(self) -> Path:
        return Path(self.out) / "cells" / self.name

    def argv(self) -> list[str]:
        from fp8ref.sweep.kinds import kind_of

        return kind_of(self.kind).argv(self.params, str(self.cell_dir))


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


class _Tee(io.TextIOBase):
    """Writes go to the log file and are kept (the command's error line is the cell's error)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.kept = io.StringIO()

    def write(self, s: str) -> int:
        self.f.write(s)
        self.kept.write(s)
        return len(s)

    def flush(self) -> None:
        self.f.flush()


def _error_line(text: str) -> str | None:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    mine = [ln for ln in lines if ln.startswith("fp8ref ")]
    return (mine or lines or [None])[-1]


def _call(argv: list[str], log: Path) -> tuple[int | None, str | None]:
    """Run ``fp8ref.cli.main(argv)`` with output to ``log``: ``(exit status, error line or None)``; the
    status is None when an exception escaped the command."""
    from fp8ref.cli import main

    with open(log, "w", encoding="utf-8", errors="replace") as f:
        err = _Tee(f)
        with redirect_stdout(f), redirect_stderr(err):
            try:
                rc = int(main(list(argv)) or 0)
            except SystemExit as exc:  # argparse, or a command that exits
                code = exc.code
                if isinstance(code, str):
                    print(code, file=err)
                rc = code if isinstance(code, int) else (0 if code is None else 1)
            except Exception as exc:  # noqa: BLE001 - a cell's failure is recorded, the sweep goes on
                traceback.print_exc(file=err)
                return None, f"{type(exc).__name__}: {exc}"
    return rc, (_error_line(err.kept.getvalue()) if rc != 0 else None)


def execute(task: Task) -> dict[str, Any]:
    """Run the cell of ``task`` unless it is complete; return its record."""
    with _LOCK:
        return _execute(task)


def _alive(marker: dict[str, Any], age: float) -> bool:
    """Whether the attempt that wrote a ``started`` marker may still be running: on this host, its process
    exists (and is not this one, which holds the lock); elsewhere, its heartbeat is recent."""
    if marker.get("host") == socket.gethostname() and isinstance(marker.get("pid"), int):
        pid = marker["pid"]
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return age < STALE_S
    return age < STALE_S


def _read_marker(path: Path) -> tuple[dict[str, Any], float] | None:
    try:
        age = time.time() - path.stat().st_mtime
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (doc if isinstance(doc, dict) else {}), age


class _Heartbeat:
    """Touches the ``started`` marker every :data:`HEARTBEAT_S` while the command runs, so that another
    attempt of the cell (an orphaned task of an interrupted client, a duplicate) waits instead of taking
    over a folder in use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


def _execute(task: Task) -> dict[str, Any]:
    from fp8ref.sweep.kinds import kind_of

    out = Path(task.out)
    kind = kind_of(task.kind)
    cell_dir = task.cell_dir
    started = rs.started_path(out, task.name)
    worker = _worker_name()
    token = uuid.uuid4().hex
    while True:
        got = rs.read_done(out, [task.name])
        if task.name in got:  # completed by an earlier attempt (whose result never reached the client)
            return got[task.name]
        marker = _read_marker(started)
        if marker is None or not _alive(*marker):
            break
        time.sleep(1.0)  # another attempt is running this cell: wait for its record
    record: dict[str, Any] = {
        "name": task.name,
        "params": task.params,
        "status": "failed",
        "dir": f"cells/{task.name}",
        "error": None,
        "wall_s": 0.0,
        "worker": worker,
    }
    if cell_dir.exists() or cell_dir.is_symlink():
        if marker is None:
            record["error"] = f"{cell_dir} exists and was not written by this sweep; move it away and resume"
            return record  # not complete: no marker
        if cell_dir.is_symlink() or not cell_dir.is_dir():
            cell_dir.unlink()
        else:
            shutil.rmtree(cell_dir)  # the partial output of an interrupted attempt of this cell
    rs.write_json_atomic(
        started,
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "worker": worker,
            "time": time.time(),
            "token": token,
        },
    )
    argv = task.argv()
    t0 = time.perf_counter()
    with _Heartbeat(started):
        kind.prepare(cell_dir)
        rc, error = _call(argv, out / "logs" / f"{task.name}.log")
        status, metrics = ("failed", {}) if rc is None else kind.outcome(rc, cell_dir)
    record.update(status=status, error=error if status == "failed" else None, rc=rc, **metrics)
    record["wall_s"] = round(time.perf_counter() - t0, 4)
    record["command"] = "fp8ref " + " ".join(argv)
    rs.write_json_atomic(rs.done_path(out, task.name), record)
    return record
