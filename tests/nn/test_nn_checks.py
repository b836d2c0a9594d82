"""Bad input to ``fp8ref train`` / ``fp8ref infer``: refused before anything is made, one line, exit 2.

Rejected configurations and destinations, memory estimates beyond the machine, Ctrl-C, full disks, and
hostile run files (non-UTF-8 logs, mistyped config fields, leftovers of killed checkpoint writes, damaged
checkpoints).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fp8ref.cli import main
from fp8ref.nn import TrainConfig, read_metrics, train
from fp8ref.nn import checkpoint as ckpt
from fp8ref.outputs import UsageError
from tests.nn.test_nn_train import MICRO, MICRO_ARGS, REPO, micro

STEPS = ["--steps", "8"]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _refused(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run ``fp8ref train ARGV``; assert exit 2 with one line on stderr and nothing on stdout; return it."""
    assert main(["train", *argv]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    (line,) = _lines(cap.err)
    assert line.startswith("fp8ref train: ")
    return line


# ---- B: a rejected configuration creates nothing ------------------------------------------------------
@pytest.mark.parametrize(
    "extra, words",
    [
        (["--recipe", "fp8-amax", "--n-head", "3"], "divisible by n_head (3)"),
        (["--recipe", "fp8-amax", "--accumulate", "bogus"], "unknown accumulation model 'bogus'"),
        (["--recipe", "fp32", "--accumulate", "bogus"], "unknown accumulation model 'bogus'"),
        (["--recipe", "nonsense"], "'nonsense' is not one of"),
        (["--recipe", "fp8-amax", "--backend", "nope"], "unknown backend 'nope'"),
        (["--compare", "fp32,fp8-amax", "--n-head", "3"], "divisible by n_head (3)"),
        (["--compare", "fp32,fp8-amax", "--accumulate", "bogus"], "unknown accumulation model"),
        (["--recipe", "fp32", "--data", "/nonexistent/corpus.txt"], "/nonexistent/corpus.txt"),
        (["--recipe", "fp32", "--seed", "-1"], "seed must be >= 0"),
        (["--recipe", "fp32", "--loss-scale", "inf"], "loss_scale"),
        (["--recipe", "fp8-current", "--accumulate", "fp16"], "power-of-two"),
    ],
)
def test_rejected_configuration_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], words: str
) -> None:
    from fp8ref.nn.cli import validate_train_argv

    out = tmp_path / "run"
    argv = [*MICRO_ARGS, *STEPS, *extra, "--out", str(out)]
    line = _refused(capsys, argv)
    assert words in line
    assert not out.exists()  # no config.json, no folder
    with pytest.raises(UsageError) as ei:
        validate_train_argv(["train", *argv])
    assert f"fp8ref train: {ei.value}" == line  # exactly the line the command prints
    assert not out.exists()


def test_validate_train_argv_accepts_what_the_command_runs(tmp_path: Path) -> None:
    from fp8ref.nn.cli import validate_train_argv

    out = tmp_path / "run"
    argv = [*MICRO_ARGS, *STEPS, "--recipe", "fp8-amax", "--out", str(out)]
    assert validate_train_argv(argv) is None
    assert not out.exists()
    assert main(["train", *argv]) == 0
    with pytest.raises(UsageError, match="already holds a run"):
        validate_train_argv(argv)
    with pytest.raises(UsageError, match="invalid int value"):  # argparse's own refusals raise too
        validate_train_argv(["--steps", "many"])
    with pytest.raises(UsageError, match="unrecognized arguments"):
        validate_train_argv(["--no-such-option"])


