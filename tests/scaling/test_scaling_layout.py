"""The 128x4 swizzled scale layout and packed FP4 codes."""

from __future__ import annotations

import numpy as np
import pytest

import fp8ref
from fp8ref.scaling import swizzle_scales, unswizzle_scales


def cublas_offset(r: int, c: int, padded_cols: int) -> int:
    """cuBLAS "1D block scaling factors layout": the byte offset of the scale of row r, scale column c."""
    return ((r // 128) * (padded_cols // 4) + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4


@pytest.mark.parametrize("shape", [(1, 1), (128, 4), (130, 5), (256, 8), (300, 17), (0, 3)])
def test_swizzle_matches_cublas_offsets_and_round_trips(shape):
    rng = np.random.default_rng(0)
    s = rng.integers(0, 256, shape).astype(np.uint8)
    sw = swizzle_scales(s)
    rows, cols = -(-shape[0] // 128) * 128, -(-shape[1] // 4) * 4
    assert sw.shape == (rows // 128, cols // 4, 32, 4, 4)
    flat = sw.reshape(-1)
    for r in range(rows):
        for c in range(cols):
            want = s[r, c] if r < shape[0] and c < shape[1] else 0
            assert flat[cublas_offset(r, c, cols)] == want
    assert np.array_equal(unswizzle_scales(sw, shape), s)
    assert np.array_equal(unswizzle_scales(flat, shape), s)  # the flat buffer a GEMM reads


def test_unswizzle_is_te_recover_swizzled_scales():
    """TE's _recover_swizzled_scales: reshape (R'/128, C'/4, 32, 4, 4), permute (0, 3, 2, 1, 4)."""
    rng = np.random.default_rng(1)
    buf = rng.integers(0, 256, 2 * 3 * 512).astype(np.uint8)
    te = buf.reshape(2, 3, 32, 4, 4).transpose(0, 3, 2, 1, 4).reshape(256, 12)[:200, :10]
    assert np.array_equal(unswizzle_scales(buf, (200, 10)), te)


def test_swizzle_of_nvfp4_and_mx_scales():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((256, 128)).astype(np.float32)
    for st in (fp8ref.quantize_scaled(x, fp8ref.E2M1, fp8ref.NVFP4()),
               fp8ref.quantize_scaled(x, fp8ref.E4M3, fp8ref.MX(rule="RCEIL"))):
        sw = swizzle_scales(st.scale_codes)
        assert np.array_equal(unswizzle_scales(sw, st.scale_codes.shape), st.scale_codes)


def test_swizzle_bad_input():
    with pytest.raises(ValueError, match="layout"):
        swizzle_scales(np.zeros((4, 4), np.uint8), layout="32x4")
    with pytest.raises(ValueError, match="scale_codes"):
        swizzle_scales(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="swizzled"):
        unswizzle_scales(np.zeros(100, np.uint8), (4, 4))
    with pytest.raises(ValueError, match="shape"):
        unswizzle_scales(np.zeros(512, np.uint8), 4)


def test_pack_fp4_low_nibble_first():
    codes = np.array([[1, 2, 3, 4], [15, 0, 8, 7]], np.uint8)
    p = fp8ref.pack_fp4(codes)
    assert p.tolist() == [[0x21, 0x43], [0x0F, 0x78]]
    assert np.array_equal(fp8ref.unpack_fp4(p), codes)
    p0 = fp8ref.pack_fp4(codes, axis=0)
    assert p0.tolist() == [[0xF1, 0x02, 0x83, 0x74]]
    assert np.array_equal(fp8ref.unpack_fp4(p0, axis=0), codes)


def test_pack_round_trips_random():
    rng = np.random.default_rng(3)
    c = rng.integers(0, 16, (3, 6, 8)).astype(np.uint8)
    for ax in (0, 1, 2, -1):
        if c.shape[ax] % 2 == 0:
            assert np.array_equal(fp8ref.unpack_fp4(fp8ref.pack_fp4(c, axis=ax), axis=ax), c)
    b = rng.integers(0, 256, (5, 4)).astype(np.uint8)
    assert np.array_equal(fp8ref.pack_fp4(fp8ref.unpack_fp4(b)), b)


@pytest.mark.parametrize("bad, name", [
    (np.zeros(3, np.uint8), "odd"), (np.full(2, 16, np.uint8), "4-bit"), (np.zeros(2, np.int32), "uint8"),
])
def test_pack_bad_input(bad, name):
    with pytest.raises(ValueError, match=name):
        fp8ref.pack_fp4(bad)
    with pytest.raises(ValueError, match="axis"):
        fp8ref.pack_fp4(np.zeros((2, 2), np.uint8), axis=2)
