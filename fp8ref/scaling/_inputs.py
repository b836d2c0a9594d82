"""Input checking shared by the scaling functions."""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.formats import Format
from fp8ref.formats import format as _format

FLT_MAX = float(np.finfo(np.float32).max)
_FP16_MAX = 65504.0
_BF16_MAX = float.fromhex("0x1.fep127")  # 0x7F7F


def _is_bfloat16(dt: np.dtype) -> bool:
    return dt.name == "bfloat16"


def as_float_array(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a NumPy array of float16, bfloat16, float32 or float64 (Python floats give float64).

    Integer, boolean, complex and object input raise ``TypeError`` naming ``name``."""
    if isinstance(x, np.ndarray):
        a = x
    else:
        try:
            a = np.asarray(x)
        except Exception as exc:  # noqa: BLE001 - re-raised with the parameter name
            raise TypeError(f"{name} must be an array of floats, got {type(x).__name__}") from exc
        if a.dtype.kind in "iub" and isinstance(x, (int, bool)):
            raise TypeError(f"{name} must be a float or an array of floats, got {type(x).__name__}")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    dt = a.dtype
    if dt in (np.float16, np.float32, np.float64) or _is_bfloat16(dt):
        return a
    raise TypeError(f"{name} must have dtype float16, bfloat16, float32 or float64, got {dt}")


def compute_dtype(a: np.ndarray) -> np.dtype:
    """Precision in which fp8ref applies a scale: float64 for float64 input, float32 for everything else
    (float16 and bfloat16 widen to float32 exactly first, as GPU cast kernels do)."""
    return np.dtype(np.float64) if a.dtype == np.float64 else np.dtype(np.float32)


def widen(a: np.ndarray) -> np.ndarray:
    """``a`` in its compute precision (exact widening), C-contiguous."""
    return np.ascontiguousarray(a, dtype=compute_dtype(a))


def input_type_max(dt: np.dtype) -> float:
    """Largest finite value of the input type (TransformerEngine's ``value_for_inf``); float32's for
    float32 and float64 input."""
    if dt == np.float16:
        return _FP16_MAX
    if _is_bfloat16(dt):
        return _BF16_MAX
    return FLT_MAX


def element_format(fmt: Any, name: str = "fmt") -> Format:
    """Resolve an element format: at most 8 bits, signed, with a zero (codes are uint8)."""
    try:
        f = _format(fmt)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: {exc}") from exc
    if f.bits > 8 or not f.signed or not f.has_zero:
        raise ValueError(f"{name} must be a signed element format of at most 8 bits with a zero "
                         f"(E4M3, E5M2, E4M3FNUZ, E5M2FNUZ, E2M1, ...), got {f.name}")
    return f


def check_int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ValueError(f"{name} must lie in {rng}, got {v}")
    return v