def test_retry_after_a_rejected_configuration_trains(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    _refused(capsys, [*MICRO_ARGS, *STEPS, "--recipe", "fp8-amax", "--n-head", "3", "--out", str(out)])
    argv = [*MICRO_ARGS, *STEPS, "--recipe", "fp8-amax", "--out", str(out)]
    assert main(["train", *argv]) == 0  # not "already holds a run"
    assert len(read_metrics(out)) == 8


def test_resume_of_a_folder_without_checkpoint_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(micro("fp8-amax", steps=5).to_json())  # killed before step 4's save
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert f"{out} holds no checkpoint yet" in err and "starts again from step 0" in err
    ref = tmp_path / "ref"
    train(micro("fp8-amax", steps=5), ref)
    assert (out / "metrics.jsonl").read_bytes() == (ref / "metrics.jsonl").read_bytes()


def test_comparison_is_created_whole_or_not_at_all(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fp8ref.nn import runfolder

    real = runfolder.atomic_write
    calls = []

    def full_disk(path, data):  # noqa: ANN001, ANN202 - the third file of the comparison does not fit
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(runfolder, "atomic_write", full_disk)
    out = tmp_path / "deep" / "cmp"
    line = _refused(capsys, [*MICRO_ARGS, *STEPS, "--compare", "fp32,fp8-amax,fp8-cscale", "--out", str(out)])
    assert "no space left on the device" in line and str(out) in line
    assert not (tmp_path / "deep").exists()  # every folder it made is gone
    keep = tmp_path / "mine"  # a folder the user made is kept, with what was in it
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    calls.clear()
    _refused(capsys, [*MICRO_ARGS, *STEPS, "--compare", "fp32,fp8-amax", "--out", str(keep)])
    assert sorted(p.name for p in keep.iterdir()) == ["notes.txt"]


# ---- C: memory ----------------------------------------------------------------------------------------
def test_block_size_100000_is_refused_with_the_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    line = _refused(capsys, ["--recipe", "fp32", "--block-size", "100000", "--out", str(out)])
    assert "needs about" in line and "TiB" in line and "available" in line and "attention T x T" in line
    assert "--block-size" in line
    assert not out.exists()


def test_memory_limit_is_the_available_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fp8ref.nn import memory

    shape = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4)  # MICRO_ARGS
    est = memory.estimate(TrainConfig.from_preset("tiny", **shape).with_recipe("fp8-amax"), 16, 200_000)
    argv = [*MICRO_ARGS, *STEPS, "--recipe", "fp8-amax", "--out", str(tmp_path / "run")]
    monkeypatch.setattr(memory, "available", lambda: (est.total - 1, "test limit"))
    line = _refused(capsys, argv)
    assert f"needs about {memory.human(est.total)}" in line and "test limit" in line
    monkeypatch.setattr(memory, "available", lambda: (est.total, "test limit"))
    assert main(["train", *argv]) == 0
    avail = memory.available()
    assert avail is not None and avail[0] > 0


# ---- D: Ctrl-C ----------------------------------------------------------------------------------------
def test_ctrl_c_prints_the_command_that_continues_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fp8ref.nn.data import Dataset

    real = Dataset.batch

    def interrupt_at_step_6(self, seed, step, B, T, split="train"):  # noqa: ANN001, ANN202
        if split == "train" and step == 6:
            raise KeyboardInterrupt
        return real(self, seed, step, B, T, split)

    out = tmp_path / "a dir"  # a name the shell must quote
    argv = ["train", *MICRO_ARGS, "--steps", "12", "--recipe", "fp8-delayed", "--out", str(out)]
    monkeypatch.setattr(Dataset, "batch", interrupt_at_step_6)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and f"fp8ref train --resume {shlex.quote(str(out))}" in err
    monkeypatch.undo()
    assert main(shlex.split(err.split("continue the run with: fp8ref ")[1].split("\n")[0])) == 0
    ref = tmp_path / "ref"
    assert main([*argv[:-1], str(ref)]) == 0
    assert (out / "metrics.jsonl").read_bytes() == (ref / "metrics.jsonl").read_bytes()


def test_real_sigint_of_a_compare(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    args = ["train", *MICRO_ARGS[:-2], "--steps", "400", "--compare", "fp32,fp8-amax", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("CI", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fp8ref", *args, "--quiet", "--no-plots"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = out / "fp32" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().endswith(f"interrupted; continue the run with: fp8ref train --resume {out}")
    assert "Traceback" not in err


# ---- E: destinations ----------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["proc", "file"])
def test_train_destination_checked_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture, where: str
) -> None:
    if where == "proc":
        out = Path("/proc/fp8ref-no-such-dir/run")  # a read-only file system (tests run as root)
        if not Path("/proc/self").exists():
            pytest.skip("no /proc")
    else:
        out = tmp_path / "taken"
        out.write_text("a file")
    line = _refused(capsys, [*MICRO_ARGS, *STEPS, "--recipe", "fp32", "--out", str(out)])
    assert str(out) in line or "/proc" in line
    assert ("exists and is not a folder" in line) if where == "file" else ("cannot" in line)
    if where == "file":
        assert out.read_text() == "a file"


def test_full_disk_while_training_is_one_line_and_resumable(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fp8ref.nn import runfolder

    real = runfolder.Logs.metrics
    n = [0]

    def full(self, rec):  # noqa: ANN001, ANN202
        n[0] += 1
        if n[0] == 7:
            raise OSError(errno.ENOSPC, "No space left on device", "metrics.jsonl")
        return real(self, rec)

    out = tmp_path / "run"
    argv = ["train", *MICRO_ARGS, "--steps", "12", "--recipe", "fp8-amax", "--out", str(out)]
    monkeypatch.setattr(runfolder.Logs, "metrics", full)
    assert main(argv) == 2
    (line,) = _lines(capsys.readouterr().err)
    assert "no space left on the device" in line and f"fp8ref train --resume {out}" in line
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    ref = tmp_path / "ref"
    assert main([*argv[:-1], str(ref)]) == 0
    assert (out / "metrics.jsonl").read_bytes() == (ref / "metrics.jsonl").read_bytes()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("infer") / "run"
    train(micro("fp32", steps=8), out)
    return out


@pytest.mark.parametrize("where", ["proc", "file", "folder"])
def test_infer_destination_checked_before_any_work(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import fp8ref.nn.infer as infer

    def no_work(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("evaluate_ptq ran before the destination was checked")

    monkeypatch.setattr(infer, "evaluate_ptq", no_work)
    if where == "proc":
        out = Path("/proc/fp8ref-no-such-dir")
    elif where == "file":
        out = tmp_path / "taken"
        out.write_text("x")
    else:
        out = tmp_path / "o"
        (out / "ptq.json").mkdir(parents=True)
    assert main(["infer", str(trained), "--biases=0,4", "--out", str(out)]) == 2
    cap = capsys.readouterr()
    (line,) = _lines(cap.err)
    assert line.startswith("fp8ref infer: ") and (str(out) in line or "/proc" in line)


def test_infer_full_disk_on_write_is_one_line(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fp8ref.nn.atomic as atomic

    def full(path, data):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(atomic, "atomic_write", full)
    out = tmp_path / "o"
    assert main(["infer", str(trained), "--biases=0,4", "--out", str(out), "--no-plots"]) == 2
    (line,) = _lines(capsys.readouterr().err)
    assert line == f"fp8ref infer: {out / 'ptq.json'}: no space left on the device"


# ---- F: hostile run files -----------------------------------------------------------------------------
def _run(tmp_path: Path, steps: int = 8, **kw) -> Path:  # noqa: ANN003
    out = tmp_path / "run"
    train(micro("fp8-amax", steps=steps, **kw), out)
    return out


def test_non_utf8_metrics_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _run(tmp_path)
    lines = (out / "metrics.jsonl").read_bytes().split(b"\n")
    lines[2] = b'{"step": 2, "loss": "\xff\xfe"}'
    (out / "metrics.jsonl").write_bytes(b"\n".join(lines))
    line = _refused(capsys, ["--resume", str(out)])
    assert f"{out / 'metrics.jsonl'} line 3 is not UTF-8" in line
    lines[2] = b"[1, 2]"
    (out / "metrics.jsonl").write_bytes(b"\n".join(lines))
    assert "line 3 is not the record of a step" in _refused(capsys, ["--resume", str(out)])
    with pytest.raises(UsageError, match="line 3"):
        read_metrics(out)


def test_damaged_timing_log_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _run(tmp_path, checkpoint_every=100)  # the end checkpoint: nothing is retrained
    lines = (out / "timing.jsonl").read_bytes().split(b"\n")
    lines[4] = b'{"step": 4, "wall_s": "slow", "tokens_per_s": 1}'
    (out / "timing.jsonl").write_bytes(b"\n".join(lines))
    line = _refused(capsys, ["--resume", str(out), "--no-plots"])
    assert f"{out / 'timing.jsonl'} line 5: 'wall_s' is not a finite number" in line


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("steps", "many", "steps must be an integer, got 'many'"),
        ("lr", None, "lr must be a number, got None"),
        ("fp8_layers", "qkv", "fp8_layers must be a list of strings, got 'qkv'"),
        ("n_head", 3, "n_embd (16) must be divisible by n_head (3)"),
        ("surprise", 1, "unknown TrainConfig field(s) ['surprise']"),
    ],
)
def test_mistyped_config_field_names_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture, field: str, value: object, words: str
) -> None:
    out = _run(tmp_path)
    doc = json.loads((out / "config.json").read_text())
    doc[field] = value
    (out / "config.json").write_text(json.dumps(doc))
    line = _refused(capsys, ["--resume", str(out)])
    assert line == f"fp8ref train: {out / 'config.json'}: {words}"
    assert main(["infer", str(out), "--biases=0"]) == 2
    assert f"{out / 'config.json'}: {words}" in capsys.readouterr().err


def test_config_that_is_not_json_or_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _run(tmp_path)
    for blob, words in ((b"\xff{", "is not UTF-8 text"), (b"{", "is not valid JSON"), (b"[]", "JSON object")):
        (out / "config.json").write_bytes(blob)
        line = _refused(capsys, ["--resume", str(out)])
        assert str(out / "config.json") in line and words in line


def test_damaged_runs_json_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cmp"
    assert main(["train", *MICRO_ARGS, "--steps", "4", "--compare", "fp32,fp8-amax", "--out", str(out)]) == 0
    capsys.readouterr()
    for blob in (b"\xff", b'{"runs": ["../../etc"]}', b'{"runs": 3}'):
        (out / "runs.json").write_bytes(blob)
        line = _refused(capsys, ["--resume", str(out)])
        assert str(out / "runs.json") in line or "not a run folder" in line


def _killed_checkpoint_write(out: Path, steps: int, kill_at_save: int) -> int:
    """Train in a subprocess whose ``kill_at_save``-th checkpoint write is killed (SIGKILL) midway;
    returns the dead process's pid."""
    code = f"""
import os, signal, numpy as np
from fp8ref.nn import TrainConfig, train
real, n = np.savez, [0]
def savez(f, **arrays):
    n[0] += 1
    if n[0] == {kill_at_save}:
        f.write(b"PK\\x03\\x04half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(f, **arrays)
np.savez = savez
cfg = TrainConfig.from_preset("tiny", **{MICRO!r}).with_recipe("fp8-amax")
from dataclasses import replace
train(replace(cfg, steps={steps}), {str(out)!r})
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return int(next((out / "checkpoints").glob("*.tmp-*")).name.rsplit("-", 1)[1])


def test_resume_removes_only_its_own_leftover_temporaries(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    pid = _killed_checkpoint_write(out, steps=12, kill_at_save=2)  # killed while writing step 8
    ck = out / "checkpoints"
    leftover = ck / f"step_0000008.npz.tmp-{pid}"
    assert leftover.exists() and [s for s, _ in ckpt.list_checkpoints(ck)] == [4]
    foreign = [ck / f"notes.txt.tmp-{pid}", ck / "step_0000008.npz.tmp-abc", out / f"data.bin.tmp-{pid}"]
    live = ck / f"step_0000008.npz.tmp-{os.getppid()}"  # a process that runs: its write may be under way
    for p in [*foreign, live]:
        p.write_bytes(b"not fp8ref's to delete")
    (out / f"metrics.jsonl.tmp-{pid}").write_bytes(b"{}")  # an interrupted log rewrite of fp8ref's
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert not leftover.exists() and not (out / f"metrics.jsonl.tmp-{pid}").exists()
    assert all(p.read_bytes() == b"not fp8ref's to delete" for p in [*foreign, live])
    ref = tmp_path / "ref"
    train(micro("fp8-amax", steps=12), ref)
    assert (out / "metrics.jsonl").read_bytes() == (ref / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize("n_checkpoints", [1, 2])
def test_damaged_checkpoint_hint_names_what_deleting_it_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture, n_checkpoints: int
) -> None:
    out = _run(tmp_path, checkpoint_every=4 if n_checkpoints == 2 else 100)
    last = ckpt.latest(out / "checkpoints")
    last.write_bytes(last.read_bytes()[:100])
    line = _refused(capsys, ["--resume", str(out)])
    assert "truncated or corrupt" in line and last.name in line
    if n_checkpoints == 2:
        assert "delete it to resume from the previous checkpoint, step_0000004.npz" in line
    else:
        assert "previous checkpoint" not in line
        assert (
            "there is no earlier checkpoint: delete it and --resume starts the run again from step 0" in line
        )
        last.unlink()
        assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0


def test_checkpoint_of_another_layout_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _run(tmp_path)
    last = ckpt.latest(out / "checkpoints")
    arrays, meta = ckpt.load(last)
    del meta["adam_t"], meta["sha256"], meta["version"]
    ckpt.save(last, arrays, meta)
    line = _refused(capsys, ["--resume", str(out)])
    assert str(last) in line and "metadata of another layout" in line
    meta["adam_t"] = 8
    del arrays["m.wte"]
    ckpt.save(last, arrays, meta)
    assert main(["train", "--resume", str(out)]) == 2  # found when the model is built
    assert _lines(capsys.readouterr().err) == [
        f"fp8ref train: checkpoint {last}: array m.wte is missing or of another shape"
    ]


def test_metrics_that_do_not_match_the_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _run(tmp_path)
    lines = (out / "metrics.jsonl").read_bytes().split(b"\n")
    (out / "metrics.jsonl").write_bytes(b"\n".join(lines[:3] + lines[4:]))  # step 3 lost
    line = _refused(capsys, ["--resume", str(out)])
    assert str(out / "metrics.jsonl") in line and "steps 0 .. 7" in line


def test_backend_errors_are_caught_by_class(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    backends = pytest.importorskip("fp8ref.backends")
    import fp8ref.nn.cli as cli
    from fp8ref.nn.fp8 import ReferenceOps

    class Refusing(ReferenceOps):
        def scaled_mm(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
            raise backends.Unsupported("no GEMM of this shape", backend="fake", op="scaled_mm")

    class Unsupported(Exception):  # the same name, another class: not a backend refusal
        pass

    class LookAlike(ReferenceOps):
        def scaled_mm(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
            raise Unsupported("a bug, not a refusal")

    argv = ["train", *MICRO_ARGS, *STEPS, "--recipe", "fp8-amax"]
    monkeypatch.setattr(cli, "_ops", lambda name: Refusing())
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2
    assert _lines(capsys.readouterr().err) == ["fp8ref train: fake.scaled_mm: no GEMM of this shape"]
    monkeypatch.setattr(cli, "_ops", lambda name: LookAlike())
    with pytest.raises(Unsupported, match="a bug"):
        main([*argv, "--out", str(tmp_path / "b")])


def test_train_api_checks_before_creating(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="fewer than block_size"):
        train(micro("fp32", block_size=3000, corpus_bytes=20_000), tmp_path / "r")
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig.from_preset("tiny", n_head=3)
    assert np.isfinite(micro("fp32").lr)
