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
    ``bp`` are the scaled operands ``a * sa`` and ``b * sb`` in float64. The 0/1 products run only over the
    K indices where an operand has an infinity, so sparse specials cost little."""
    m, k = ap.shape
    n = bp.shape[1]
    nan = np.isnan(ap).any(axis=1)[:, None] | np.isnan(bp).any(axis=0)[None, :]
    pinf = np.zeros((m, n), bool)
    ninf = np.zeros((m, n), bool)
    ka = np.nonzero(np.isinf(ap).any(axis=0))[0]  # K indices with an infinite a'
    kb = np.nonzero(np.isinf(bp).any(axis=1))[0]  # K indices with an infinite b'
    if ka.size:
        a_, b_ = ap[:, ka], bp[ka, :]
        ia_p, ia_n = _f(a_ == np.inf), _f(a_ == -np.inf)
        nan |= ((ia_p + ia_n) @ _f(b_ == 0)) > 0
        pinf |= (ia_p @ _f(b_ > 0) + ia_n @ _f(b_ < 0)) > 0
        ninf |= (ia_p @ _f(b_ < 0) + ia_n @ _f(b_ > 0)) > 0
    if kb.size:
        a_, b_ = ap[:, kb], bp[kb, :]
        ib_p, ib_n = _f(b_ == np.inf), _f(b_ == -np.inf)
        nan |= (_f(a_ == 0) @ (ib_p + ib_n)) > 0
        pinf |= (_f(a_ > 0) @ ib_p + _f(a_ < 0) @ ib_n) > 0
        ninf |= (_f(a_ > 0) @ ib_n + _f(a_ < 0) @ ib_p) > 0
    if bias is not None:
        nan = nan | np.isnan(bias)[None, :]
        pinf = pinf | (bias == np.inf)[None, :]
        ninf = ninf | (bias == -np.inf)[None, :]
    out = np.zeros((m, n))
    out[pinf] = np.inf
    out[ninf] = -np.inf
    out[nan | (pinf & ninf)] = np.nan
    return out
