"""Time `import fp8ref` in fresh interpreters (warm file cache); the target is < 0.5 s.

Prints the median of N runs next to the median of `import numpy` (the floor: fp8ref imports numpy).
"""

from __future__ import annotations

import statistics
import subprocess
import sys


def _time(stmt: str, runs: int) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    return statistics.median(
        float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
        for _ in range(runs)
    )


def main(runs: int = 7) -> None:
    _time("import fp8ref", 1)  # warm the file cache and bytecode
    numpy_s = _time("import numpy", runs)
    fp8ref_s = _time("import fp8ref", runs)
    print(f"import numpy   median {numpy_s * 1e3:7.1f} ms")
    print(f"import fp8ref  median {fp8ref_s * 1e3:7.1f} ms  (target < 500 ms; "
          f"ratio to numpy {fp8ref_s / numpy_s:.2f})")


if __name__ == "__main__":
    main()
