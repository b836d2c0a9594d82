"""Writing and reading golden sets: ``write_set`` (used by generate) and ``load_case`` (used by verify and
the conformance harness). Every check that protects the reader happens here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import fp8ref
from fp8ref.golden import manifest as mf
from fp8ref.golden import stfile
from fp8ref.golden.case import Case, Result, from_storage
from fp8ref.golden.ops import check_sizes

__all__ = ["LoadedCase", "write_case", "load_case", "write_manifest"]


@dataclass(frozen=True)
class LoadedCase:
    """A case read back from a set: its manifest entry and its tensors split by role."""

    entry: dict[str, Any]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    formats: dict[str, str]

    @property
    def id(self) -> str:
        return self.entry["id"]

    @property
    def op(self) -> str:
        return self.entry["op"]

    @property
    def params(self) -> dict[str, Any]:
        return self.entry["params"]


def write_case(root: Path, case: Case, result: Result) -> dict[str, Any]:
    """Write ``case`` and its reference ``result`` to ``root``; return the manifest entry."""
    clash = set(case.inputs) & set(result.outputs)
    if clash:
        raise ValueError(f"case {case.id}: tensors {sorted(clash)} are both input and output")
    tensors = {**case.inputs, **result.outputs}
    formats = {**case.formats, **result.formats}
    data = stfile.dumps(tensors, formats=formats, metadata={"fp8ref.case": case.id, "fp8ref.op": case.op})
    path = mf.safe_path(root, case.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    header, meta, _ = stfile.parse_header(data)
    entries = {}
    for name in sorted(tensors):
        h = header[name]
        e: dict[str, Any] = {"role": "input" if name in case.inputs else "output", "dtype": h["dtype"],
                             "shape": h["shape"]}
        if f"format.{name}" in meta:
            e["format"] = meta[f"format.{name}"]
        entries[name] = e
    return {"id": case.id, "suite": case.suite, "op": case.op, "params": case.params, "file": case.file,
            "sha256": mf.sha256_hex(data), "bytes": len(data), "tensors": entries}


def write_manifest(root: Path, suites: list[str], entries: list[dict[str, Any]], command: str) -> bytes:
    manifest = {"schema": mf.SCHEMA, "schema_version": mf.SCHEMA_VERSION,
                "fp8ref_version": fp8ref.__version__, "command": command, "suites": list(suites),
                "cases": entries}
    mf.validate(manifest)
    data = mf.dumps(manifest)
    (root / mf.MANIFEST).write_bytes(data)
    return data


def load_case(root: Path, entry: dict[str, Any]) -> LoadedCase:
    """Read one case's tensor file, checking the parameters that size the reference's allocations (before
    anything is read), path, size, hash, and that the tensors are exactly the ones the manifest declares.
    Raises :class:`fp8ref.golden.manifest.SetError` on any problem."""
    cid = entry["id"]
    try:
        check_sizes(entry["op"], entry["params"], entry["tensors"])
    except ValueError as exc:
        raise mf.SetError(f"case {cid}: manifest.json: {exc}") from None
    path = mf.safe_path(root, entry["file"])
    if not path.is_file():
        raise mf.SetError(f"case {cid}: tensor file {entry['file']} is missing")
    try:
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise mf.SetError(f"case {cid}: {entry['file']} is {size} bytes, manifest says {entry['bytes']} "
                              "(truncated or extended)")
        data = path.read_bytes()
    except OSError as exc:
        raise mf.SetError(f"case {cid}: {entry['file']} cannot be read ({exc.strerror or exc})") from None
    digest = mf.sha256_hex(data)
    if digest != entry["sha256"]:
        raise mf.SetError(f"case {cid}: SHA-256 of {entry['file']} is {digest}, "
                          f"manifest says {entry['sha256']}")
    try:
        tensors, _meta = stfile.loads(data, entry["file"])
    except stfile.StError as exc:
        raise mf.SetError(f"case {cid}: {exc}") from None
    declared = entry["tensors"]
    if set(tensors) != set(declared):
        missing = sorted(set(declared) - set(tensors))
        extra = sorted(set(tensors) - set(declared))
        raise mf.SetError(f"case {cid}: tensors in file differ from manifest "
                          f"(missing {missing}, extra {extra})")
    inputs, outputs, formats = {}, {}, {}
    for name, d in declared.items():
        t = tensors[name]
        if t.dtype != d["dtype"] or list(t.data.shape) != d["shape"] or t.format != d.get("format"):
            raise mf.SetError(f"case {cid}: tensor {name!r} is {t.dtype}{list(t.data.shape)} "
                              f"format {t.format}, "
                              f"manifest says {d['dtype']}{d['shape']} format {d.get('format')}")
        if t.format is not None:
            try:
                fp8ref.format(t.format)
            except ValueError:
                raise mf.SetError(f"case {cid}: tensor {name!r} has unknown format {t.format!r}") from None
            formats[name] = t.format
        (inputs if d["role"] == "input" else outputs)[name] = from_storage(t)
    return LoadedCase(entry, inputs, outputs, formats)
