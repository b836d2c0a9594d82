"""One rounding of float64 values into an output format (vectorised NumPy).

``round_values(v, fmt)`` rounds every float64 ``v`` once, to nearest even, into ``fmt`` and returns the
rounded values as float64 (so the cast to the output dtype afterwards is exact). The overflow rule is
IEEE 754's: the value is rounded with an unbounded exponent and, if that exceeds ``fmt.max``, the result is
Inf where the format has one, else NaN (OCP E4M3 and FNUZ formats: non-saturating). Negative results that
round to zero keep their sign where the format has -0.
"""

from __future__ import annotations

import numpy as np

from fp8ref.formats import Format


def format_params(fmt: Format) -> tuple[int, int, float, bool, bool]:
    """(mbits, emin, max, has_inf, has_negative_zero) — the fields the rounding kernels read."""
    return fmt.mbits, fmt.emin, fmt.max, fmt.has_inf, fmt.has_negative_zero


def round_values(v: np.ndarray, fmt: Format) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    mbits, emin, maxval, has_inf, neg_zero = format_params(fmt)
    a = np.abs(v)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        finite_nz = np.isfinite(a) & (a != 0)
        _, e = np.frexp(np.where(finite_nz, a, 1.0))
        e = np.maximum(e - 1, emin)
        q = np.ldexp(1.0, e - mbits)
        r = np.where(finite_nz, np.rint(a / q) * q, a)
        over = r > maxval
        r = np.where(over, np.inf if has_inf else np.nan, r)
        r = np.where(np.isnan(v), np.nan, r)
        negative = np.signbit(v) & ~np.isnan(v)
        if not neg_zero:
            negative &= r != 0
        return np.where(negative, -r, r)
