"""The golden-set manifest: schema, validation and safe path resolution.

``manifest.json`` is UTF-8 JSON written with sorted keys, two-space indentation and a final newline. Its
layout is specified in docs/golden-format.md; :func:`validate` enforces it before anything else is read.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from fp8ref.golden.stfile import DTYPES, shape_problem

__all__ = ["SCHEMA", "SCHEMA_VERSION", "MANIFEST", "SetError", "validate", "safe_path", "dumps", "load",
           "sha256_hex", "ROLES"]

SCHEMA = "fp8ref-golden"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
#: largest tensor file a manifest may declare (checked before the file is read)
MAX_CASE_BYTES = 1 << 30
#: largest total of the tensor files of one set
MAX_SET_BYTES = 1 << 34
#: largest amax history a case may ask the reference to allocate (``history_len`` of a Delayed recipe,
#: ``delayed_history`` of a trainer configuration; TransformerEngine's default is 1024)
MAX_HISTORY_LEN = 1 << 16
ROLES = ("input", "output")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class SetError(ValueError):
    """The set is invalid or corrupt (exit status 2 of ``fp8ref golden verify``)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps(manifest: dict[str, Any]) -> bytes:
    """Deterministic serialisation: sorted keys, 2-space indent, ASCII, trailing newline."""
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
    return (text + "\n").encode()


def check_rel(rel: str) -> None:
    """A manifest file path: relative, ``/``-separated components of ``[A-Za-z0-9._-]``, no ``.`` or ``..``
    component, ending ``.safetensors``."""
    if not isinstance(rel, str) or not _ID.match(rel.removesuffix(".safetensors")) or \
            not rel.endswith(".safetensors") or "\\" in rel:
        raise SetError(f"file {rel!r}: not a relative path of [A-Za-z0-9._-] components ending .safetensors")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise SetError(f"file {rel!r}: '.', '..' and empty components are not allowed")


def safe_path(root: Path, rel: str) -> Path:
    """``root / rel`` for a manifest path that stays inside ``root`` (symbolic links resolved);
    :class:`SetError` otherwise."""
    check_rel(rel)
    root_r = root.resolve()
    p = (root_r / rel).resolve()
    if root_r not in p.parents:
        raise SetError(f"file {rel!r}: resolves outside the set directory")
    return p


def _req(obj: dict, key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise SetError(f"{where}: missing key {key!r}")
    v = obj[key]
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise SetError(f"{where}: {key!r} must be {getattr(typ, '__name__', typ)}, got {type(v).__name__}")
    return v


def validate(manifest: Any) -> dict[str, Any]:
    """Check the manifest's structure; returns it unchanged or raises :class:`SetError`."""
    if not isinstance(manifest, dict):
        raise SetError("manifest: top level must be a JSON object")
    schema = _req(manifest, "schema", str, "manifest")
    if schema != SCHEMA:
        raise SetError(f"manifest: schema is {schema!r}, expected {SCHEMA!r}")
    version = _req(manifest, "schema_version", int, "manifest")
    if version != SCHEMA_VERSION:
        raise SetError(f"manifest: schema_version {version} is not supported "
                       f"(this fp8ref reads {SCHEMA_VERSION})")
    _req(manifest, "fp8ref_version", str, "manifest")
    _req(manifest, "command", str, "manifest")
    suites = _req(manifest, "suites", list, "manifest")
    if not all(isinstance(s, str) for s in suites):
        raise SetError("manifest: suites must be a list of strings")
    cases = _req(manifest, "cases", list, "manifest")
    seen_ids: set[str] = set()
    seen_files: set[str] = set()
    total = 0
    for i, case in enumerate(cases):
        where = f"case #{i}"
        if not isinstance(case, dict):
            raise SetError(f"{where}: must be an object")
        cid = _req(case, "id", str, where)
        where = f"case {cid!r}"
        if not _ID.match(cid) or cid in seen_ids:
            raise SetError(f"{where}: id must be unique and made of [A-Za-z0-9._-] path components")
        seen_ids.add(cid)
        suite = _req(case, "suite", str, where)
        if suite not in suites:
            raise SetError(f"{where}: suite {suite!r} is not listed in the manifest's suites")
        _req(case, "op", str, where)
        _req(case, "params", dict, where)
        f = _req(case, "file", str, where)
        if f in seen_files:
            raise SetError(f"{where}: file {f!r} is used by two cases")
        seen_files.add(f)
        check_rel(f)
        digest = _req(case, "sha256", str, where)
        if not _HEX64.match(digest):
            raise SetError(f"{where}: sha256 must be 64 lowercase hex digits")
        nbytes = _req(case, "bytes", int, where)
        if not 8 <= nbytes <= MAX_CASE_BYTES:
            raise SetError(f"{where}: bytes must be in [8, {MAX_CASE_BYTES}], got {nbytes}")
        total += nbytes
        if total > MAX_SET_BYTES:
            raise SetError(f"{where}: the tensor files declared so far total {total} bytes, above the limit "
                           f"of {MAX_SET_BYTES} for a set")
        tensors = _req(case, "tensors", dict, where)
        if not tensors:
            raise SetError(f"{where}: no tensors")
        n_out = 0
        data_bytes = 0
        for name, t in tensors.items():
            tw = f"{where} tensor {name!r}"
            if not _NAME.match(name) or not isinstance(t, dict):
                raise SetError(f"{tw}: invalid name or entry")
            role = _req(t, "role", str, tw)
            if role not in ROLES:
                raise SetError(f"{tw}: role must be one of {ROLES}")
            n_out += role == "output"
            dt = _req(t, "dtype", str, tw)
            if dt not in DTYPES:
                raise SetError(f"{tw}: unknown dtype {dt!r}")
            shape = _req(t, "shape", list, tw)
            problem = shape_problem(shape, dt)
            if problem:
                raise SetError(f"{tw}: {problem}")
            data_bytes += math.prod(shape) * DTYPES[dt].itemsize
            if data_bytes > nbytes - 8:
                raise SetError(f"{tw}: the declared tensors need {data_bytes} bytes of data, more than the "
                               f"file of {nbytes} bytes can hold")
            if "format" in t and not isinstance(t["format"], str):
                raise SetError(f"{tw}: format must be a string")
            extra = set(t) - {"role", "dtype", "shape", "format"}
            if extra:
                raise SetError(f"{tw}: unknown keys {sorted(extra)}")
        if n_out == 0:
            raise SetError(f"{where}: no output tensor")
    return manifest


def load(root: str | Path) -> dict[str, Any]:
    """Read and validate ``root/manifest.json``."""
    p = Path(root) / MANIFEST
    if not Path(root).is_dir():
        raise SetError(f"{root}: not a directory")
    if not p.is_file():
        raise SetError(f"{p}: missing")
    try:
        size = p.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise SetError(f"{p}: {size} bytes exceeds the limit of {MAX_MANIFEST_BYTES}")
        raw = p.read_bytes()
    except OSError as exc:
        raise SetError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SetError(f"{p}: not valid UTF-8 JSON ({type(exc).__name__}: {exc})") from None
    try:
        return validate(data)
    except SetError as exc:
        raise SetError(f"{p}: {exc}") from None
