"""Atomic file writes in run folders, and the temporary-file names they use (one rule, written once).

A file ``NAME`` is written as ``NAME.tmp-<pid>`` in the same folder (``<pid>`` the writing process), flushed,
fsynced and ``os.replace``-d onto ``NAME``; a reader sees the old file or the complete new one. A write that
fails removes its temporary file; a writer *killed* midway (SIGKILL, power loss) leaves it behind.
:func:`remove_stale_temporaries` removes such leftovers, and only them: a regular file whose name is
``<one of the given names>.tmp-<pid>`` and whose process no longer runs. Nothing else is ever removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

_TMP = re.compile(r"^(?P<name>.+)\.tmp-(?P<pid>[1-9]\d{0,9})$")


def temporary_path(path: Path) -> Path:
    """The temporary file this process writes before it replaces ``path``."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None] | bytes) -> Path:
    """Write ``path`` atomically: ``write(f)`` (or the given bytes) into :func:`temporary_path`, flush,
    fsync, ``os.replace``. On any failure the temporary file is removed and the old ``path`` is untouched."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            if isinstance(write, bytes):
                f.write(write)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (or a pid no process can have)
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def matching_files(
    folder: str | os.PathLike[str], pattern: re.Pattern[str]
) -> Iterator[tuple[re.Match[str], Path]]:
    """``(match, path)`` of every entry of ``folder`` whose name ``pattern`` matches (none when ``folder`` is
    not a folder), in directory order."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        m = pattern.match(p.name)
        if m is not None:
            yield m, p


def stale_temporaries(folder: str | os.PathLike[str], name: Callable[[str], bool]) -> list[Path]:
    """The leftover temporary files in ``folder``: regular files (not links) named ``NAME.tmp-<pid>`` with
    ``name(NAME)`` true and no running process ``<pid>``, sorted by name."""
    out = []
    for m, p in matching_files(folder, _TMP):
        if not name(m.group("name")) or p.is_symlink() or not p.is_file():
            continue
        if not _running(int(m.group("pid"))):
            out.append(p)
    return sorted(out)


def remove_stale_temporaries(folder: str | os.PathLike[str], name: Callable[[str], bool]) -> list[Path]:
    """Remove :func:`stale_temporaries` of ``folder``; returns the removed paths."""
    removed = []
    for p in stale_temporaries(folder, name):
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        removed.append(p)
    return removed
