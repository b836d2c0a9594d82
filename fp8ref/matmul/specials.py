"""NaN and Inf results of the exact product, by counting special terms with 0/1 matrix products.

Term ``(i, k, j)`` has the exact value ``a[i,k] * sa(i,k) * b[k,j] * sb(k,j)``. With IEEE rules it is NaN
when a factor is NaN or one factor is zero and another infinite, +-Inf when a factor is infinite (and it is
not NaN) with the sign of the product, else finite. The exact sum is NaN if a term is NaN or both +Inf and
-Inf terms occur, +-Inf if only infinite terms of one sign occur, else finite. ``A' = a * sa`` in float64
has exactly the IEEE class of ``a * sa`` (the product is exact), so the classes of the terms are those of
``A'[i,k] * B'[k,j]``.
"""

from __future__ import annotations

import numpy as np


def _f(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64)


def special_results(ap: np.ndarray, bp: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """(M, N) float64: NaN, +Inf or -Inf where the exact sum (plus bias) is special, 0 elsewhere; ``ap`` and
    ``bp`` are the scaled operands ``a * sa`` and ``b * sb`` in float64."""
    na, nb = np.isnan(ap), np.isnan(bp)
    ia_p, ia_n = ap == np.inf, ap == -np.inf
    ib_p, ib_n = bp == np.inf, bp == -np.inf
    za, zb = ap == 0, bp == 0
    pa, ma = ap > 0, ap < 0  # include the infinities, exclude NaN
    pb, mb = bp > 0, bp < 0
    m, n = ap.shape[0], bp.shape[1]
    if ap.shape[1]:
        nan = _f(na) @ np.ones((ap.shape[1], n)) + np.ones((m, ap.shape[1])) @ _f(nb)
        nan = nan + _f(ia_p | ia_n) @ _f(zb) + _f(za) @ _f(ib_p | ib_n)
        nan = nan > 0
        pinf = (_f(ia_p) @ _f(pb) + _f(ia_n) @ _f(mb) + _f(pa) @ _f(ib_p) + _f(ma) @ _f(ib_n)) > 0
        ninf = (_f(ia_p) @ _f(mb) + _f(ia_n) @ _f(pb) + _f(pa) @ _f(ib_n) + _f(ma) @ _f(ib_p)) > 0
    else:
        nan = pinf = ninf = np.zeros((m, n), bool)
    if bias is not None:
        nan = nan | np.isnan(bias)[None, :]
        pinf = pinf | (bias == np.inf)[None, :]
        ninf = ninf | (bias == -np.inf)[None, :]
    out = np.zeros((m, n))
    out[pinf] = np.inf
    out[ninf] = -np.inf
    out[nan | (pinf & ninf)] = np.nan
    return out
