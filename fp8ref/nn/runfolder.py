"""Run folders: where a training run keeps everything, created whole or not at all, and read as hostile input.

A run folder holds::

    config.json        the TrainConfig (everything that determines the run)
    metrics.jsonl      one JSON object per step: step, loss, lr, grad_norm, scale_bias {layer: {w, x, g}},
                       val_loss every eval_every steps and at the end, loss_scale / skipped with loss scaling
                       -- deterministic content only: same config -> byte-identical file
    timing.jsonl       one object per step: step, wall_s, tokens_per_s (machine-dependent)
    checkpoints/       step_NNNNNNN.npz every checkpoint_every steps and at the end (see checkpoint.py)
    summary.json       final losses, best achievable loss, status
    *.png              plots, when matplotlib is installed

A comparison folder holds one run folder per recipe and ``runs.json`` (their order), later
``comparison.json`` and ``loss_curves.png``.

:class:`RunFolder` owns these files: :meth:`RunFolder.create` (refuses a folder that already holds a run --
the one place that rule lives -- and removes what it made when it fails), :meth:`RunFolder.open`, the
metrics and timing logs (append, cut back on resume, read strictly), checkpoints (atomic writes; on resume
the temporary files of a killed write are removed) and the summary. :func:`create_comparison` makes a
comparison folder with all its run folders, or nothing. Every file is read as hostile: a damaged one raises
:class:`RunFileError` naming the file, and the line or field.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from fp8ref.nn import checkpoint as ckpt
from fp8ref.nn.atomic import atomic_write, remove_stale_temporaries
from fp8ref.nn.config import TrainConfig
from fp8ref.outputs import UsageError

CONFIG, METRICS, TIMING, SUMMARY, CHECKPOINTS = (
    "config.json",
    "metrics.jsonl",
    "timing.jsonl",
    "summary.json",
    "checkpoints",
)
RUNS, COMPARISON = "runs.json", "comparison.json"
# files whose presence means "this folder already holds a run (or a comparison)"
RUN_MARKERS = (CONFIG, METRICS, RUNS)
# files fp8ref writes atomically in run and comparison folders (their NAME.tmp-<pid> are its own)
_ATOMIC = frozenset({CONFIG, METRICS, TIMING, SUMMARY, RUNS, COMPARISON})


class RunExists(UsageError, FileExistsError):
    """The folder already holds a run: the message says how to continue it."""


class RunFileError(UsageError):
    """A file of a run folder that fp8ref cannot use (not UTF-8, not JSON, a field of the wrong type...)."""


def holds_run(path: Path) -> bool:
    """Whether ``path`` holds a run or a comparison (one of :data:`RUN_MARKERS`)."""
    return any((path / name).exists() for name in RUN_MARKERS)


def refuse_existing(path: Path, resume: Path | None = None) -> None:
    """:class:`RunExists` when ``path`` holds a run; the message names ``--resume`` of ``resume`` (default
    ``path``)."""
    if holds_run(path):
        raise RunExists(f"{path} already holds a run; use --resume {resume or path} or another --out")


def read_config(path: str | os.PathLike[str]) -> TrainConfig:
    """The :class:`TrainConfig` of the run folder ``path`` (its config.json), or :class:`RunFileError`
    naming the file and what is wrong with it."""
    saved = Path(path) / CONFIG
    if not saved.is_file():
        raise RunFileError(f"{path} holds no {CONFIG} (not a run folder)")
    try:
        doc = json.loads(saved.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RunFileError(f"{saved} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{saved} is not valid JSON ({exc})") from None
    try:
        return TrainConfig.from_dict(doc)
    except (TypeError, ValueError) as exc:
        raise RunFileError(f"{saved}: {exc}") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL log fp8ref wrote: every line a JSON object with an integer ``step``.

    A last line without its newline -- a writer killed in the middle of it -- is dropped, and so are empty
    lines; any other line that is not such an object raises :class:`RunFileError` naming the file and the
    line.
    """
    return [rec for _, rec in _jsonl_lines(path)]


