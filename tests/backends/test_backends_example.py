"""The example third-party backend (examples/third_party_backend) agrees with the reference bit for bit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8ref
from fp8ref.formats import FP8_FORMATS

SRC = Path(__file__).resolve().parents[2] / "examples" / "third_party_backend" / "src"
FORMATS = [f.name for f in FP8_FORMATS]


@pytest.fixture(scope="module")
def table_backend():
    sys.path.insert(0, str(SRC))
    try:
        from fp8ref_example_backend import TableBackend
    finally:
        sys.path.remove(str(SRC))
    return TableBackend()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("saturate", [False, True])
def test_every_float16_and_boundaries(table_backend, fmt: str, saturate: bool) -> None:
    x16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    np.testing.assert_array_equal(table_backend.quantize(x16, fmt, saturate=saturate),
                                  fp8ref.quantize(x16, fmt, saturate=saturate))
    v = fp8ref.format(fmt).values()
    v = np.unique(np.abs(v[np.isfinite(v)]))
    mids = (v[:-1] + v[1:]) / 2
    f = fp8ref.format(fmt)
    pts = np.concatenate([v, mids, [f.max * 1.0625, f.max * 1.03125, f.max * 1.1, 1e300, np.inf, np.nan]])
    x = np.concatenate([pts, np.nextafter(pts, np.inf), np.nextafter(pts, 0)])
    x = np.concatenate([x, -x])
    np.testing.assert_array_equal(table_backend.quantize(x, fmt, saturate=saturate),
                                  fp8ref.quantize(x, fmt, saturate=saturate))


@settings(max_examples=50)
@given(bits=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=32))
def test_random_float64(table_backend, bits: list[int]) -> None:
    x = np.array(bits, dtype=np.uint64).view(np.float64)
    for fmt in FORMATS:
        for sat in (False, True):
            np.testing.assert_array_equal(table_backend.quantize(x, fmt, saturate=sat),
                                          fp8ref.quantize(x, fmt, saturate=sat))


@pytest.mark.parametrize("fmt", FORMATS)
def test_dequantize_and_amax(table_backend, fmt: str) -> None:
    codes = np.arange(256, dtype=np.uint8)
    got = table_backend.dequantize(codes, fmt)
    ref = fp8ref.dequantize(codes, fmt)
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
    x = np.array([[1.0, -3.0, np.nan], [2.0, -0.5, 4.0]], np.float32)
    for nan in ("propagate", "ignore"):
        for axis in (None, 0, 1):
            np.testing.assert_array_equal(table_backend.amax(x, axis, nan=nan), fp8ref.amax(x, axis, nan=nan))
