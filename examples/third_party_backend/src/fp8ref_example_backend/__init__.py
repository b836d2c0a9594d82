"""An example fp8ref backend: FP8 casts by searching a table of the format's values.

Every rule comes from the format's fields (``fp8ref.Format``), never from its name: the positive finite
values are sorted, ``|x|`` is located between two neighbours with ``np.searchsorted``, and the nearer one
wins, ties going to the even code. Midpoints of FP8 neighbours are exact in float64, so the comparisons are
exact and each input is rounded once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.backends import Backend, Capabilities
from fp8ref.formats import FP8_FORMATS, Format

__all__ = ["TableBackend"]


def _table(f: Format) -> tuple[np.ndarray, np.ndarray]:
    """Positive finite values of ``f`` in increasing order (zero first) and their codes."""
    codes = np.arange(f.n_codes)
    vals = f.values()
    keep = np.isfinite(vals) & ((codes & f.sign_mask) == 0)
    order = np.argsort(vals[keep], kind="stable")
    return vals[keep][order], codes[keep][order]


class TableBackend(Backend):
    """Round-to-nearest-even casts of the four FP8 formats by table search (plain NumPy)."""

    name = "example-table"

    def __init__(self) -> None:
        self.capabilities = Capabilities(
            formats=tuple(f.name for f in FP8_FORMATS),
            rounding=("nearest_even",),
            saturate=(False, True),
            ops=("quantize", "dequantize", "amax"),
            device="cpu",
        )

    def quantize(self, x: Any, fmt: Any, *, rounding: str = "nearest_even", saturate: bool = True,
                 srbits: Any = None, srnumbits: int | None = None, seed: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        f = self.check_quantize(fmt, rounding, saturate, srbits, srnumbits, seed)
        a = np.asarray(x)
        if a.dtype.kind != "f" and a.dtype.name != "bfloat16":
            raise TypeError(f"x must hold floating-point values, got dtype {a.dtype}")
        v = a.astype(np.float64)  # exact for float16, bfloat16, float32, float64
        vals, codes = _table(f)
        mag = np.abs(v)
        finite = np.isfinite(mag)
        m = np.where(finite, mag, 0.0)
        hi = np.clip(np.searchsorted(vals, m, side="left"), 1, len(vals) - 1)
        lo = hi - 1
        mid = (vals[lo] + vals[hi]) / 2
        pick_hi = (m > mid) | ((m == mid) & (codes[hi] % 2 == 0))
        code = np.where(pick_hi, codes[hi], codes[lo])
        code = np.where(m == vals[hi], codes[hi], code)
        # beyond max: round against the next (unencodable) value max + ulp(max)
        top = vals[-1]
        ulp = 2.0 ** (f.emax - f.mbits)
        over_mid = top + ulp / 2
        overflow = (m > over_mid) | ((m == over_mid) & (f.max_code % 2 == 1)) | ~finite
        nan = np.isnan(v)
        if saturate:
            code = np.where(overflow, f.max_code, code)
        else:
            over_code = f.inf_code if f.has_inf else f.nan_code
            code = np.where(overflow, over_code, code)
        code = np.where((m > top) & ~overflow, f.max_code, code)
        negative = np.signbit(v)
        if f.has_negative_zero:
            code = np.where(negative, code | f.sign_mask, code)
        else:  # FNUZ: no -0; the sign bit marks NaN only
            code = np.where(negative & (code != 0), code | f.sign_mask, code)
        nan_code = f.nan_code
        assert nan_code is not None
        if f.nan == "fnuz":
            code = np.where(nan, nan_code, code)
        else:
            code = np.where(nan, nan_code | np.where(negative, f.sign_mask, 0), code)
        result = code.astype(np.uint8).reshape(a.shape)
        if out is not None:
            out.view(np.uint8)[...] = result
            return out
        return result

    def dequantize(self, codes: Any, fmt: Any, *, dtype: Any = np.float32) -> np.ndarray:
        f = self.check_format("dequantize", fmt)
        c = np.asarray(codes)
        if c.dtype != np.uint8:
            raise TypeError(f"codes must be a uint8 array, got dtype {c.dtype}")
        vals = f.values()
        negative = (np.arange(f.n_codes) & f.sign_mask) != 0
        vals = np.where(np.isnan(vals), np.where(negative, -np.nan, np.nan), vals)  # NaN keeps the sign bit
        return vals.astype(dtype)[c]

    def amax(self, x: Any, axis: Any = None, *, nan: str = "propagate") -> Any:
        a = np.abs(np.asarray(x).astype(np.float64))
        if nan == "ignore":
            r = np.fmax.reduce(a, axis=axis, initial=0.0)
        else:
            r = np.max(a, axis=axis, initial=0.0)
        return np.float32(r) if axis is None else np.asarray(r).astype(np.float32)
