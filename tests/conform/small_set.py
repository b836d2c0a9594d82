"""A few cases of the committed golden set, copied into a new set: enough to exercise the harness on a
misbehaving backend without running all of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parents[2] / "golden"

#: one quantize, one dequantize and one amax case (per column: NaN in one column only)
CASES = ("casts/E4M3/quantize-f32-nearest_even-sat", "casts/E4M3/dequantize-f32", "scaling/amax-f32-axis0")


def copy_cases(dest: Path, ids: tuple[str, ...] = CASES, source: Path = GOLDEN,
               edit: Any = None) -> Path:
    """A set in ``dest`` holding the cases ``ids`` of ``source``; ``edit(entry)`` may change each entry."""
    manifest = json.loads((source / "manifest.json").read_text())
    entries = [dict(e) for e in manifest["cases"] if e["id"] in ids]
    assert len(entries) == len(ids), "a case is missing from the source set"
    dest.mkdir(parents=True, exist_ok=True)
    for e in entries:
        (dest / e["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / e["file"], dest / e["file"])
        if edit is not None:
            edit(e)
    manifest["cases"] = entries
    manifest["suites"] = sorted({e["suite"] for e in entries})
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return dest
