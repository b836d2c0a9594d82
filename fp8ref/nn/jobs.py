"""What one ``fp8ref train`` command does, checked completely before anything is made.

:func:`new_job` (a new run or comparison) and :func:`resume_job` (``--resume DIR``) check everything a run
needs -- the configurations, the data, the memory estimate, the destination, that no run is overwritten --
and return a :class:`TrainJob` without creating anything (a refusal is a ``UsageError`` whose message is the
line the command prints). :meth:`TrainJob.create` then makes the folders, all or nothing, and
:meth:`TrainJob.run_each` trains the recipes one after the other. The command line (fp8ref/nn/cli.py) only
turns arguments into these calls and prints.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fp8ref.nn import checkpoint as ckpt
from fp8ref.nn import compare as cmp
from fp8ref.nn.config import TrainConfig
from fp8ref.nn.runfolder import CONFIG, RunFolder, create_comparison, find_runs, read_config, refuse_existing
from fp8ref.nn.train import check_config
from fp8ref.outputs import UsageError, check_output_dir, new_folder


@dataclass(frozen=True)
class TrainJob:
    """The folder the command names (a run folder, or a comparison folder holding one per recipe) and the
    ``(run folder, config)`` of every recipe, in order."""

    folder: Path
    runs: tuple[tuple[Path, TrainConfig], ...]
    comparison: bool
    resume: bool

    @property
    def resume_command(self) -> str:
        """The command that continues this job."""
        return f"fp8ref train --resume {shlex.quote(str(self.folder))}"

    def notices(self) -> list[str]:
        """Resume only: one line per run folder that holds no checkpoint (it starts again from step 0)."""
        if not self.resume:
            return []
        return [
            f"{sub} holds no checkpoint yet (in {RunFolder(sub).checkpoints}): it starts again from step 0"
            for sub, _ in self.runs
            if RunFolder(sub).latest_checkpoint() is None
        ]

    def create(self) -> None:
        """Make the folders of a new job (nothing for a resumed one): all of them, or none on a failure."""
        if self.resume:
            return
        if self.comparison:
            create_comparison(self.folder, [(sub.name, cfg) for sub, cfg in self.runs])
        else:
            RunFolder.create(self.folder, self.runs[0][1])

    def run_each(self, *, ops: Any, progress: bool, threads: int, plots: bool) -> Iterator[cmp.Outcome]:
        """Train (continue) each recipe in its folder; yields each outcome as it ends (a divergence is an
        outcome with ``error``, not an exception)."""
        for sub, cfg in self.runs:
            yield cmp.run_one(cfg, sub, ops=ops, resume=True, progress=progress, threads=threads, plots=plots)

    def finish(self, outcomes: list[cmp.Outcome], plots: bool) -> list[dict[str, Any]]:
        """The table rows; a comparison also writes ``comparison.json`` and ``loss_curves.png``."""
        if self.comparison:
            return cmp.write_comparison(self.folder, outcomes, plots=plots)["runs"]
        return cmp.table_rows(outcomes)


def fresh_folder(out: str | Path | None, label: str) -> Path:
    """``out``, or a new ``runs/<YYYYmmdd-HHMMSS>-<label>`` (``-2``, ``-3``... when taken)."""
    return Path(out) if out is not None else new_folder("runs", label)


def new_job(base: TrainConfig, specs: Sequence[str], *, comparison: bool, out: str | Path | None) -> TrainJob:
    """A new run of the recipe ``specs[0]`` (``comparison=False``) or a comparison of ``specs`` into ``out``
    (default: a new folder under ``runs/``). Checks everything and creates nothing."""
    try:
        cfgs = [base.with_recipe(s) for s in specs]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not cfgs:
        raise UsageError("--compare names no recipe")
    labels = [c.label for c in cfgs]
    if len(set(labels)) != len(labels):
        raise UsageError(f"--compare lists a recipe twice: {labels}")
    for cfg in cfgs:
        check_config(cfg)
    if not comparison:
        folder = fresh_folder(out, cmp.folder_name(cfgs[0].label))
        check_output_dir(folder)
        refuse_existing(folder)
        return TrainJob(folder, ((folder, cfgs[0]),), comparison=False, resume=False)
    folder = fresh_folder(out, "compare")
    check_output_dir(folder)
    refuse_existing(folder)
    runs = tuple((folder / cmp.folder_name(c.label), c) for c in cfgs)
    for sub, _ in runs:
        check_output_dir(sub)
        refuse_existing(sub, folder)
    return TrainJob(folder, runs, comparison=True, resume=False)


def resume_job(folder: str | Path) -> TrainJob:
    """Continue the run or comparison in ``folder`` as its config.json files say. Checks everything (the
    files are read as hostile input) and changes nothing."""
    folder = Path(folder)
    if (folder / CONFIG).is_file():
        runs: tuple[tuple[Path, TrainConfig], ...] = ((folder, read_config(folder)),)
        comparison = False
    elif folder.is_dir() and find_runs(folder):
        runs = tuple((p, read_config(p)) for p in find_runs(folder))
        comparison = True
    else:
        raise UsageError(f"--resume {folder}: not a run folder or comparison folder")
    for sub, cfg in runs:
        check_config(cfg)
        try:
            RunFolder(sub).check_resume(cfg)
        except ckpt.CheckpointError as exc:
            raise UsageError(str(exc)) from None
    check_output_dir(folder)
    return TrainJob(folder, runs, comparison=comparison, resume=True)


__all__ = ["TrainJob", "new_job", "resume_job", "fresh_folder"]
