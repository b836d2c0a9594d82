"""The Numba kernels equal the exact oracle: boundary sets for every format, mode, saturation and input
dtype, and hypothesis on arbitrary inputs weighted to midpoints, +-1 ulp, overflow edges and subnormals."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8ref
from fp8ref.cast.cases import boundary_values
from fp8ref.cast.oracle import ROUNDING_MODES, STOCHASTIC_MODES, NotRepresentableError, round_exact
from fp8ref.formats import Format

FORMATS = [fp8ref.E4M3, fp8ref.E5M2, fp8ref.E4M3FNUZ, fp8ref.E5M2FNUZ, fp8ref.E8M0, fp8ref.E2M1, fp8ref.E3M2,
           fp8ref.exmy(3, 4), fp8ref.exmy(4, 3, has_subnormals=False, name="E4M3NOSUB"), fp8ref.exmy(2, 0),
           fp8ref.exmy(6, 1, nan="fnuz"), fp8ref.exmy(5, 2, nan="all_ones")]
WIDE = [fp8ref.FP16, fp8ref.BF16]
DTYPES = {"f64": np.float64, "f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16}


def oracle(x: np.ndarray, fmt: Format, rounding: str, saturate: bool, rbits: np.ndarray | None,
           r: int) -> np.ndarray:
    """Codes from the oracle; -1 where the format cannot encode the result."""
    res = np.empty(x.size, dtype=np.int64)
    for i, v in enumerate(x.reshape(-1)):
        try:
            res[i] = round_exact(float(v), fmt, rounding, saturate,
                                 int(rbits[i]) if rbits is not None else 0, r)
        except NotRepresentableError:
            res[i] = -1
    return res


def check(x: np.ndarray, fmt: Format, rounding: str, saturate: bool, rbits: np.ndarray | None = None,
          r: int = 0) -> None:
    want = oracle(x, fmt, rounding, saturate, rbits, r)
    kw = {"srbits": rbits, "srnumbits": r} if rbits is not None else {}
    bad = want < 0
    if bad.any():
        with pytest.raises(ValueError, match="no encoding"):
            fp8ref.quantize(x, fmt, rounding=rounding, saturate=saturate, **kw)
        x, want = x[~bad], want[~bad]
        if rbits is not None:
            kw["srbits"] = rbits[~bad]
    got = fp8ref.quantize(x, fmt, rounding=rounding, saturate=saturate, **kw)
    assert got.dtype == (np.uint8 if fmt.bits <= 8 else np.uint16)
    mismatch = np.nonzero(got.astype(np.int64) != want)[0]
    assert mismatch.size == 0, [(float(x[i]), int(got[i]), int(want[i])) for i in mismatch[:5]]


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_boundary_sets_deterministic_modes(fmt: Format, dtype: str) -> None:
    x = boundary_values(fmt, DTYPES[dtype])
    for rounding in ROUNDING_MODES[:5]:
        for saturate in (True, False):
            check(x, fmt, rounding, saturate)


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
@pytest.mark.parametrize("dtype", ["f64", "f32"])
@pytest.mark.parametrize("r", [1, 3, 13, 32])
def test_boundary_sets_stochastic_modes(fmt: Format, dtype: str, r: int) -> None:
    x = boundary_values(fmt, DTYPES[dtype])
    rng = np.random.default_rng(r)
    rbits = rng.integers(0, 1 << r, size=x.size)
    # extreme bits too: 0 and 2**r - 1 decide the rounding of every inexact value
    rbits[::7] = 0
    rbits[3::7] = (1 << r) - 1
    for rounding in STOCHASTIC_MODES:
        check(x, fmt, rounding, saturate=bool(r % 2), rbits=rbits, r=r)


@pytest.mark.parametrize("fmt", WIDE, ids=str)
@pytest.mark.parametrize("dtype", ["f64", "f32"])
def test_wide_targets(fmt: Format, dtype: str) -> None:
    x = boundary_values(fmt, DTYPES[dtype], max_values=256)
    for rounding in ROUNDING_MODES[:5]:
        check(x, fmt, rounding, saturate=False)
    rbits = np.random.default_rng(0).integers(0, 1 << 20, size=x.size)
    for rounding in STOCHASTIC_MODES:
        check(x, fmt, rounding, saturate=True, rbits=rbits, r=20)


def test_fp16_target_equals_numpy() -> None:
    """NumPy's float64 -> float16 cast rounds once, nearest-even, with Inf on overflow."""
    x = boundary_values(fp8ref.FP16, np.float64, max_values=2048)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).view(np.uint16)
    got = fp8ref.quantize(x, fp8ref.FP16, saturate=False)
    ok = ~np.isnan(x)
    assert np.array_equal(got[ok], ref[ok])


