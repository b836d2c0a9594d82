"""The casts of the wrapping backends, pinned rule by rule against the reference.

What a peer does is measured by its backend on the installed version (``backend.measured``,
fp8ref.backends.peer_probe), never assumed here. Each test computes the reference itself and checks that
(1) the measurement names what the peer does on this test's inputs, and (2) the backend returns exactly
``expected(x)``: the reference under the rules the measurement names (``FormatBehaviour.predict``), on
every float16 / bfloat16 input and on float32 boundaries and random bits. A peer release that changes
anything either changes the measurement consistently (and the suite stays green, with the new behaviour
reported) or breaks a rule these tests pin.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8ref
from fp8ref import backends
from fp8ref.formats import FP8_FORMATS

ml_dtypes = pytest.importorskip("ml_dtypes")

FORMATS = [f.name for f in FP8_FORMATS]
WRAPPERS = ["ml_dtypes", "torch-cpu"]


def _backend(name: str) -> backends.Backend:
    if name.startswith("torch"):
        pytest.importorskip("torch")
    return backends.get(name)


def expected(name: str, x: np.ndarray, fmt: str, saturate: bool) -> np.ndarray:
    """What backend ``name`` must return: the reference under the rules its measurement names."""
    return _backend(name).measured.behaviour(fmt).predict(x, saturate)


def _all16(dtype: str) -> np.ndarray:
    bits = np.arange(1 << 16, dtype=np.uint16)
    return bits.view(np.float16) if dtype == "float16" else bits.view(ml_dtypes.bfloat16)


def _boundaries(fmt: str) -> np.ndarray:
    """Every FP8 value, the midpoints between neighbours, and one float32 ulp either side of each."""
    v = fp8ref.format(fmt).values()
    v = np.unique(np.abs(v[np.isfinite(v)]))
    mids = (v[:-1] + v[1:]) / 2
    f = fp8ref.format(fmt)
    top = np.array([f.max, f.max * (1 + 2.0 ** -(f.mbits + 1)), f.max * 2, 1e30])
    pts = np.concatenate([v, mids, top]).astype(np.float32)
    near = np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)), np.nextafter(pts, np.float32(0))])
    specials = np.array([np.inf, np.nan, 0.0, 1e-30, 2.0 ** -30], np.float32)
    both = np.concatenate([near, specials])
    return np.concatenate([both, -both]).astype(np.float32)


@pytest.mark.parametrize("name", WRAPPERS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("saturate", [False, True])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_every_16bit_input(name: str, fmt: str, saturate: bool, dtype: str) -> None:
    be = _backend(name)
    x = _all16(dtype)
    got = be.quantize(x, fmt, saturate=saturate)
    np.testing.assert_array_equal(got, expected(name, x, fmt, saturate))


@pytest.mark.parametrize("name", WRAPPERS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("saturate", [False, True])
def test_float32_boundaries(name: str, fmt: str, saturate: bool) -> None:
    be = _backend(name)
    x = _boundaries(fmt)
    got = be.quantize(x, fmt, saturate=saturate)
    np.testing.assert_array_equal(got, expected(name, x, fmt, saturate))


@pytest.mark.parametrize("name", WRAPPERS)
@settings(max_examples=60)
@given(bits=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=64))
def test_float32_random(name: str, bits: list[int]) -> None:
    be = _backend(name)
    x = np.array(bits, dtype=np.uint32).view(np.float32)
    for fmt in FORMATS:
        for sat in (False, True):
            np.testing.assert_array_equal(be.quantize(x, fmt, saturate=sat), expected(name, x, fmt, sat))


def _double_rounding_inputs(fmt: str) -> np.ndarray:
    """float64 values just below / above each rounding midpoint: float32 rounds them onto the midpoint."""
    v = fp8ref.format(fmt).values()
    v = np.unique(np.abs(v[np.isfinite(v)]))
    mids = (v[:-1] + v[1:]) / 2
    x = np.concatenate([mids * (1 - 2.0 ** -40), mids * (1 + 2.0 ** -40)])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("name", WRAPPERS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_float64_rounding(name: str, fmt: str) -> None:
    """float64 input beside every rounding midpoint: the peer rounds it once (as the reference; ml_dtypes
    0.7) or to float32 first (ml_dtypes 0.6, torch 2.13), and the measurement says which."""
    be = _backend(name)
    x = _double_rounding_inputs(fmt)
    once = fp8ref.quantize(x, fmt, saturate=True)
    via32 = fp8ref.quantize(x.astype(np.float32), fmt, saturate=True)
    assert 0.2 < (once != via32).mean() < 0.8  # the inputs tell the two apart
    got = be.quantize(x, fmt, saturate=True)
    measured = be.measured.behaviour(fmt).float64
    if np.array_equal(got, once):
        assert measured == "once"
    elif np.array_equal(got, via32):
        assert measured == "via_float32"
    else:
        pytest.fail(f"{name} rounds float64 neither once nor through float32; measured {measured!r}")
    np.testing.assert_array_equal(got, expected(name, x, fmt, True))


@pytest.mark.parametrize("name", WRAPPERS)
def test_double_rounding_example(name: str) -> None:
    """ml_dtypes PR #401's example: -431.99999999999994 is nearer -416, but float32 rounds it to -432, a
    tie that goes to -448."""
    be = _backend(name)
    x = np.array([-431.99999999999994])
    assert fp8ref.quantize(x, "E4M3").tolist() == [0xFD]  # -416
    assert fp8ref.quantize(x.astype(np.float32), "E4M3").tolist() == [0xFE]  # -448
    want = {"once": [0xFD], "via_float32": [0xFE]}[be.measured.behaviour("E4M3").float64]
    assert be.quantize(x, "E4M3").tolist() == want


def _kind(codes: np.ndarray, x: np.ndarray, fmt: str) -> str:
    """How the codes of overflowing inputs ``x`` read, judged here with the reference: the reference's own
    non-saturating result, or its saturating one (+-max)."""
    if np.array_equal(codes, fp8ref.quantize(x, fmt, saturate=False)):
        return "reference"
    if np.array_equal(codes, fp8ref.quantize(x, fmt, saturate=True)):
        return "max"
    return "other"


@pytest.mark.parametrize("name", WRAPPERS)
def test_overflow_rules(name: str) -> None:
    be = _backend(name)
    x = np.array([464.0, 464.01, 512.0, np.inf, -np.inf, -1e9], np.float32)
    # saturate=True: clamp (+-max), NaN stays NaN
    assert be.quantize(x, "E4M3", saturate=True).tolist() == [0x7E, 0x7E, 0x7E, 0x7E, 0xFE, 0xFE]
    assert be.quantize(np.float32(np.nan), "E4M3", saturate=True).tolist() == 0x7F
    assert be.quantize(x, "E5M2", saturate=True).tolist() == [0x5F, 0x5F, 0x60, 0x7B, 0xFB, 0xFB]
    # saturate=False: the peer's own conversion, whatever the measurement found
    finite = np.array([464.01, 1e9, -1e9], np.float32)
    for fmt, over in [("E4M3", finite), ("E5M2", np.array([61440.0, 1e9, -1e9], np.float32)),
                      ("E4M3FNUZ", finite), ("E5M2FNUZ", np.array([61440.0, 1e9, -1e9], np.float32))]:
        b, ref = be.measured.behaviour(fmt), be.measured.reference_of(fmt)
        for what, xs in (("overflow", over), ("infinity", np.array([np.inf, -np.inf], np.float32))):
            got = be.quantize(xs, fmt, saturate=False)
            kind = _kind(got, xs, fmt)
            assert kind != "other", (fmt, what, got)
            assert getattr(b, what) == (getattr(ref, what) if kind == "reference" else "max"), (fmt, what)
            np.testing.assert_array_equal(got, expected(name, xs, fmt, False))
    nonsat = be.quantize(x, "E4M3", saturate=False).tolist()
    assert nonsat[0] == 0x7E  # 464 rounds to 448 (ties to even) before any overflow rule


@pytest.mark.parametrize("name", WRAPPERS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_codes(name: str, fmt: str) -> None:
    """The codes of NaN inputs (each input dtype, both saturation modes) are the measured ones, and the
    measurement's reference entry is the reference's."""
    be = _backend(name)
    b, ref = be.measured.behaviour(fmt), be.measured.reference_of(fmt)
    for dt in (np.float32, np.float64, np.float16, ml_dtypes.bfloat16):
        x = np.array([np.nan, -np.nan], dt)  # two elements: torch's scalar (not vectorised) paths
        assert tuple(fp8ref.quantize(x, fmt).tolist()) == ref.nan_codes
        for saturate in (False, True):
            assert tuple(be.quantize(x, fmt, saturate=saturate).tolist()) == b.nan_codes, (dt, saturate)


@pytest.mark.parametrize("name", WRAPPERS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dequantize_all_codes(name: str, fmt: str, dtype: str) -> None:
    """Every code decodes to the reference's value; NaN codes to the measured bit patterns, which the
    measurement compares with the reference's (the quiet NaN with the code's sign)."""
    be = _backend(name)
    codes = np.arange(256, dtype=np.uint8)
    got = be.dequantize(codes, fmt, dtype=dtype)
    ref = fp8ref.dequantize(codes, fmt, dtype=dtype)
    assert got.dtype == ref.dtype
    u = f"u{got.itemsize}"
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(u), ref[~nan].view(u))
    b, r = be.measured.behaviour(fmt), be.measured.reference_of(fmt)
    assert b.decode_mismatches == 0
    assert r.nan_bits(dtype) == dict(zip(codes[nan].tolist(), ref[nan].view(u).tolist(), strict=True))
    assert b.nan_bits(dtype) == dict(zip(codes[nan].tolist(), got[nan].view(u).tolist(), strict=True))
    np.testing.assert_array_equal(got.view(u), b.predict_dequantize(codes, dtype))


@pytest.mark.parametrize("name", WRAPPERS)
def test_quantize_arguments(name: str) -> None:
    be = _backend(name)
    x = np.array([1.0, 2.0], np.float32)
    with pytest.raises(backends.Unsupported):
        be.quantize(x, "E4M3", rounding="toward_zero")
    with pytest.raises(backends.Unsupported):
        be.quantize(x, "E4M3", rounding="stochastic", srbits=np.array([1, 2]), srnumbits=4)
    with pytest.raises(backends.Unsupported):
        be.quantize(x, "E8M0")
    with pytest.raises(ValueError, match="rounding"):
        be.quantize(x, "E4M3", rounding="nearest")
    with pytest.raises(ValueError, match="srbits"):
        be.quantize(x, "E4M3", srbits=np.array([1, 2]), srnumbits=4)
    with pytest.raises(ValueError, match="fmt"):
        be.quantize(x, "E9M9Z")
    with pytest.raises(TypeError, match="x"):
        be.quantize(np.array([1, 2]), "E4M3")
    with pytest.raises(TypeError, match="saturate"):
        be.quantize(x, "E4M3", saturate="yes")
    out = np.zeros(2, np.uint8)
    assert be.quantize(x, "E4M3", out=out) is out
    assert out.tolist() == [0x38, 0x40]
    with pytest.raises(ValueError, match="out"):
        be.quantize(x, "E4M3", out=np.zeros(3, np.uint8))
    assert be.quantize(1.0, "E4M3").tolist() == 0x38
    with pytest.raises(TypeError, match="codes"):
        be.dequantize(np.array([1.0]), "E4M3")
    with pytest.raises(ValueError, match="dtype"):
        be.dequantize(np.array([1], np.uint8), "E4M3", dtype=np.float16)
    ml = np.array([1.0, -2.0], np.float32).astype(ml_dtypes.float8_e4m3fn)
    assert be.dequantize(ml, "E4M3").tolist() == [1.0, -2.0]
