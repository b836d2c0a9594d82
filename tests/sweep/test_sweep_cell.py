"""One cell, run where it is called (what a Dask worker does): its files, its record, its failures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from fp8ref.sweep import Sweep, cell
from fp8ref.sweep import results as rs
from fp8ref.sweep.cell import Task, execute

from .helpers import TINY, files, serial_twin


def _task(tmp_path: Path, **params) -> Task:
    out = tmp_path / "sweep"
    rs.layout(out)
    s = Sweep(kind="train", grid={}, fixed={"recipe": "fp8-cscale", **TINY, **params})
    cell = s.expand()[0]
    return Task("train", cell.name, cell.params, str(out))


def test_a_cell_writes_what_the_single_command_writes_and_its_record(tmp_path: Path) -> None:
    task = _task(tmp_path, bias=2)
    rec = execute(task)
    assert rec["status"] == "ok" and rec["error"] is None and rec["rc"] == 0
    assert rec["dir"] == "cells/cell" and rec["params"]["bias"] == 2 and rec["wall_s"] > 0
    assert rec["label"] == "fp8-cscale:2" and rec["run_status"] == "complete" and rec["steps_run"] == 4
    assert json.loads(rs.done_path(Path(task.out), "cell").read_text()) == rec
    alone = serial_twin(rec, tmp_path / "alone")
    assert files(task.cell_dir) == files(alone)
    assert (Path(task.out) / "logs" / "cell.log").read_text().count("run folder:") == 1
    # a second attempt (a retried task whose first result was lost) returns the record, runs nothing
    mtime = (task.cell_dir / "metrics.jsonl").stat().st_mtime_ns
    assert execute(task) == rec
    assert (task.cell_dir / "metrics.jsonl").stat().st_mtime_ns == mtime


def test_a_diverging_cell_is_failed_with_the_commands_error(tmp_path: Path) -> None:
    rec = execute(_task(tmp_path, lr=1e30))
    assert rec["status"] == "failed" and rec["rc"] == 3
    assert rec["error"].startswith("fp8ref train: training diverged at step")
    assert rec["run_status"] == "diverged" and isinstance(rec["diverged_step"], int)
    assert rs.done_path(tmp_path / "sweep", "cell").is_file()  # complete: the command decided


def test_an_exception_in_the_command_is_a_failed_cell(tmp_path: Path, monkeypatch) -> None:
    import fp8ref.cli

    def boom(argv):
        raise RuntimeError("the machine caught fire")

    monkeypatch.setattr(fp8ref.cli, "main", boom)
    task = _task(tmp_path)
    rec = execute(task)
    assert rec["status"] == "failed" and rec["rc"] is None
    assert rec["error"] == "RuntimeError: the machine caught fire"
    assert "Traceback" in (Path(task.out) / "logs" / "cell.log").read_text()


def test_partial_output_of_an_attempt_is_replaced_and_foreign_folders_are_kept(tmp_path: Path) -> None:
    task = _task(tmp_path)
    task.cell_dir.mkdir(parents=True)
    (task.cell_dir / "mine.txt").write_text("a user's file")
    rec = execute(task)  # no started marker: the sweep did not write that folder
    assert rec["status"] == "failed" and "was not written by this sweep" in rec["error"]
    assert (task.cell_dir / "mine.txt").read_text() == "a user's file"
    assert not rs.done_path(Path(task.out), task.name).exists()
    (task.cell_dir / "mine.txt").unlink()
    # an interrupted attempt: started marker of a process that is gone, half a run folder
    gone = _dead_pid()
    rs.write_json_atomic(
        rs.started_path(Path(task.out), task.name), {"pid": gone, "host": socket.gethostname()}
    )
    (task.cell_dir / "config.json").write_text("{half")
    rec = execute(task)
    assert rec["status"] == "ok"
    assert files(task.cell_dir) == files(serial_twin(rec, tmp_path / "alone"))


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_running_attempt_is_waited_for_not_taken_over(tmp_path: Path) -> None:
    """Another attempt of the cell is alive (an orphaned task of an interrupted client): wait for its
    record instead of removing the folder it writes; a stale marker of another host is taken over."""
    import threading

    task = _task(tmp_path)
    out = Path(task.out)
    started = rs.started_path(out, task.name)
    rs.write_json_atomic(started, {"pid": 12345, "host": "elsewhere", "token": "other"})
    task.cell_dir.mkdir(parents=True)
    theirs = {
        "name": task.name,
        "params": task.params,
        "status": "ok",
        "dir": task.cell_dir.name,
        "by": "other",
    }
    threading.Timer(1.5, lambda: rs.write_json_atomic(rs.done_path(out, task.name), theirs)).start()
    assert execute(task) == theirs  # waited, ran nothing
    assert sorted(p.name for p in task.cell_dir.iterdir()) == []
    # the same marker, untouched for longer than STALE_S: its attempt is dead, the cell runs here
    rs.done_path(out, task.name).unlink()
    old = time.time() - cell.STALE_S - 1
    os.utime(started, (old, old))
    rec = execute(task)
    assert rec["status"] == "ok" and json.loads(started.read_text())["pid"] == os.getpid()


def test_results_jsonl_keeps_the_last_record_of_a_cell_and_drops_a_torn_line(tmp_path: Path) -> None:
    rs.layout(tmp_path)
    rs.append_result(tmp_path, {"name": "a", "status": "failed"})
    rs.append_result(tmp_path, {"name": "b", "status": "ok"})
    rs.append_result(tmp_path, {"name": "a", "status": "ok"})
    with open(tmp_path / rs.RESULTS, "ab") as f:
        f.write(b'{"name": "c", "sta')
    assert rs.read_results(tmp_path) == [{"name": "b", "status": "ok"}, {"name": "a", "status": "ok"}]


@pytest.mark.parametrize("junk", [b"", b"{", b'{"name": "other"}', b"[1]"])
def test_an_unreadable_done_marker_is_not_complete(tmp_path: Path, junk: bytes) -> None:
    rs.layout(tmp_path)
    rs.done_path(tmp_path, "a").write_bytes(junk)
    assert rs.read_done(tmp_path, ["a"]) == {}


def test_folders_a_sweep_refuses(tmp_path: Path) -> None:
    from fp8ref.outputs import UsageError
    from fp8ref.sweep.runner import run

    s = Sweep(kind="train", grid={"seed": [0]}, fixed={"recipe": "fp32", **TINY})
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="exists and is not empty; give a new folder"):
        run(s, busy)
    with pytest.raises(UsageError, match="not a sweep folder"):
        run(s, busy, resume=True)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    with pytest.raises(UsageError, match="is a file"):
        run(s, busy / "notes.txt" / "x")
    # resuming a folder with another spec than its own
    out = tmp_path / "out"
    rs.layout(out)
    (out / rs.SPEC).write_text(s.to_toml())
    other = Sweep(kind="train", grid={"seed": [0, 1]}, fixed={"recipe": "fp32", **TINY})
    with pytest.raises(UsageError, match="holds another sweep than the one given"):
        run(other, out, resume=True)
