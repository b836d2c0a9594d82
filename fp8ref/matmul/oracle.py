"""The specification of ``scaled_mm(..., accumulate="exact")`` in exact rational arithmetic.

Slow (Python ``Fraction`` per term); the fast path of :mod:`fp8ref.matmul.api` is tested equal to it.
Inputs are already normalised: per-element scale arrays (float64 holding the float32 / E8M0 values), the
bias as float64 values, ``scale_result`` as a float or ``None``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from fp8ref.formats import Format
from fp8ref.rounding import INF, NAN, NEAREST_EVEN, round_rational, target


def round_exact(x: Fraction, fmt: Format) -> float:
    """Round the rational ``x`` once to nearest even into ``fmt`` (IEEE overflow rule: beyond ``fmt.max``
    after rounding with unbounded exponent -> Inf if the format has it, else NaN). Returns a float; an
    exact zero is +0, a nonzero value that rounds to zero keeps its sign where the format has -0.
    The rounding is :func:`fp8ref.rounding.round_rational`."""
    if x == 0:
        return 0.0
    r = round_rational(x, target(fmt), NEAREST_EVEN, INF if fmt.has_inf else NAN)
    val = abs(float(r))
    if x < 0 and (val != 0 or fmt.has_negative_zero):
        return -val
    return val


def _round_special(v: float, fmt: Format) -> float:
    if math.isnan(v):
        return math.nan
    if math.isinf(v):
        return v if fmt.has_inf else math.nan
    if v == 0:
        return v if (fmt.has_negative_zero or not math.copysign(1.0, v) < 0) else 0.0
    return round_exact(Fraction(v), fmt)


def scaled_mm_oracle(a_codes: np.ndarray, a_fmt: Format, b_codes: np.ndarray, b_fmt: Format,
                     sa_full: np.ndarray, sb_full: np.ndarray, bias: np.ndarray | None,
                     scale_result: float | None, out_fmt: Format) -> np.ndarray:
    """(M, N) float64 array of the output values (the exact result rounded once into ``out_fmt``).

    Term ``(i,k,j)`` is ``a * sa[i,k] * b * sb[k,j]``: NaN if a factor is NaN or a zero meets an infinity,
    +-Inf if a factor is infinite, else the exact rational product. The sum over k plus ``bias[j]`` is NaN
    with a NaN term or with both infinities, +-Inf with infinite terms of one sign, else exact. An exact zero
    is +0. A finite nonzero ``scale_result`` divides exactly; a zero, infinite or NaN one divides the
    float64 nearest to the sum with IEEE rules. Then one rounding into ``out_fmt``.
    """
    m, k = a_codes.shape
    n = b_codes.shape[1]
    out = np.empty((m, n))
    av = [[a_fmt.decode(int(c)) for c in row] for row in a_codes]
    bv = [[b_fmt.decode(int(c)) for c in row] for row in b_codes]
    for i in range(m):
        for j in range(n):
            total = Fraction(0)
            nan = pinf = ninf = False
            factors_list = [(av[i][kk], float(sa_full[i, kk]), bv[kk][j], float(sb_full[kk, j]))
                            for kk in range(k)]
            if bias is not None:
                factors_list.append((float(bias[j]),))
            for factors in factors_list:
                if any(math.isnan(f) for f in factors):
                    nan = True
                    continue
                infs = [f for f in factors if math.isinf(f)]
                zeros = [f for f in factors if f == 0]
                if infs and zeros:
                    nan = True
                    continue
                if infs:
                    negative = sum(1 for f in factors if f < 0) % 2 == 1
                    if negative:
                        ninf = True
                    else:
                        pinf = True
                    continue
                prod = Fraction(1)
                for f in factors:
                    prod *= Fraction(f)
                total += prod
            if nan or (pinf and ninf):
                val: float | Fraction = math.nan
            elif pinf:
                val = math.inf
            elif ninf:
                val = -math.inf
            else:
                val = total
            if scale_result is not None:
                sr = float(scale_result)
                if isinstance(val, Fraction) and math.isfinite(sr) and sr != 0:
                    val = val / Fraction(sr)
                else:
                    fv = float(val) if isinstance(val, Fraction) else val
                    if isinstance(val, Fraction) and val == 0:
                        fv = 0.0
                    with np.errstate(all="ignore"):
                        val = float(np.float64(fv) / np.float64(sr))
            if isinstance(val, Fraction):
                out[i, j] = round_exact(val, out_fmt)
            else:
                out[i, j] = _round_special(val, out_fmt)
    return out
