"""fp8ref against ml_dtypes, torch and gfloat on boundary sets. Every difference is one that
docs/casts.md ("Differences from other libraries") lists; each is asserted here, so a change in a peer
or in fp8ref shows up."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import fp8ref
from fp8ref.cast.cases import boundary_values
from fp8ref.formats import Format

OCP = [fp8ref.E4M3, fp8ref.E5M2, fp8ref.E4M3FNUZ, fp8ref.E5M2FNUZ]


def _ml(x: np.ndarray, fmt: Format) -> np.ndarray:
    with np.errstate(all="ignore"):
        return x.astype(fmt.ml_dtype).view(np.uint8)


def _overflow_to_max(codes: np.ndarray, x: np.ndarray, fmt: Format) -> np.ndarray:
    """The saturating result derived from a non-saturating one: results that are NaN/Inf for a non-NaN
    input become +-max."""
    vals = fmt.values()[codes]
    over = ~np.isfinite(vals) & ~np.isnan(x)
    sign = np.where(np.signbit(x.astype(np.float64)), fmt.sign_mask, 0)
    return np.where(over, fmt.max_code | sign, codes).astype(np.uint8)


# ---- ml_dtypes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [*OCP, fp8ref.E2M1, fp8ref.E2M3, fp8ref.E3M2], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16], ids=["f32", "f16", "bf16"])
def test_ml_dtypes_non_saturating(fmt: Format, dtype) -> None:
    x = boundary_values(fmt, dtype)
    if fmt.nan_code is None:  # ml_dtypes saturates the finite-only MX types; fp8ref raises (no NaN)
        x = x[np.isfinite(x.astype(np.float64))]
    ml = _ml(x, fmt)
    ours = fp8ref.quantize(x, fmt, saturate=fmt.nan_code is None)
    nan_in = np.isnan(x.astype(np.float64))
    assert np.array_equal(ours[~nan_in], ml[~nan_in])
    if fmt is fp8ref.E5M2:  # NaN payload: ml_dtypes 0x7E|sign, fp8ref (and torch) 0x7F|sign
        assert np.array_equal(ml[nan_in], ours[nan_in] - 1)
    else:
        assert np.array_equal(ml[nan_in], ours[nan_in])


@pytest.mark.parametrize("fmt", OCP, ids=str)
def test_ml_dtypes_derived_saturating(fmt: Format) -> None:
    x = boundary_values(fmt, np.float32)
    ours = fp8ref.quantize(x, fmt, saturate=True)
    ok = ~np.isnan(x)
    assert np.array_equal(ours[ok], _overflow_to_max(_ml(x, fmt), x, fmt)[ok])


def test_ml_dtypes_float64_double_rounding() -> None:
    """ml_dtypes rounds float64 through float32 (ml_dtypes PR #401); fp8ref rounds once. They differ
    exactly where the float64 value is within a float32 half-ulp of an E4M3 midpoint."""
    x = boundary_values(fp8ref.E4M3, np.float64)
    x = x[np.isfinite(x) & (np.abs(x) <= 448)]
    ours = fp8ref.quantize(x, "E4M3", saturate=False)
    assert np.array_equal(ours, fp8ref.quantize(x, "E4M3", saturate=False))
    via32 = fp8ref.quantize(x.astype(np.float32), "E4M3", saturate=False)
    assert np.array_equal(_ml(x, fp8ref.E4M3), via32)
    assert (ours != via32).sum() > 100
    assert _ml(np.array([-431.99999999999994]), fp8ref.E4M3)[0] == 0xFE  # -448
    assert fp8ref.quantize(np.array([-431.99999999999994]), "E4M3")[0] == 0xFD  # -416


def test_ml_dtypes_e8m0_ties() -> None:
    """E8M0: ml_dtypes rounds exact ties 1.5 * 2**e up (ml_dtypes PR #398), and float32 subnormal inputs
    in (2**-127, 1.5 * 2**-127) up to 2**-126; fp8ref rounds ties to the even code, as every other
    format, and those inputs to nearest. Nothing else differs (non-saturating, float32 input)."""
    x = boundary_values(fp8ref.E8M0, np.float32)
    ml = _ml(x, fp8ref.E8M0)
    ours = fp8ref.quantize(x, "E8M0", saturate=False)
    diff = ours != ml
    xd = x[diff].astype(np.float64)
    m, _ = np.frexp(xd)
    tie = m == 0.75
    assert tie.sum() > 100
    assert np.all(ours[diff][tie] % 2 == 0) and np.array_equal(ml[diff][tie], ours[diff][tie] + 1)
    sub = ~tie
    assert np.all((xd[sub] > 2.0**-127) & (xd[sub] < 1.5 * 2.0**-127))
    assert np.all(ours[diff][sub] == 0) and np.all(ml[diff][sub] == 1)
    assert fp8ref.quantize(np.array([3.0, 6.0]), "E8M0").tolist() == [128, 130]


# ---- torch ----------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
TORCH = {"E4M3": "float8_e4m3fn", "E5M2": "float8_e5m2", "E4M3FNUZ": "float8_e4m3fnuz",
         "E5M2FNUZ": "float8_e5m2fnuz"}


@pytest.mark.parametrize("fmt", OCP, ids=str)
def test_torch(fmt: Format) -> None:
    """torch 2.13 CPU: E4M3 saturates finite overflow and +-Inf to +-max; the other three do not.
    NaN codes agree (0x7F|sign, FNUZ 0x80)."""
    x = boundary_values(fmt, np.float32)
    t = torch.from_numpy(x).to(getattr(torch, TORCH[fmt.name])).view(torch.uint8).numpy()
    saturating = fmt is fp8ref.E4M3
    ours = fp8ref.quantize(x, fmt, saturate=saturating)
    assert np.array_equal(ours, t)
    other = fp8ref.quantize(x, fmt, saturate=not saturating)
    assert not np.array_equal(other, t)


def test_torch_float64_input_is_rounded_twice() -> None:
    x = torch.tensor([-431.99999999999994], dtype=torch.float64)
    assert x.to(torch.float8_e4m3fn).view(torch.uint8).item() == 0xFE
    assert int(fp8ref.quantize(x.numpy(), "E4M3")[0]) == 0xFD


# ---- gfloat ---------------------------------------------------------------------------------------
gfloat = pytest.importorskip("gfloat")
from gfloat import RoundMode, round_ndarray  # noqa: E402
from gfloat import formats as gf  # noqa: E402

GF_MODES = {"nearest_even": RoundMode.TiesToEven, "nearest_away": RoundMode.TiesToAway,
            "toward_zero": RoundMode.TowardZero, "toward_positive": RoundMode.TowardPositive,
            "toward_negative": RoundMode.TowardNegative, "stochastic": RoundMode.Stochastic,
            "stochastic_fast": RoundMode.StochasticFast, "stochastic_fastest": RoundMode.StochasticFastest}
GF_FORMATS = [
    (fp8ref.E4M3, gf.format_info_ocp_e4m3),
    (fp8ref.E5M2, gf.format_info_ocp_e5m2),
    (fp8ref.E4M3FNUZ, gf.format_info_p3109(8, 4, domain=gfloat.types.Domain.Finite)),
    (fp8ref.E5M2FNUZ, gf.format_info_p3109(8, 3, domain=gfloat.types.Domain.Finite)),
    (fp8ref.E2M1, gf.format_info_ocp_e2m1),
    (fp8ref.E2M3, gf.format_info_ocp_e2m3),
    (fp8ref.E3M2, gf.format_info_ocp_e3m2),
    (fp8ref.FP16, gf.format_info_binary16),
    (fp8ref.BF16, gf.format_info_bfloat16),
]


def _same_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.isnan(a) & np.isnan(b)) | ((a == b) & (np.signbit(a) == np.signbit(b)))


@pytest.mark.parametrize(("fmt", "fi"), GF_FORMATS, ids=[f.name for f, _ in GF_FORMATS])
@pytest.mark.parametrize("rounding", list(GF_MODES))
def test_gfloat_all_modes(fmt: Format, fi, rounding: str) -> None:
    """Same values as gfloat's round_ndarray for every mode and both saturation settings (inputs are
    float32 values held in float64, where gfloat's float arithmetic is exact; stochastic bits: 16)."""
    x = boundary_values(fmt, np.float32, max_values=512).astype(np.float64)
    if fmt.nan_code is None:  # gfloat raises where fp8ref raises: no NaN encoding
        x = x[np.isfinite(x) & (np.abs(x) <= fmt.max)]
    r = 16
    kw = {}
    if rounding.startswith("stochastic"):
        # stay where gfloat's float64 sum delta + R * 2**-r is exact
        x = x[(x == 0) | ~np.isfinite(x) | (np.abs(x) >= fmt.min_subnormal * 2.0**-8)]
        rbits = np.random.default_rng(1).integers(0, 1 << r, size=x.size)
        kw = {"srbits": rbits, "srnumbits": r}
    for saturate in (True, False):
        ref = round_ndarray(fi, x, GF_MODES[rounding], saturate, kw.get("srbits"), r)
        ours = fp8ref.dequantize(fp8ref.quantize(x, fmt, rounding=rounding, saturate=saturate, **kw), fmt,
                                 dtype=np.float64)
        same = _same_values(ours, ref)
        assert same.all(), [(x[i], ours[i], ref[i]) for i in np.nonzero(~same)[0][:5]]


def test_gfloat_nan_codes() -> None:
    """gfloat's E4M3 NaN (overflow without saturation, or NaN input) encodes as 0xFF whatever the sign;
    fp8ref keeps the sign: 0x7F for positive, 0xFF for negative."""
    fi = gf.format_info_ocp_e4m3
    assert gfloat.encode_float(fi, gfloat.round_float(fi, 500.0, RoundMode.TiesToEven, sat=False)) == 0xFF
    assert fp8ref.quantize(np.array([500.0, -500.0, math.nan]), "E4M3", saturate=False).tolist() == [
        0x7F, 0xFF, 0x7F]
