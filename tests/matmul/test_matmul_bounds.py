"""The exactness bounds of docs/matmul.md: the K limits per format pair and the split plans."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import fp8ref
from fp8ref.matmul.exact import plan, profile
from fp8ref.matmul.oracle import round_exact

# docs/matmul.md, "Bounds per format pair": the largest K with K * max_a * max_b <= 2^53 * sub_a * sub_b
DOC_TABLE = {
    ("E4M3", "E4M3"): 171196, ("E4M3", "E4M3FNUZ"): 159783, ("E4M3FNUZ", "E4M3FNUZ"): 149130,
    ("E4M3", "E5M2"): 10, ("E4M3FNUZ", "E5M2"): 9, ("E4M3", "E5M2FNUZ"): 5, ("E4M3FNUZ", "E5M2FNUZ"): 4,
    ("E5M2", "E5M2"): 0, ("E5M2", "E5M2FNUZ"): 0, ("E5M2FNUZ", "E5M2FNUZ"): 0,
}


def k_max(fa, fb) -> int:
    ra = Fraction(fa.max_exact) / Fraction(fa.min_subnormal)
    rb = Fraction(fb.max_exact) / Fraction(fb.min_subnormal)
    return math.floor(Fraction(2**53) / (ra * rb))


@pytest.mark.parametrize("pair", sorted(DOC_TABLE))
def test_doc_table(pair) -> None:
    fa, fb = (fp8ref.format(p) for p in pair)
    assert k_max(fa, fb) == DOC_TABLE[pair] == k_max(fb, fa)


def _all_codes(fmt) -> np.ndarray:
    return np.arange(256, dtype=np.uint8).reshape(16, 16)


@pytest.mark.parametrize("fa,fb", [(fp8ref.E4M3, fp8ref.E4M3), (fp8ref.E4M3FNUZ, fp8ref.E4M3),
                                   (fp8ref.E4M3FNUZ, fp8ref.E4M3FNUZ)])
def test_one_blas_call_exactly_up_to_the_bound(fa, fb) -> None:
    pa, pb = profile(_all_codes(fa), fa), profile(_all_codes(fb), fb)
    km = k_max(fa, fb)
    assert plan(pa, pb, km).n_products == 1 and plan(pa, pb, km).k_chunk == km
    p = plan(pa, pb, km + 1)
    assert p.n_products > 1 or p.k_chunk < km + 1


def test_e5m2_plans() -> None:
    f = fp8ref.E5M2
    pa = profile(_all_codes(f), f)
    assert plan(pa, pa, 2048).n_products == 4  # both operands cover 2^-16 .. 57344
    narrow = np.array([[0x3C, 0x3D, 0x01, 0xBC]], np.uint8)  # 1, 1.25, 2^-16, -1: 2^16.3 ratio
    pn = profile(narrow, f)
    assert plan(pn, pn, 2048).n_products == 1  # 2 * 16.3 + 11 <= 53


def test_bound_is_tight_for_e4m3() -> None:
    """At K = 171196, (K-1) * 448^2 + 2^-18 is still a float64; the bias cancels the large part exactly."""
    k = DOC_TABLE[("E4M3", "E4M3")]
    a = np.full((1, k), 0x7E, np.uint8)
    a[0, -1] = 0x01
    b = a.T.copy()
    bias = np.array([-(k - 1) * 448.0**2], np.float32)
    assert float(bias[0]) == -(k - 1) * 448.0**2
    r = fp8ref.scaled_mm(a, b, bias=bias)
    assert r[0, 0] == 2.0**-18
    k2 = k + 1000  # beyond the bound: chunked, still exact
    a2 = np.full((1, k2), 0x7E, np.uint8)
    a2[0, -1] = 0x01
    bias2 = np.array([-(k2 - 1) * 448.0**2], np.float32)
    assert float(bias2[0]) == -(k2 - 1) * 448.0**2
    r2 = fp8ref.scaled_mm(a2, a2.T.copy(), bias=bias2)
    assert r2[0, 0] == 2.0**-18
    assert round_exact(Fraction(1, 2**18), fp8ref.FP32) == 2.0**-18
