"""Distances between expected and observed outputs, in units in the last place of the output type.

Every output element is mapped to its *ordinal*: the position of its value in the sorted list of the
type's values, with -0 one step below +0 (for the types that have -0). The distance of two elements is
the difference of their ordinals: 0 for identical bits, 1 for neighbours, and so on (``+0`` vs ``-0`` is
1). Identical NaN bit patterns are distance 0; a NaN against anything else -- a number or a NaN with other
bits -- is infinitely far (a class difference, never within a tolerance).
"""

from __future__ import annotations

import numpy as np

from fp8ref.formats import Format
from fp8ref.formats import format as resolve_format

__all__ = ["ordinals", "distance", "HIST_EDGES", "histogram", "is_nan"]

_FLOAT_BITS = {"float16": (np.uint16, 15), "bfloat16": (np.uint16, 15), "float32": (np.uint32, 31),
               "float64": (np.uint64, 63)}


def _code_table(fmt: Format) -> tuple[np.ndarray, np.ndarray]:
    codes = np.arange(fmt.n_codes)
    nan = np.array([fmt.classify(int(c)) == "nan" for c in codes])
    mag = codes & ~fmt.sign_mask if fmt.signed else codes
    neg = (codes & fmt.sign_mask) != 0 if fmt.signed else np.zeros(codes.size, bool)
    ordv = np.where(neg, -mag - (1 if fmt.has_negative_zero else 0), mag).astype(np.int64)
    return ordv, nan


def is_nan(arr: np.ndarray, fmt: str | None) -> np.ndarray:
    if fmt is not None:
        return _code_table(resolve_format(fmt))[1][arr.astype(np.int64)]
    return np.isnan(arr.astype(np.float64)) if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16" \
        else np.zeros(arr.shape, bool)


def ordinals(arr: np.ndarray, fmt: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(ordinal as int64 -- as float64 for 64-bit floats --, NaN mask) of every element."""
    arr = np.asarray(arr)
    if fmt is not None:
        ordv, nan = _code_table(resolve_format(fmt))
        idx = arr.astype(np.int64)
        return ordv[idx], nan[idx]
    name = arr.dtype.name
    if name in _FLOAT_BITS:
        ut, sb = _FLOAT_BITS[name]
        bits = arr.view(ut).astype(np.uint64)
        neg = (bits >> np.uint64(sb)) != 0
        mag = (bits & np.uint64((1 << sb) - 1))
        if name == "float64":  # keep it exact enough: float64 ordinals as Python-int-free float math
            magf = mag.astype(np.float64)
            return np.where(neg, -magf - 1, magf), np.isnan(arr)
        mag = mag.astype(np.int64)
        return np.where(neg, -mag - 1, mag), np.isnan(arr.astype(np.float32))
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64), np.zeros(arr.shape, bool)
    raise TypeError(f"no ulp distance for dtype {arr.dtype}")


def distance(expected: np.ndarray, got: np.ndarray, fmt: str | None) -> np.ndarray:
    """Per-element distance in ulps (float64; ``inf`` for NaN class differences)."""
    e = np.asarray(expected)
    g = np.asarray(got)
    same = np.ascontiguousarray(e).view(np.uint8).reshape(e.size, -1) == \
        np.ascontiguousarray(g).view(np.uint8).reshape(g.size, -1)
    same = same.all(axis=1).reshape(e.shape)
    oe, ne = ordinals(e, fmt)
    og, ng = ordinals(g, fmt)
    d = np.abs(oe.astype(np.float64) - og.astype(np.float64))
    d = np.where(ne | ng, np.inf, d)
    return np.where(same, 0.0, d)


#: histogram buckets of non-zero distances: 1, 2, 3-4, 5-8, ..., > 2**20, NaN class
HIST_EDGES = [1, 2, 4, 8, 16, 64, 256, 1024, 2 ** 20]


def histogram(d: np.ndarray) -> dict[str, int]:
    """Counts of the non-zero distances per bucket ("1", "2", "3-4", ..., ">1048576", "nan")."""
    out: dict[str, int] = {}
    d = d[d > 0]
    lo = 0
    for hi in HIST_EDGES:
        c = int(np.count_nonzero((d > lo) & (d <= hi)))
        if c:
            out[str(hi) if hi == lo + 1 else f"{lo + 1}-{hi}"] = c
        lo = hi
    big = int(np.count_nonzero(np.isfinite(d) & (d > lo)))
    if big:
        out[f">{lo}"] = big
    nan = int(np.count_nonzero(np.isinf(d)))
    if nan:
        out["nan"] = nan
    return out
