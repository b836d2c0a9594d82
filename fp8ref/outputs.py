"""Where fp8ref writes: destination checks made before any work, and the one-line error a command prints.

Every command that writes files (``train``, ``infer --out``, ``golden generate``, ``conform --report``)
checks its destination first with :func:`check_output_dir` or :func:`check_output_file`, so that a
read-only folder, a path that names an existing file, or a missing parent is reported before anything is
computed or created. A failure raises :class:`OutputError`, which ``fp8ref.cli.main`` prints as one line
(``fp8ref COMMAND: PATH: problem``) with exit status 2. This module imports nothing of fp8ref: every
layer may use it.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from pathlib import Path


class UsageError(ValueError):
    """A problem with what the user asked for; the CLI prints it as one line and exits 2."""


class OutputError(UsageError):
    """A destination that cannot be written; the message names the path and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def describe_os_error(exc: OSError) -> str:
    """``PATH: problem`` for an ``OSError`` (the path when it has one, then the system's words)."""
    problem = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        problem = "no space left on the device"
    if exc.filename is not None:
        return f"{exc.filename}: {problem}"
    return problem


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def _probe_writable(folder: Path) -> None:
    """Create and remove a temporary file in ``folder`` (the only test that a quota or read-only mount
    cannot fool); raises :class:`OutputError` naming the folder."""
    try:
        fd, name = tempfile.mkstemp(prefix=".fp8ref-write-test-", dir=folder)
    except OSError as exc:
        raise OutputError(folder, f"cannot write there ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` is, or can be created as, a writable folder; create nothing.

    Refused with :class:`OutputError`: ``path`` names an existing file; an ancestor of it is a file; the
    nearest existing ancestor (or the folder itself) is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(p, "exists and is not a folder")
    base = _existing_ancestor(p)
    if not base.is_dir():
        raise OutputError(p, f"{base} is a file, so this folder cannot be created")
    _probe_writable(base)
    return p


def check_output_file(path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
    """Check that the file ``path`` can be written (its folder exists or can be made, and is writable).

    With ``overwrite=False`` an existing file is refused; an existing folder at ``path`` is always refused.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(p, "is a folder, expected a file name")
    if p.exists() and not overwrite:
        raise OutputError(p, "already exists")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(p, "exists and is not writable")
    check_output_dir(p.parent if str(p.parent) else Path("."))
    return p


def new_folder(root: str | os.PathLike[str], label: str) -> Path:
    """A folder name not yet taken: ``root/<YYYYmmdd-HHMMSS>-<label>``, else ``...-<label>-2``, ``-3``...
    (creates nothing)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(root) / f"{stamp}-{label}"
    n = 1
    while folder.exists():
        n += 1
        folder = Path(root) / f"{stamp}-{label}-{n}"
    return folder


__all__ = [
    "UsageError",
    "OutputError",
    "describe_os_error",
    "check_output_dir",
    "check_output_file",
    "new_folder",
]
