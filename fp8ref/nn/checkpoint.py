"""Checkpoints: one ``.npz`` file per save, written atomically, never pickled.

Layout of ``checkpoints/step_NNNNNNN.npz`` (``N`` = number of completed optimizer steps):

* ``param.<name>`` – float32 master weights; ``m.<name>`` / ``v.<name>`` – AdamW moments;
* ``state.<key>`` – recipe state (e.g. the delayed-scaling amax histories);
* ``__meta__`` – UTF-8 JSON as a uint8 array: format ``version``, ``step``, ``adam_t``, ``loss_scale``,
  ``good_steps`` and ``sha256``, the digest of every other array (name, dtype, shape, bytes) in name order.

Saving writes ``<name>.tmp-<pid>`` in the same folder, flushes and fsyncs it, then ``os.replace``-s it onto
the final name, so a reader sees either the old file or the complete new one (:mod:`fp8ref.nn.atomic`); a
write killed midway leaves the temporary file, which ``--resume`` removes (:func:`stale_writes`). Loading uses
``allow_pickle=False`` and checks the digest; a truncated, corrupt or foreign file raises
:class:`CheckpointError` naming the file and saying what deleting it leads to (the previous checkpoint, or a
restart from step 0 when there is none).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fp8ref.nn.atomic import atomic_write, matching_files, stale_temporaries

VERSION = 1
_NAME = re.compile(r"^step_(\d{7})\.npz$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (missing, truncated, corrupt, or of another layout)."""


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.asarray(arrays[k], order="C")
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step_{int(step):07d}.npz"


def save(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Atomically write ``arrays`` and ``meta`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v, order="C") for k, v in arrays.items()}  # keeps 0-d arrays 0-d
    if "__meta__" in arrays:
        raise ValueError("'__meta__' is a reserved array name")
    bad = [k for k, v in arrays.items() if v.dtype.hasobject]
    if bad:
        raise ValueError(f"arrays {bad} hold Python objects; checkpoints store plain numeric arrays only")
    full_meta = {"version": VERSION, **meta, "sha256": _digest(arrays)}
    blob = np.frombuffer(json.dumps(full_meta, sort_keys=True).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, __meta__=blob, **arrays))
    try:  # make the rename durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by :func:`save`: ``(arrays, meta)``. Raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc}); {_fallback(path)}"
        ) from exc
    blob = arrays.pop("__meta__", None)
    if blob is None or blob.dtype != np.uint8:
        raise CheckpointError(f"checkpoint {path} has no fp8ref metadata: not an fp8ref.nn checkpoint")
    try:
        meta = json.loads(blob.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata: {exc}; {_fallback(path)}") from exc
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has layout version {meta.get('version')!r}; "
            f"this fp8ref reads version {VERSION}"
        )
    if meta.get("sha256") != _digest(arrays):
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its arrays do not match the stored sha256; {_fallback(path)}"
        )
    return arrays, meta


def check_meta(path: Path, meta: dict[str, Any], config_sha256: str, config_path: Path) -> int:
    """The step of a loaded checkpoint of the run whose ``config.json`` has the SHA-256 ``config_sha256``;
    :class:`CheckpointError` naming the file when it belongs to another configuration or its metadata lacks
    a field a resume needs (``step``, ``adam_t``, ``good_steps``: integers >= 0; ``loss_scale``: a float)."""
    if meta.get("config_sha256") != config_sha256:
        raise CheckpointError(f"checkpoint {path} belongs to another configuration than {config_path}")
    ints = [meta.get(k) for k in ("step", "adam_t", "good_steps")]
    if any(type(v) is not int or v < 0 for v in ints) or type(meta.get("loss_scale")) is not float:
        raise CheckpointError(f"checkpoint {path} has metadata of another layout: {meta}")
    return int(meta["step"])


def _fallback(path: Path) -> str:
    """What deleting a damaged checkpoint of a run folder leads to: the previous checkpoint, or step 0."""
    m = _NAME.match(path.name)
    if m is None:
        return "it is not a step_NNNNNNN.npz file of a run folder"
    earlier = [p for s, p in list_checkpoints(path.parent) if s < int(m.group(1))]
    if earlier:
        return f"delete it to resume from the previous checkpoint, {earlier[-1].name}"
    return "there is no earlier checkpoint: delete it and --resume starts the run again from step 0"


def is_checkpoint_name(name: str) -> bool:
    """``step_NNNNNNN.npz``: the name of a checkpoint file."""
    return _NAME.match(name) is not None


def stale_writes(folder: str | Path) -> list[Path]:
    """Temporary files of checkpoint writes that were killed midway (``step_NNNNNNN.npz.tmp-<pid>``)."""
    return stale_temporaries(folder, is_checkpoint_name)


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step_NNNNNNN.npz`` in ``folder``, by step."""
    return sorted((int(m.group(1)), p) for m, p in matching_files(folder, _NAME))


def latest(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None
