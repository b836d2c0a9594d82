"""Argument checks shared by the wrapping backends (ml_dtypes, torch), with the reference's error rules."""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.cast.api import dequant_dtype
from fp8ref.formats import Format

__all__ = ["float_input", "code_input", "write_out", "dequant_dtype", "FLOAT_DTYPES"]

#: input dtypes the wrapping backends hand to their library unchanged
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def float_input(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a native-endian array of one of :data:`FLOAT_DTYPES`, its dtype kept (a Python float becomes
    float64). Booleans, integers and complex numbers raise ``TypeError``, as in ``fp8ref.quantize``."""
    if isinstance(x, (bool, np.bool_, int, np.integer, complex, np.complexfloating)):
        raise TypeError(f"{name} must hold floating-point values ({', '.join(FLOAT_DTYPES)}), "
                        f"got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype.name not in FLOAT_DTYPES:
        raise TypeError(f"{name} must hold floating-point values ({', '.join(FLOAT_DTYPES)}), got dtype "
                        f"{arr.dtype}")
    if arr.dtype.kind == "f" and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def code_input(codes: Any, fmt: Format | None = None, name: str = "codes") -> np.ndarray:
    """``codes`` as ``np.uint8``: a uint8 array, the format's ml_dtypes dtype (viewed), or any integer array
    with values in [0, 256) (``ValueError`` outside, ``TypeError`` for other dtypes)."""
    c = np.asarray(codes)
    if fmt is not None and fmt.ml_dtype is not None and c.dtype == fmt.ml_dtype and c.dtype.itemsize == 1:
        return c.view(np.uint8)
    if c.dtype.kind not in "iu" or c.dtype == np.bool_:
        raise TypeError(f"{name} must be an integer array of codes, got dtype {c.dtype}")
    if c.dtype != np.uint8:
        if c.size and (int(c.min()) < 0 or int(c.max()) > 255):
            raise ValueError(f"{name} must lie in [0, 256), got values in [{int(c.min())}, {int(c.max())}]")
        c = c.astype(np.uint8)
    return c


def write_out(result: np.ndarray, out: Any, fmt: Format) -> np.ndarray:
    """Return ``result`` (uint8 codes), or write it into ``out`` (uint8 or the format's ml_dtypes dtype, the
    shape of ``result``, writeable) and return ``out``."""
    if out is None:
        return result
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if not (out.dtype == np.uint8 or (fmt.ml_dtype is not None and out.dtype == fmt.ml_dtype
                                      and out.dtype.itemsize == 1)):
        raise TypeError(f"out must have dtype uint8 or {fmt.ml_dtype}, got {out.dtype}")
    if out.shape != result.shape:
        raise ValueError(f"out has shape {out.shape}, x has shape {result.shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    out.view(np.uint8)[...] = result
    return out