def test_bf16_target_equals_ml_dtypes() -> None:
    x = boundary_values(fp8ref.BF16, np.float32, max_values=2048)
    ref = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    got = fp8ref.quantize(x, fp8ref.BF16, saturate=False)
    ok = ~np.isnan(x)
    assert np.array_equal(got[ok], ref[ok])


# ---- hypothesis ------------------------------------------------------------------------------------
def _near_boundary(fmt: Format) -> st.SearchStrategy[float]:
    """A value near a boundary of ``fmt``: a code's value or a midpoint, nudged by a few ulps of float64,
    float32 or float16, or scaled to the overflow / underflow edges."""
    vals = fmt.values()
    fin = np.unique(np.abs(vals[np.isfinite(vals)]))
    mids = (fin[:-1] + fin[1:]) / 2
    pts = np.concatenate([fin, mids, [fmt.max * 1.0625, fmt.min_subnormal / 2]])

    @st.composite
    def strat(draw: st.DrawFn) -> float:
        v = float(pts[draw(st.integers(0, pts.size - 1))])
        steps = draw(st.integers(-3, 3))
        for _ in range(abs(steps)):
            v = math.nextafter(v, math.inf if steps > 0 else -math.inf)
        if draw(st.booleans()):
            v = v * (1 + draw(st.sampled_from([2.0**-60, 2.0**-30, 2.0**-12, 2.0**-5])))
        return -v if draw(st.booleans()) else v

    return strat()


_FMT = st.sampled_from(FORMATS)


@st.composite
def _case(draw: st.DrawFn):
    fmt = draw(_FMT)
    dtype = draw(st.sampled_from(list(DTYPES)))
    n = draw(st.integers(1, 24))
    elems = st.one_of(_near_boundary(fmt), _near_boundary(fmt),
                      st.floats(allow_nan=True, allow_infinity=True, width=64),
                      st.floats(min_value=-4 * fmt.max, max_value=4 * fmt.max))
    vals = draw(st.lists(elems, min_size=n, max_size=n))
    with np.errstate(over="ignore"):
        x = np.array(vals, dtype=np.float64).astype(DTYPES[dtype])
    rounding = draw(st.sampled_from(ROUNDING_MODES))
    saturate = draw(st.booleans())
    r = draw(st.integers(1, 32))
    rbits = None
    if rounding in STOCHASTIC_MODES:
        rbits = np.array(draw(st.lists(st.integers(0, (1 << r) - 1), min_size=n, max_size=n)), dtype=np.int64)
    return x, fmt, rounding, saturate, rbits, r


@settings(max_examples=200)
@given(_case())
def test_hypothesis_kernels_equal_oracle(case) -> None:
    x, fmt, rounding, saturate, rbits, r = case
    check(x, fmt, rounding, saturate, rbits, r if rbits is not None else 0)


@settings(max_examples=100)
@given(st.lists(st.floats(width=64), min_size=1, max_size=40), st.sampled_from(ROUNDING_MODES[:5]))
def test_hypothesis_float64_is_rounded_once(vals: list[float], rounding: str) -> None:
    """float64 input is rounded directly: the same as the oracle on the exact value, for E4M3 and E5M2."""
    x = np.array(vals, dtype=np.float64)
    for fmt in (fp8ref.E4M3, fp8ref.E5M2):
        check(x, fmt, rounding, saturate=False)
