"""accumulate="exact" equals the Fraction oracle (fp8ref.matmul.oracle) on random small inputs."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8ref
from fp8ref.matmul.oracle import scaled_mm_oracle
from tests.matmul.helpers import IN_FORMATS, OUT_FORMATS, a_grid_block, b_grid_block, expand

GRANS = ("tensor", "row", "1x128", "128x128", "1x32")
BIAS_DTYPES = (None, np.float32, np.float16, ml_dtypes.bfloat16)


def _scale_values(draw, shape, special: bool) -> np.ndarray:
    kind = draw(st.sampled_from(["pow2", "pow2-narrow", "float32", "mixed"]))
    size = int(np.prod(shape))
    if kind.startswith("pow2"):
        lim = 40 if kind == "pow2" else 3  # narrow: the block scales fold into the operands (one product)
        vals = [2.0 ** draw(st.integers(-lim, lim)) * draw(st.sampled_from([1, -1])) for _ in range(size)]
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
        if draw(st.booleans()) and k >= 2:  # cancellation: a = [x, -x], b = [y; y] gives an exact 0
            h = k // 2
            x = a[:, :h]
            a[:, h:2 * h] = np.where(x & 0x7F, x ^ np.uint8(0x80), x)
            b[h:2 * h] = b[:h]
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


def _vals(codes: np.ndarray, fmt) -> np.ndarray:
    return fmt.values()[codes]


def test_cancellation_to_zero_is_positive_zero() -> None:
    a = np.array([[0x38, 0xB8, 0x80, 0x80]], dtype=np.uint8)  # 1, -1, -0, -0
    b = np.array([[0x40], [0x40], [0x38], [0x38]], dtype=np.uint8)  # 2, 2, 1, 1
    for out in OUT_FORMATS:
        r = fp8ref.scaled_mm(a, b, -3.0, 0.5, out_dtype=out).astype(np.float64)
        assert r[0, 0] == 0 and not np.signbit(r[0, 0])
    # all terms -0 and a -0 bias: still +0 (an exact zero is +0)
    a2 = np.array([[0x80, 0x80]], dtype=np.uint8)
    b2 = np.array([[0x38], [0x38]], dtype=np.uint8)
    r = fp8ref.scaled_mm(a2, b2, bias=np.array([-0.0], np.float32))
    assert r[0, 0] == 0 and not np.signbit(r[0, 0])


def test_tiny_negative_result_keeps_its_sign() -> None:
    a = np.array([[0x01]], dtype=np.uint8)  # 2^-9
    b = np.array([[0x81]], dtype=np.uint8)  # -2^-9
    r = fp8ref.scaled_mm(a, b, 2.0**-100, 1.0, out_dtype=fp8ref.FP16)
    assert r[0, 0] == 0 and np.signbit(r[0, 0])
    r = fp8ref.scaled_mm(a, b, 2.0**-100, 1.0, out_dtype=fp8ref.E4M3FNUZ)
    assert r.view(np.uint8)[0, 0] == 0  # FNUZ has no -0


def test_output_overflow() -> None:
    a = np.full((1, 4), 0x7E, dtype=np.uint8)  # 448
    b = np.full((4, 1), 0x7E, dtype=np.uint8)
    assert np.isnan(fp8ref.scaled_mm(a, b, out_dtype=fp8ref.E4M3).astype(np.float32)[0, 0])
    assert fp8ref.scaled_mm(a, b, out_dtype=fp8ref.E5M2).astype(np.float32)[0, 0] == np.inf
    assert fp8ref.scaled_mm(a, b, out_dtype=fp8ref.FP16)[0, 0] == np.inf
    assert np.isnan(fp8ref.scaled_mm(a, b, out_dtype=fp8ref.E4M3FNUZ).astype(np.float32)[0, 0])
    # the threshold is the rounding boundary: 464 rounds to 448 (tie to even), just above goes to NaN
    one = np.array([[0x38]], dtype=np.uint8)
    assert fp8ref.scaled_mm(one, one, 464.0, 1.0, out_dtype=fp8ref.E4M3).astype(np.float32)[0, 0] == 448
    r = fp8ref.scaled_mm(one, one, np.nextafter(np.float32(464), np.float32(500)), 1.0, out_dtype=fp8ref.E4M3)
    assert np.isnan(r.astype(np.float32)[0, 0])
    big = fp8ref.scaled_mm(one, one, 3e38, 3e38)
    assert big[0, 0] == np.inf


def test_single_rounding_not_double() -> None:
    # exact value 1 + 2^-8 + 2^-40: rounding to float64 first would give a bf16 tie (1 + 2^-8 -> 1),
    # the single rounding goes up to 1 + 2^-7
    a = np.array([[0x38, 0x18, 0x18]], dtype=np.uint8)  # 1, 2^-4, 2^-4
    b = np.array([[0x38], [0x18], [0x01]], dtype=np.uint8)  # 1, 2^-4, 2^-9
    r = fp8ref.scaled_mm(a, b, 1.0, 1.0, out_dtype=fp8ref.BF16, bias=np.array([-2.0**-13], np.float32))
    want = scaled_mm_oracle(a, fp8ref.E4M3, b, fp8ref.E4M3, np.ones((1, 3)), np.ones((3, 1)),
                            np.array([-2.0**-13]), None, fp8ref.BF16)
    assert float(r[0, 0]) == want[0, 0]


@pytest.mark.parametrize("fa,fb", [(fa, fb) for fa in IN_FORMATS for fb in IN_FORMATS])
def test_adversarial_dynamic_range(fa, fb) -> None:
    """Largest and smallest magnitudes mixed in one dot product: the split plan must stay exact."""
    rng = np.random.default_rng(7)
    k = 300
    va, vb = fa.values(), fb.values()
    fin_a = np.nonzero(np.isfinite(va) & (va != 0))[0]
    fin_b = np.nonzero(np.isfinite(vb) & (vb != 0))[0]
    a = rng.choice(fin_a, (3, k)).astype(np.uint8)
    b = rng.choice(fin_b, (k, 2)).astype(np.uint8)
    a[:, 0] = fin_a[np.argmax(np.abs(va[fin_a]))]
    a[:, 1] = fin_a[np.argmin(np.abs(va[fin_a]))]
    sa = np.array([[1.0], [2.0**-30], [3.0]], np.float32)
    for out in (fp8ref.FP32, fp8ref.BF16):
        got = fp8ref.scaled_mm(a, b, sa, 1.0, a_format=fa, b_format=fb, out_dtype=out).astype(np.float64)
        want = scaled_mm_oracle(a, fa, b, fb, np.repeat(sa.astype(np.float64), k, 1), np.ones((k, 2)), None,
                                None, out)
        np.testing.assert_array_equal(got, want)


def test_long_k_beyond_the_float64_bound() -> None:
    """E4M3 x E4M3 with K = 200000 > 171196: the K range is chunked; compare with an exact integer sum."""
    rng = np.random.default_rng(3)
    k = 200_000
    a = rng.choice([0x7E, 0x01, 0xFE, 0x81, 0x3A], (1, k)).astype(np.uint8)
    b = rng.choice([0x7E, 0x01, 0x81, 0x39], (k, 1)).astype(np.uint8)
    got = fp8ref.scaled_mm(a, b, out_dtype=fp8ref.FP32)
    ia = (_vals(a[0], fp8ref.E4M3) * 2**9).astype(np.int64)
    ib = (_vals(b[:, 0], fp8ref.E4M3) * 2**9).astype(np.int64)
    exact = sum(int(x) * int(y) for x, y in zip(ia.tolist(), ib.tolist(), strict=True))
    from fractions import Fraction

    from fp8ref.matmul.oracle import round_exact

    assert float(got[0, 0]) == round_exact(Fraction(exact, 2**18), fp8ref.FP32)


def test_parallel_kernels_equal_serial_and_oracle(monkeypatch) -> None:
    """From 2^20 elements the decode and epilogue kernels run in parallel: same results as the serial ones."""
    import fp8ref.matmul.exact as ex

    rng = np.random.default_rng(17)
    m, k, n = 1024, 24, 1024
    fa, fb = fp8ref.E5M2, fp8ref.E4M3
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    b = rng.integers(0, 256, (k, n), dtype=np.uint8)
    a[rng.random((m, k)) < 0.9] &= 0x7B  # mostly finite, some NaN/Inf codes left
    sa = (rng.random((m, 1)) * 3).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float16)
    kw = dict(a_format=fa, b_format=fb, bias=bias, out_dtype=fp8ref.E4M3, scale_result=np.float32(0.7))
    par = fp8ref.scaled_mm(a, b, sa, 1.5, **kw).view(np.uint8)
    monkeypatch.setattr(ex, "_PARALLEL", 1 << 62)
    ser = fp8ref.scaled_mm(a, b, sa, 1.5, **kw).view(np.uint8)
    np.testing.assert_array_equal(par, ser)
    rows = rng.choice(m, 4, replace=False)
    cols = rng.choice(n, 4, replace=False)
    want = scaled_mm_oracle(a[rows], fa, b[:, cols], fb, np.repeat(sa[rows].astype(np.float64), k, 1),
                            np.full((k, 4), 1.5), bias[cols].astype(np.float64), float(np.float32(0.7)),
                            fp8ref.E4M3)
    got = par[np.ix_(rows, cols)].view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    assert ((got == want) | (np.isnan(got) & np.isnan(want))).all()


def test_power_of_two_block_scales_fold_into_one_product(monkeypatch) -> None:
    import fp8ref.matmul.exact as ex

    rng = np.random.default_rng(23)
    m, k, n = 5, 96, 4
    a = (rng.standard_normal((m, k)) * 4).astype(np.float32).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    b = (rng.standard_normal((k, n)) * 4).astype(np.float32).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    sa = rng.integers(120, 131, (m, 3)).astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)  # MX: 2^-7 .. 2^3
    sb = rng.integers(120, 131, (3, n)).astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)
    calls = []
    terms = ex.exact_terms
    monkeypatch.setattr(ex, "exact_terms", lambda *x, **y: calls.append(1) or terms(*x, **y))
    got = fp8ref.scaled_mm(a, b, sa, sb, out_dtype=ml_dtypes.bfloat16)
    assert not calls  # folded: no per-segment terms
    want = scaled_mm_oracle(a, fp8ref.E4M3, b, fp8ref.E4M3, expand(sa.astype(np.float64), (1, 32), (m, k)),
                            expand(sb.astype(np.float64), (32, 1), (k, n)), None, None, fp8ref.BF16)
    np.testing.assert_array_equal(got.astype(np.float64), want)
    wide = sa.view(np.uint8).copy()
    wide[0, 0] = 20  # 2^-107: the spread breaks the bound, per-segment terms instead
    got2 = fp8ref.scaled_mm(a, b, wide.view(ml_dtypes.float8_e8m0fnu), sb, out_dtype=ml_dtypes.bfloat16)
    assert calls
    want2 = scaled_mm_oracle(a, fp8ref.E4M3, b, fp8ref.E4M3,
                             expand(wide.view(ml_dtypes.float8_e8m0fnu).astype(np.float64), (1, 32), (m, k)),
                             expand(sb.astype(np.float64), (32, 1), (k, n)), None, None, fp8ref.BF16)
    np.testing.assert_array_equal(got2.astype(np.float64), want2)


@pytest.mark.parametrize("fa", [fp8ref.E2M1, fp8ref.E3M2, fp8ref.E8M0])
def test_other_operand_formats(fa) -> None:
    """Any format of at most 8 bits: MX elements, and E8M0 (254 binades: the general term-by-term path)."""
    rng = np.random.default_rng(29)
    a = rng.integers(0, fa.n_codes, (3, 40)).astype(np.uint8)
    b = rng.integers(0, 256, (40, 2)).astype(np.uint8)
    for out in (fp8ref.FP32, fp8ref.E5M2):
        got = fp8ref.scaled_mm(a, b, 0.75, 1.0, a_format=fa, b_format=fp8ref.E5M2, out_dtype=out)
        want = scaled_mm_oracle(a, fa, b, fp8ref.E5M2, np.full((3, 40), 0.75), np.ones((40, 2)), None, None,
                                out)
        g = got.astype(np.float64)
        assert ((g == want) | (np.isnan(g) & np.isnan(want))).all()
