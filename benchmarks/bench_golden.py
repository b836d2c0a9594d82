"""Golden sets: reading tensor files with fp8ref's own safetensors reader vs the ``safetensors`` package
(torch front end, the only one that reads FP8), and the time of ``fp8ref golden verify`` per suite.

Usage: python benchmarks/bench_golden.py [SET_DIR]   (default: the repository's golden/)
Prints medians of a few repetitions and the ratio fp8ref / safetensors measured in the same run.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


def _median(fn, reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str]) -> int:
    from fp8ref.golden import SUITES, stfile, verify

    root = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "golden"
    files = [root / e["file"] for e in json.loads((root / "manifest.json").read_text())["cases"]]
    blobs = [p.read_bytes() for p in files]
    total = sum(len(b) for b in blobs)
    ours = _median(lambda: [stfile.loads(b) for b in blobs])
    print(f"{len(files)} tensor files, {total / 1e6:.2f} MB")
    print(f"fp8ref.golden.stfile.loads     {ours * 1e3:8.1f} ms")
    try:
        from safetensors.torch import load
    except ImportError:
        print("safetensors (torch front end) not installed: no peer to compare with")
    else:
        theirs = _median(lambda: [load(b) for b in blobs])
        print(f"safetensors.torch.load         {theirs * 1e3:8.1f} ms")
        print(f"ratio fp8ref / safetensors     {ours / theirs:8.2f}")
    verify(root, suites=["casts"])  # compile / load the kernels once
    for s in SUITES:
        t = _median(lambda s=s: verify(root, suites=[s]), reps=1)
        print(f"verify --suite {s:<9}        {t:8.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
