"""Run NumPy's BLAS (and Numba's parallel kernels) on a fixed number of threads while training.

The trainer's matrices are tiny (tens to hundreds of rows); a multi-threaded OpenBLAS spends more time
waking and spinning its threads than multiplying, and on a busy machine a step can take 10x longer. One BLAS
thread also makes every float32 result independent of the machine's core count.

:func:`limited_threads` finds the OpenBLAS library NumPy loaded (from ``/proc/self/maps`` on Linux, else
``numpy.libs`` / ``numpy/.dylibs``) and calls its ``*_set_num_threads`` through ``ctypes``; with
``numba=True`` it also calls ``numba.set_num_threads`` (the same reasoning: fp8ref's parallel cast and
amax kernels on tensors of a few thousand elements spend their time waking threads). Previous counts are
restored on exit. Where no OpenBLAS is found (another BLAS, another platform) the BLAS part does nothing.
Results never depend on the thread count (the tests check NUMBA_NUM_THREADS=1 and 2 give identical runs).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from collections.abc import Iterator

_SUFFIXES = ("64_", "", "_64")
_PREFIXES = ("scipy_openblas", "openblas")


def _candidates() -> list[str]:
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1] if line.strip() else ""
                if "openblas" in os.path.basename(p).lower() and p not in paths:
                    paths.append(p)
    except OSError:
        pass
    if not paths:
        import numpy

        root = os.path.dirname(os.path.dirname(numpy.__file__))
        for pattern in ("numpy.libs/*openblas*", "numpy/.dylibs/*openblas*"):
            paths.extend(glob.glob(os.path.join(root, pattern)))
    return paths


def _functions() -> tuple[object, object] | None:
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for pre in _PREFIXES:
            for suf in _SUFFIXES:
                setter = getattr(lib, f"{pre}_set_num_threads{suf}", None)
                getter = getattr(lib, f"{pre}_get_num_threads{suf}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    return setter, getter
    return None


_FUNCS: tuple[object, object] | None | bool = False


@contextlib.contextmanager
def limited_threads(n: int = 1, numba: bool = False) -> Iterator[bool]:
    """Context manager: NumPy's OpenBLAS (and, with ``numba``, Numba) on ``n`` threads inside; ``n <= 0``
    changes nothing. Yields whether the BLAS thread count could be set."""
    global _FUNCS
    if n <= 0:
        yield False
        return
    if _FUNCS is False:
        _FUNCS = _functions()
    restore_numba = None
    if numba:
        import numba as nb

        n_nb = min(n, nb.config.NUMBA_NUM_THREADS)
        restore_numba = nb.get_num_threads()
        nb.set_num_threads(n_nb)
    try:
        if not _FUNCS:
            yield False
            return
        setter, getter = _FUNCS  # type: ignore[misc]
        before = int(getter())  # type: ignore[operator]
        setter(n)  # type: ignore[operator]
        try:
            yield True
        finally:
            setter(before)  # type: ignore[operator]
    finally:
        if restore_numba is not None:
            import numba as nb

            nb.set_num_threads(restore_numba)
