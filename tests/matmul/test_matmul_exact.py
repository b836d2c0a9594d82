"""accumulate="exact" equals the Fraction oracle (fp8ref.matmul.oracle) on random small inputs."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8ref
from fp8ref.matmul.oracle import scaled_mm_oracle
from tests.matmul.helpers import IN_FORMATS, OUT_FORMATS, a_grid_block, b_grid_block, expand

GRANS = ("tensor", "row", "1x128", "128x128", "1x32")
BIAS_DTYPES = (None, np.float32, np.float16, ml_dtypes.bfloat16)


def _scale_values(draw, shape, special: bool) -> np.ndarray:
    kind = draw(st.sampled_from(["pow2", "float32", "mixed"]))
    size = int(np.prod(shape))
    if kind == "pow2":
        vals = [2.0 ** draw(st.integers(-40, 40)) * draw(st.sampled_from([1, -1])) for _ in range(size)]
    else:
        fl = st.floats(min_value=-1e6, max_value=1e6, width=32, allow_nan=False, allow_infinity=False)
        vals = [draw(fl) for _ in range(size)]
    arr = np.array(vals, dtype=np.float32).reshape(shape)
    if special and size and draw(st.booleans()):
        arr.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from([0.0, np.inf, -np.inf, np.nan]))
    return arr


@st.composite
def cases(draw, special: bool = False):
    fa, fb = draw(st.sampled_from(IN_FORMATS)), draw(st.sampled_from(IN_FORMATS))
    out = draw(st.sampled_from(OUT_FORMATS))
    m, n = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    k = draw(st.sampled_from([0, 1, 2, 5, 16, 33, 64, 130]))
    ga, gb = draw(st.sampled_from(GRANS)), draw(st.sampled_from(GRANS))
    codes = st.integers(0, 255)
    if special:
        a = np.array(draw(st.lists(codes, min_size=m * k, max_size=m * k)), dtype=np.uint8).reshape(m, k)
        b = np.array(draw(st.lists(codes, min_size=k * n, max_size=k * n)), dtype=np.uint8).reshape(k, n)
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        a = rng.integers(0, 256, (m, k), dtype=np.uint8)
        b = rng.integers(0, 256, (k, n), dtype=np.uint8)
        for arr, f in ((a, fa), (b, fb)):
            bad = ~np.isfinite(f.values())
            arr[bad[arr]] = 0
        if draw(st.booleans()) and m and k and n:  # force cancellation: a row and its negation
            b[:, 0] = b[:, 0]
            a[0, :] = a[0, :]
            a = np.concatenate([a, a[:1] ^ np.uint8(0x80)], axis=0) if fa.nan != "fnuz" else a
            m = a.shape[0]
    (sha, bla), (shb, blb) = a_grid_block(ga, m, k), b_grid_block(gb, k, n)
    sa = _scale_values(draw, sha if ga != "tensor" else (), special)
    sb = _scale_values(draw, shb if gb != "tensor" else (), special)
    bias_dt = draw(st.sampled_from(BIAS_DTYPES))
    bias = None
    if bias_dt is not None:
        fl = st.floats(min_value=-1e4, max_value=1e4, width=32)
        if special:
            fl = st.one_of(fl, st.sampled_from([np.nan, np.inf, -np.inf]))
        bias = np.array([draw(fl) for _ in range(n)], dtype=np.float32).astype(bias_dt)
    sr = None
    if out.bits == 8 and draw(st.booleans()):
        sr = draw(st.sampled_from([1.0, 0.5, 3.0, 2.0**-20, 1e-3, -7.25]
                                  + ([0.0, np.inf, np.nan] if special else [])))
    return fa, fb, out, a, b, (ga, sa, bla), (gb, sb, blb), bias, sr


def _check(case) -> None:
    fa, fb, out, a, b, (ga, sa, bla), (gb, sb, blb), bias, sr = case
    m, k = a.shape
    n = b.shape[1]
    got = fp8ref.scaled_mm(a, b, sa, sb, a_format=fa, b_format=fb, bias=bias, out_dtype=out,
                           scale_result=sr)
    assert got.shape == (m, n)
    assert got.dtype == out.ml_dtype
    sa_full = expand(sa, bla, (m, k)) if ga != "tensor" else np.full((m, k), float(sa))
    sb_full = expand(sb, blb, (k, n)) if gb != "tensor" else np.full((k, n), float(sb))
    want = scaled_mm_oracle(a, fa, b, fb, sa_full, sb_full,
                            None if bias is None else bias.astype(np.float64), sr, out)
    g = got.astype(np.float64)
    same = (g == want) & (np.signbit(g) == np.signbit(want)) | (np.isnan(g) & np.isnan(want))
    assert same.all(), (g[~same], want[~same], np.argwhere(~same))


@settings(max_examples=150, deadline=None)
@given(cases())
def test_exact_equals_oracle(case) -> None:
    _check(case)


@settings(max_examples=100, deadline=None)
@given(cases(special=True))
def test_exact_equals_oracle_with_nan_inf(case) -> None:
    _check(case)
