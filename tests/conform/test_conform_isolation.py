"""A backend that exits, hangs, crashes or raises cannot fake a pass or stop the report: its calls run in a
worker process with a time limit per case, and each of these ends the case it happened in with the
reason; the following cases run in a new worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fp8ref import backends
from fp8ref.backends import BackendUnavailable
from fp8ref.conform import run
from fp8ref.conform.harness import executor_for

from . import misbehaving as mb
from .small_set import copy_cases

QUANTIZE = "casts/E4M3/quantize-f32-nearest_even-sat"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cases(tmp_path_factory.mktemp("isolation") / "set")


def _by_id(rep):
    return {c.id: c for c in rep.cases}


def _only_quantize_broken(rep, reason: str) -> None:
    by_id = _by_id(rep)
    assert by_id[QUANTIZE].status == "error" and by_id[QUANTIZE].reason == reason
    assert by_id["casts/E4M3/dequantize-f32"].status == "exact"  # the next case ran, in a new worker
    assert by_id["scaling/amax-f32-axis0"].status == "exact"
    assert not rep.passed


@pytest.mark.parametrize("backend, reason", [
    (mb.Exits(), "backend process exited with status 0 during op quantize"),
    (mb.HardExits(), "backend process exited with status 0 during op quantize"),
    (mb.Segfaults(), "backend process killed by signal 11 (SIGSEGV) during op quantize"),
    (mb.Raises(), "ZeroDivisionError: kernel bug (during op quantize)"),
])
def test_exit_crash_and_exception_end_only_their_case(small: Path, backend, reason: str) -> None:
    _only_quantize_broken(run(backend, small), reason)


def test_a_hang_times_out(small: Path) -> None:
    """(The limit leaves the other cases time for their first calls in a fresh process: Numba's start.)"""
    _only_quantize_broken(run(mb.Hangs(), small, timeout=8), "timed out after 8 s during op quantize")


def test_the_worker_restarts_after_a_crash(small: Path) -> None:
    """The first dequantize of every worker exits: the dequantize case fails, the cases after it run."""
    rep = run(mb.DequantizeExitsOnce(), small)
    by_id = _by_id(rep)
    died = by_id["casts/E4M3/dequantize-f32"]
    assert died.reason == "backend process exited with status 3 during op dequantize"
    assert by_id[QUANTIZE].status == "exact" and by_id["scaling/amax-f32-axis0"].status == "exact"


def test_contract_violations_are_found_in_the_worker_too(small: Path) -> None:
    c = _by_id(run(mb.Int64Plus256(), small))[QUANTIZE]
    assert c.status == "fail" and "quantize returned dtype int64" in c.reason


def test_in_process_sys_exit_is_caught(small: Path) -> None:
    rep = run(mb.Exits(), small, isolate=False)
    assert _by_id(rep)[QUANTIZE].reason == "backend called sys.exit(0) during op quantize"


def test_builtin_backends_run_in_process_others_isolated() -> None:
    ex = executor_for("reference")
    assert not ex.isolated
    ex = executor_for(mb.Casts(), timeout=30)
    try:
        assert ex.isolated and ex.name == "casts" and ex.capabilities == mb.CASTS
    finally:
        ex.close()
    assert not executor_for(mb.Casts(), isolate=False).isolated
    with pytest.raises(ValueError, match="timeout"):
        executor_for(mb.Casts(), timeout=0)


def test_a_backend_that_cannot_start_is_unavailable() -> None:
    backends.register("exits-on-import", mb.exits_on_import)
    try:
        with pytest.raises(BackendUnavailable, match="could not be started in a worker process: backend "
                                                     "process exited with status 0"):
            executor_for("exits-on-import")
    finally:
        backends.unregister("exits-on-import")


def test_cli_exit_status_and_report_survive_sys_exit(small: Path, tmp_path: Path) -> None:
    """Through the command line, in a fresh interpreter: a backend calling sys.exit(0) gives exit status 1,
    the full table on stdout and what the backend printed on stderr."""
    code = ("import sys; from fp8ref import backends; from fp8ref.cli import main; "
            "from conform import misbehaving as mb; "
            "backends.register('exits', mb.Exits); backends.register('prints', mb.Prints); "
            "sys.exit(main(sys.argv[1:]))")
    env = {"PYTHONPATH": f"{REPO}{':'}{REPO / 'tests'}", "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-c", code, "conform", "--backend", "exits", "--golden", str(small),
                        "--timeout", "60"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 1, p.stderr
    assert "backend process exited with status 0 during op quantize" in p.stdout
    assert "result: FAIL" in p.stdout
    p = subprocess.run([sys.executable, "-c", code, "conform", "--backend", "prints", "--golden", str(small)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0 and "result: PASS" in p.stdout, p.stdout + p.stderr
    assert "hello from the backend" not in p.stdout and "hello from the backend" in p.stderr


def test_ctrl_c_stops_the_run_and_its_worker(small: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the worker hangs: the command
    says 'interrupted', exits 130 at once, and leaves no worker behind."""
    import os
    import signal
    import time

    code = ("import sys; from fp8ref import backends; from fp8ref.cli import main; "
            "from conform import misbehaving as mb; backends.register('hangs', mb.Hangs); "
            "sys.exit(main(sys.argv[1:]))")
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin"}
    p = subprocess.Popen([sys.executable, "-c", code, "conform", "--backend", "hangs", "--golden", str(small),
                          "--timeout", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env, start_new_session=True)
    def alive() -> list[str]:
        """The live processes of the run's process group (zombies are reaped by init, not by the run)."""
        ps = subprocess.run(["ps", "-o", "stat=,args=", "-g", str(p.pid)], capture_output=True, text=True)
        return [ln for ln in ps.stdout.splitlines() if ln.strip() and not ln.lstrip().startswith("Z")]

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("spawn_main" in ln for ln in alive()):
        time.sleep(0.5)
    time.sleep(8)  # the worker has started and is in the hanging quantize (the small set's second case)
    t = time.monotonic()
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in err
    assert time.monotonic() - t < 30
    time.sleep(1)
    assert alive() == []  # no worker (nor anything else of the run) is left
