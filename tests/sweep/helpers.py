"""Shared helpers of the sweep tests: a tiny train configuration and byte-for-byte folder comparison."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

# a train cell that runs in about a second: 4 steps of the tiny model on 8 x 16 tokens
TINY = {"steps": 4, "batch_size": 8, "block_size": 16, "no_plots": True}

# the one file of a run folder that is not deterministic: per-step wall times (docs/trainer.md section 5)
MACHINE_DEPENDENT = {"timing.jsonl"}


def single_command(argv: list[str]) -> int:
    """``fp8ref ARGV`` in this process, its output discarded (the console script's function)."""
    from fp8ref.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(list(argv))


def files(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path -> bytes), without the machine-dependent ones."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in MACHINE_DEPENDENT
    }


def serial_twin(record: dict[str, Any], dest: Path) -> Path:
    """Run a train cell's recorded command alone, in this process, with ``--out dest``; returns ``dest``."""
    argv = [f"--out={dest}" if a.startswith("--out=") else a for a in record["command"].split()[1:]]
    assert single_command(argv) == record["rc"]
    return dest
