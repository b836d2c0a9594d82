"""Sweeps on a real ``distributed.LocalCluster`` of two worker processes: the same bytes as the single
commands, a worker killed mid-cell, a client killed mid-sweep and resumed, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from fp8ref.cli import main  # noqa: E402
from fp8ref.sweep import (  # noqa: E402
    Sweep,
    resume,
    runner,  # noqa: E402
)
from fp8ref.sweep import results as rs  # noqa: E402

from .helpers import TINY, files, serial_twin  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SMALL = {k: v for k, v in TINY.items() if k not in ("steps", "no_plots")}


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc,
        Client(lc) as client,
    ):
        yield lc, client


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def _wait(cond, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_a_sweep_equals_the_single_commands_byte_for_byte(tmp_path: Path, cluster, capsys) -> None:
    lc, _ = cluster
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'kind = "train"\n[fixed]\nsteps = 4\nbatch-size = 8\nblock_size = 16\n'
        '[[grid]]\nrecipe = ["fp8-cscale"]\nbias = [0, 8]\nno_plots = [true]\n'
        '[[grid]]\nrecipe = ["fp8-amax"]\nformats = ["fnuz"]\n'  # this one writes its plots too
        '[[grid]]\nrecipe = ["fp8-cscale"]\nlr = [1e30]\nno_plots = [true]\n'  # diverges at step 1
    )
    out = tmp_path / "out"
    rc = main(["sweep", str(spec), "--out", str(out), "--scheduler", lc.scheduler_address, "--quiet"])
    assert rc == 1  # one cell failed
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    names = [c.name for c in Sweep.from_toml(out / "spec.toml").cells]
    assert [r["name"] for r in records] == names and len(names) == 4
    for r in records:
        assert r["dir"] == f"cells/{r['name']}" and r["worker"].startswith("tcp://") and r["wall_s"] > 0
        assert files(out / r["dir"]) == files(serial_twin(r, tmp_path / "alone" / r["name"])), r["name"]
    failed = [r for r in records if r["status"] != "ok"]
    assert [r["name"] for r in failed] == ["lr=1e+30__no_plots=true__recipe=fp8-cscale"]
    assert failed[0]["error"].startswith("fp8ref train: training diverged at step 1")
    assert (out / records[2]["dir"] / "loss.png").is_file()
    capsys.readouterr()
    # the same spec again is refused; resuming runs nothing and changes nothing
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1"]) == 2
    assert "already holds a sweep; continue it with fp8ref sweep --resume" in capsys.readouterr().err
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / ".sweep" / "done").iterdir()}
    assert main(["sweep", "--resume", str(out), "--scheduler", lc.scheduler_address, "--quiet"]) == 1
    assert "4 cells (train), 4 complete (1 failed), 0 to run" in capsys.readouterr().out
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / ".sweep" / "done").iterdir()}
    assert after == before


def test_a_worker_killed_mid_cell_is_survived(tmp_path: Path, cluster) -> None:
    _, client = cluster
    s = Sweep(
        kind="train",
        grid={"seed": [0, 1, 2]},
        fixed={"recipe": "fp8-cscale", "steps": 150, **SMALL, "no_plots": True},
    )
    out = tmp_path / "out"
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(r=s.run(out, client, progress=False)))
    t.start()
    first = s.cells[0].name
    metrics = out / s.cells[0].dir / "metrics.jsonl"
    _wait(lambda: rs.started_path(out, first).is_file() and _lines(metrics) >= 5)
    pid = json.loads(rs.started_path(out, first).read_text())["pid"]
    assert not rs.done_path(out, first).exists() and _lines(metrics) < 150  # mid-cell
    os.kill(pid, signal.SIGKILL)
    t.join(timeout=300)
    assert not t.is_alive()
    records = box["r"]
    assert [r["status"] for r in records] == ["ok", "ok", "ok"]
    assert json.loads(rs.started_path(out, first).read_text())["pid"] != pid  # ran again, elsewhere
    assert files(out / records[0]["dir"]) == files(serial_twin(records[0], tmp_path / "alone"))
    client.wait_for_workers(2, timeout=60)


def test_a_killed_client_leaves_complete_cells_and_resume_runs_only_the_rest(tmp_path: Path, cluster) -> None:
    _, client = cluster
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'kind = "train"\n[grid]\nseed = [0, 1, 2]\n[fixed]\nrecipe = "fp8-cscale"\nsteps = 100\n'
        "batch_size = 8\nblock_size = 16\nno_plots = true\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fp8ref", "sweep", str(spec), "--out", str(out), "--workers", "1", "--quiet"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: (out / ".sweep" / "done").is_dir() and any((out / ".sweep" / "done").iterdir()), 240)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client, its cluster and its worker: one process group
        proc.wait(timeout=60)
    names = [c.name for c in Sweep.from_toml(spec).cells]
    done = {n for n in names if rs.done_path(out, n).is_file()}
    assert 1 <= len(done) < 3
    kept = {
        n: (rs.done_path(out, n).stat().st_mtime_ns, (out / "cells" / n / "metrics.jsonl").read_bytes())
        for n in done
    }
    records = resume(out, client, progress=False)
    assert [r["name"] for r in records] == names and all(r["status"] == "ok" for r in records)
    for n in done:  # completed cells were not run again
        assert (
            rs.done_path(out, n).stat().st_mtime_ns,
            (out / "cells" / n / "metrics.jsonl").read_bytes(),
        ) == kept[n]
    for r in records:
        if r["name"] not in done:
            assert files(out / r["dir"]) == files(serial_twin(r, tmp_path / "alone" / r["name"]))
    assert [json.loads(x)["name"] for x in (out / "results.jsonl").read_text().splitlines()] == names


def test_ctrl_c_keeps_what_completed(tmp_path: Path, cluster, monkeypatch) -> None:
    _, client = cluster
    s = Sweep(kind="train", grid={"bias": [0, 2, 4, 6]}, fixed={"recipe": "fp8-cscale", **TINY})
    calls = []
    done = runner._Bar.done

    def interrupt(self, record):
        done(self, record)
        calls.append(record["name"])
        raise KeyboardInterrupt

    monkeypatch.setattr(runner._Bar, "done", interrupt)
    with pytest.raises(KeyboardInterrupt):
        s.run(tmp_path / "out", client, progress=False)
    monkeypatch.undo()
    listed = [json.loads(x)["name"] for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert calls[0] in listed and listed == [c.name for c in s.cells if c.name in listed]  # spec order
    # a cancelled cell that was already running on this (external) cluster may still complete
    assert set(listed) <= set(rs.read_done(tmp_path / "out", [c.name for c in s.cells]))
    records = s.run(tmp_path / "out", client, progress=False, resume=True)
    assert [r["status"] for r in records] == ["ok"] * 4