def _jsonl_lines(path: Path) -> list[tuple[bytes, dict[str, Any]]]:
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    out = []
    for i, line in enumerate(lines[:-1], start=1):  # lines[-1] follows the last newline: torn or empty
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise RunFileError(f"{path} line {i} is not UTF-8 text (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise RunFileError(f"{path} line {i} is not valid JSON ({exc})") from None
        if not isinstance(rec, dict) or type(rec.get("step")) is not int:
            raise RunFileError(
                f"{path} line {i} is not the record of a step (an object with an integer 'step')"
            )
        out.append((line, rec))
    return out


def _number(rec: dict[str, Any], key: str, path: Path, line: int) -> float:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RunFileError(f"{path} line {line}: '{key}' is not a finite number ({v!r})")
    return float(v)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


class Logs:
    """The open metrics and timing logs of a run (append mode, one flushed line per record)."""

    def __init__(self, metrics: IO[bytes], timing: IO[bytes]) -> None:
        self._metrics, self._timing = metrics, timing

    def metrics(self, rec: dict[str, Any]) -> None:
        self._metrics.write((_dumps(rec) + "\n").encode())
        self._metrics.flush()

    def timing(self, rec: dict[str, Any]) -> None:
        self._timing.write((_dumps(rec) + "\n").encode())
        self._timing.flush()


def _member(name: str) -> property:
    """The read-only attribute ``folder.path / name`` of a :class:`RunFolder`."""
    return property(lambda self: self.path / name, doc=f"``path / {name!r}``")


class RunFolder:
    """The files of one run (see the module docstring). ``RunFolder(path)`` only names the folder;
    :meth:`create` and :meth:`open` check it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    config_path = _member(CONFIG)
    metrics_path = _member(METRICS)
    timing_path = _member(TIMING)
    summary_path = _member(SUMMARY)
    checkpoints = _member(CHECKPOINTS)

    # ---- create / open ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], cfg: TrainConfig, resume: Path | None = None) -> RunFolder:
        """Make the folder (and its missing parents) and write ``config.json``; refuse a folder that holds a
        run (:class:`RunExists`, naming ``--resume`` of ``resume``). On failure nothing it made is left."""
        folder = cls(path)
        refuse_existing(folder.path, resume)
        with _undo_on_failure() as made:
            made.extend(_make_dirs(folder.path))
            made.append(folder.config_path)
            atomic_write(folder.config_path, cfg.to_json().encode())
        return folder

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunFolder:
        """An existing run folder (one holding ``config.json``)."""
        folder = cls(path)
        if not folder.config_path.is_file():
            raise RunFileError(f"{folder.path} holds no {CONFIG} (not a run folder)")
        return folder

    def read_config(self) -> TrainConfig:
        return read_config(self.path)

    # ---- logs -------------------------------------------------------------------------------------------
    def start_logs(self) -> None:
        """Empty metrics and timing logs (a new run)."""
        atomic_write(self.metrics_path, b"")
        atomic_write(self.timing_path, b"")

    def cut_logs(self, before_step: int) -> None:
        """Keep the records of steps below ``before_step`` (byte for byte): a resumed run rewrites the rest.
        The metrics log must then hold exactly the steps ``0 .. before_step - 1``."""
        for path in (self.metrics_path, self.timing_path):
            keep = self._kept_lines(path, before_step)
            atomic_write(path, b"".join(line + b"\n" for line in keep))

    def _kept_lines(self, path: Path, before_step: int) -> list[bytes]:
        """The lines of a log whose step is below ``before_step``; for the metrics log they must be the
        steps ``0 .. before_step - 1`` in order (:class:`RunFileError` otherwise)."""
        keep = [(line, r["step"]) for line, r in _jsonl_lines(path) if r["step"] < before_step]
        if path == self.metrics_path and [step for _, step in keep] != list(range(before_step)):
            raise RunFileError(
                f"{path} does not hold the records of steps 0 .. {before_step - 1} in order (it holds "
                f"{len(keep)} records below step {before_step}), so it does not belong to the checkpoint "
                f"of step {before_step}"
            )
        return [line for line, _ in keep]

    @contextlib.contextmanager
    def logs(self) -> Iterator[Logs]:
        with open(self.metrics_path, "ab") as mf, open(self.timing_path, "ab") as tf:
            yield Logs(mf, tf)

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def tokens_per_second(self, skip: int) -> float | None:
        """Tokens over wall time of the timed steps after the first ``skip`` (``timing.jsonl``)."""
        recs = read_jsonl(self.timing_path)
        first = skip if len(recs) > skip else 0
        wall = tokens = 0.0
        for i, r in enumerate(recs[first:], start=first + 1):
            w = _number(r, "wall_s", self.timing_path, i)
            wall += w
            tokens += w * _number(r, "tokens_per_s", self.timing_path, i)
        return tokens / wall if wall > 0 else None

    # ---- checkpoints ------------------------------------------------------------------------------------
    def latest_checkpoint(self) -> Path | None:
        return ckpt.latest(self.checkpoints)

    def save_checkpoint(self, step: int, arrays: dict[str, Any], meta: dict[str, Any]) -> Path:
        return ckpt.save(ckpt.checkpoint_path(self.checkpoints, step), arrays, meta)

    def remove_stale_temporaries(self) -> list[Path]:
        """Remove the temporary files of writes that were killed midway: ``step_NNNNNNN.npz.tmp-<pid>`` in
        ``checkpoints/`` and ``<log or json>.tmp-<pid>`` here, whose process no longer runs. Nothing else."""
        removed = remove_stale_temporaries(self.checkpoints, ckpt.is_checkpoint_name)
        return removed + remove_stale_temporaries(self.path, _ATOMIC.__contains__)

    def check_resume(self, cfg: TrainConfig) -> int:
        """Check, changing nothing, that this folder can be resumed with ``cfg`` (its config): the latest
        checkpoint loads and belongs to it, and the metrics and timing logs read cleanly and hold the steps
        before it. Returns the step the run continues from (0 without a checkpoint). Raises
        ``CheckpointError`` or :class:`RunFileError` naming the file."""
        last = self.latest_checkpoint()
        start = 0
        if last is not None:
            _, meta = ckpt.load(last)
            start = ckpt.check_meta(last, meta, cfg.sha256(), self.config_path)
        self._kept_lines(self.metrics_path, start)
        self.tokens_per_second(0)  # every timing line
        return start

    # ---- summary ----------------------------------------------------------------------------------------
    def write_summary(self, doc: dict[str, Any], sort_keys: bool = True) -> None:
        atomic_write(self.summary_path, (json.dumps(doc, indent=2, sort_keys=sort_keys) + "\n").encode())


def create_comparison(
    folder: str | os.PathLike[str], runs: Sequence[tuple[str, TrainConfig]]
) -> list[tuple[RunFolder, TrainConfig]]:
    """Make the comparison folder ``folder`` with one run folder per ``(name, config)`` and ``runs.json``,
    all or nothing: it refuses (:class:`RunExists`) when the folder or a run folder in it holds a run, and
    on a failure midway removes what it made."""
    folder = Path(folder)
    refuse_existing(folder)
    for name, _ in runs:
        refuse_existing(folder / name, folder)
    out = []
    with _undo_on_failure() as made:
        made.extend(_make_dirs(folder))
        for name, cfg in runs:
            sub = folder / name
            made.extend(_make_dirs(sub))
            made.append(sub / CONFIG)
            atomic_write(sub / CONFIG, cfg.to_json().encode())
            out.append((RunFolder(sub), cfg))
        made.append(folder / RUNS)
        atomic_write(
            folder / RUNS, (json.dumps({"runs": [name for name, _ in runs]}, indent=2) + "\n").encode()
        )
    return out


def find_runs(folder: Path) -> list[Path]:
    """Run folders of a comparison folder (sub-folders holding config.json), in the order of ``runs.json``
    when present, else by name."""
    order_file = folder / RUNS
    if order_file.is_file():
        try:
            names = json.loads(order_file.read_bytes().decode("utf-8"))["runs"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RunFileError(
                f"{order_file} is not a list of run folders ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(names, list) or not all(
            isinstance(n, str) and Path(n).name == n and n not in ("", ".", "..") for n in names
        ):
            raise RunFileError(f"{order_file}: 'runs' must be a list of folder names, got {names!r}")
        return [folder / n for n in names if (folder / n / CONFIG).is_file()]
    return sorted(p for p in folder.iterdir() if (p / CONFIG).is_file())


def _make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; returns the folders it created, outermost first."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
    return list(reversed(missing))


@contextlib.contextmanager
def _undo_on_failure() -> Iterator[list[Path]]:
    """Collects the paths a block creates (folders before their contents); if the block fails, removes
    them (files, then the folders if empty) and re-raises."""
    made: list[Path] = []
    try:
        yield made
    except BaseException:
        for p in reversed(made):
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()  # only if empty: never anything this block did not make
                elif p.exists():
                    p.unlink()
        raise
