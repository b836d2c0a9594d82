"""Golden vector sets: safetensors tensor files plus a JSON manifest, generated and verified bit for bit.

A set is a directory holding ``manifest.json`` and one ``<suite>/<case>.safetensors`` file per case (the
layout is specified in docs/golden-format.md). ``generate(dir, suites)`` writes a set that is byte-for-byte
reproducible on any machine; ``verify(dir)`` validates the manifest, every path, size, SHA-256 and tensor
declaration, then recomputes each case with the reference and compares bit for bit.

Reading never executes code: the safetensors reader (:mod:`fp8ref.golden.stfile`) is fp8ref's own, parses
JSON only, and validates every dtype, shape and offset before it builds an array.

Public names: :func:`generate`, :func:`merge`, :func:`verify`, :func:`load_set`, :func:`load_case`,
:data:`SUITES`, :class:`SetError`, :func:`read_safetensors`, :func:`write_safetensors`.
"""

from __future__ import annotations

from fp8ref.golden.generate import generate
from fp8ref.golden.io import LoadedCase, load_case
from fp8ref.golden.manifest import SCHEMA, SCHEMA_VERSION, SetError
from fp8ref.golden.manifest import load as load_set
from fp8ref.golden.merge import merge
from fp8ref.golden.ops import SUITES, compute
from fp8ref.golden.stfile import read as read_safetensors
from fp8ref.golden.stfile import write as write_safetensors
from fp8ref.golden.verify import VerifyReport, verify

__all__ = ["generate", "merge", "verify", "VerifyReport", "load_set", "load_case", "LoadedCase", "SUITES",
           "SCHEMA", "SCHEMA_VERSION", "SetError", "compute", "read_safetensors", "write_safetensors",
           "default_set_dir"]


def default_set_dir():
    """The default golden set: ``$FP8REF_GOLDEN`` if set (it must hold a set), else ``fp8ref/data/golden``
    when the package ships one, else the source checkout's ``golden/`` directory (the committed set).
    Raises ``FileNotFoundError`` saying what was tried when none exists."""
    import os
    from pathlib import Path

    here = Path(__file__).resolve().parent.parent
    tried = []
    env = os.environ.get("FP8REF_GOLDEN")
    if env:
        if (Path(env) / "manifest.json").is_file():
            return Path(env)
        raise FileNotFoundError(f"FP8REF_GOLDEN={env} holds no golden set (no manifest.json there)")
    candidates = [here / "data" / "golden", here.parent / "golden"]
    for c in candidates:
        tried.append(str(c))
        if (c / "manifest.json").is_file():
            return c
    raise FileNotFoundError("no default golden set found (tried: " + ", ".join(tried) + "); pass "
                            "--golden DIR or create one with 'fp8ref golden generate DIR'")
