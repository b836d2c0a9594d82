"""NVFP4 (TE and torchao profiles) and DeepGEMM block casts: the kernel against the exact transcriptions of
the sources (fp8ref.scaling.oracle_blockscaled), against torchao itself where it is installed, the
special values, and bad input."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import fp8ref
from fp8ref import E2M1, E4M3, E5M2, NVFP4, DeepGEMM, quantize_scaled
from fp8ref.scaling import oracle_blockscaled as ob


def wide(rng: np.random.Generator, m: int, n: int, lo: float = -12.0, hi: float = 12.0) -> np.ndarray:
    """Random float32 data with a wide dynamic range: normals times 2**U(lo, hi) per element, with
    exact zeros, exact E2M1 midpoints after scaling are left to chance."""
    x = rng.standard_normal((m, n)) * np.exp2(rng.uniform(lo, hi, (m, n)))
    x[rng.random((m, n)) < 0.03] = 0.0
    return x.astype(np.float32)


def _blocks(x: np.ndarray, tile: tuple[int, int]):
    br, bc = tile
    m, n = x.shape
    for bi in range(-(-m // br)):
        for bj in range(-(-n // bc)):
            rows = slice(bi * br, (bi + 1) * br)
            cols = slice(bj * bc, (bj + 1) * bc)
            blk = x[rows, cols]
            yield bi, bj, rows, cols, [float(v) for v in blk.reshape(-1)], float(np.abs(blk).max())


def oracle_te(x: np.ndarray, tile: tuple[int, int], global_amax: float | None = None):
    amax = float(np.abs(x).max()) if global_amax is None else float(np.float32(global_amax))
    enc, dec = ob.te_global(amax)
    codes = np.zeros(x.shape, np.uint8)
    scodes = np.zeros((-(-x.shape[0] // tile[0]), -(-x.shape[1] // tile[1])), np.uint8)
    for bi, bj, rows, cols, vals, vmax in _blocks(x, tile):
        sc, cs, _ = ob.te_block(vals, vmax, enc, dec)
        scodes[bi, bj] = sc
        codes[rows, cols] = np.array(cs, np.uint8).reshape(codes[rows, cols].shape)
    return codes, scodes, dec


def oracle_torchao(x: np.ndarray, two_level: bool):
    pts = ob._div(float(np.abs(x).max()), 2688.0) if two_level else None
    codes = np.zeros(x.shape, np.uint8)
    scodes = np.zeros((x.shape[0], x.shape[1] // 16), np.uint8)
    for bi, bj, rows, cols, vals, vmax in _blocks(x, (1, 16)):
        sc, cs, _ = ob.torchao_block(vals, vmax, pts)
        scodes[bi, bj] = sc
        codes[rows, cols] = cs
    return codes, scodes, pts


@pytest.mark.parametrize("tile", [(1, 16), (16, 16)])
@pytest.mark.parametrize("seed", range(4))
def test_te_equals_exact_transcription(tile, seed):
    rng = np.random.default_rng(seed)
    x = wide(rng, 32, 64)
    st = quantize_scaled(x, E2M1, NVFP4(profile="te", tile=tile))
    codes, scodes, dec = oracle_te(x, tile)
    assert np.array_equal(st.codes, codes)
    assert np.array_equal(st.scale_codes, scodes)
    assert st.global_scale == np.float32(dec)
    assert st.granularity == "block" and st.block == tile
    assert np.array_equal(st.scale.view(np.uint32),
                          fp8ref.dequantize(scodes, E4M3, dtype=np.float32).view(np.uint32))


@pytest.mark.parametrize("two_level", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_torchao_equals_exact_transcription(two_level, seed):
    rng = np.random.default_rng(100 + seed)
    x = wide(rng, 32, 64, -6, 6)
    st = quantize_scaled(x, E2M1, NVFP4(profile="torchao", two_level=two_level))
    codes, scodes, pts = oracle_torchao(x, two_level)
    assert np.array_equal(st.codes, codes)
    assert np.array_equal(st.scale_codes, scodes)
    assert (st.global_scale is None) if pts is None else (st.global_scale == np.float32(pts))


def test_te_global_amax_and_single_level():
    rng = np.random.default_rng(7)
    x = wide(rng, 16, 32, -4, 4)
    st = quantize_scaled(x, E2M1, NVFP4(global_amax=1000.0))
    codes, scodes, dec = oracle_te(x, (1, 16), global_amax=1000.0)
    assert np.array_equal(st.codes, codes) and np.array_equal(st.scale_codes, scodes)
    single = quantize_scaled(x, E2M1, NVFP4(two_level=False))  # TE's rule with global scale 1 (amax 2688)
    codes, scodes, _ = oracle_te(x, (1, 16), global_amax=2688.0)
    assert single.global_scale is None
    assert np.array_equal(single.codes, codes) and np.array_equal(single.scale_codes, scodes)


def test_te_profile_differs_from_older_rounding_order():
    """The current TE reference folds 1/6 into the global multiplier; ``vec_max / 6 * enc`` (older
    versions) rounds differently for some amaxes: the kernel follows the current one."""
    enc, _ = ob.te_global(3.0)
    diff = []
    for k in range(1, 4000):
        v = float(np.float32(k * 0.001))
        new = ob.f32(ob.Fraction(v) * ob.Fraction(ob._mul(enc, ob._div(1.0, 6.0))))
        old = ob._mul(ob._div(v, 6.0), enc)
        if new != old and ob.e4m3(new) != ob.e4m3(old):
            diff.append(v)
    assert diff, "no amax tells the two orders apart"
    x = np.zeros((1, 32), np.float32)
    x[0, 0] = 3.0
    x[0, 16] = diff[0]
    st = quantize_scaled(x, E2M1, NVFP4())
    s_new = ob.e4m3(ob._mul(diff[0], ob._mul(enc, ob._div(1.0, 6.0))))
    assert st.scale_codes[0, 1] == s_new


def test_te_specials():
    x = np.zeros((1, 48), np.float32)
    x[0, :16] = np.linspace(-1, 1, 16)
    x[0, 1] = -0.0
    st = quantize_scaled(x, E2M1, NVFP4())
    assert st.codes[0, 1] == 0  # TE's table sends -0.0 to code 0 (torchao and fp8ref.quantize: 8)
    assert np.all(st.codes[0, 16:] == 0) and np.all(st.scale_codes[0, 1:] == 0)  # zero blocks
    z = quantize_scaled(np.zeros((2, 16), np.float32), E2M1, NVFP4())
    assert z.global_scale == np.float32(1) / np.float32(np.finfo(np.float32).max)  # amax 0: enc FLT_MAX
    assert np.all(z.codes == 0) and np.all(z.quant_scale == np.finfo(np.float32).max)
    inf = x.copy()
    inf[0, 20] = np.inf
    s = quantize_scaled(inf, E2M1, NVFP4())
    assert s.global_scale == 1.0  # 2688 / Inf = 0 -> 1
    assert s.scale_codes[0, 1] == 0x7E and s.codes[0, 20] == 7
    nan = x.copy()
    nan[0, 20] = np.nan
    s = quantize_scaled(nan, E2M1, NVFP4())
    assert np.isnan(s.global_scale) and np.all(s.codes == 0) and np.all(s.scale_codes == 0x7F)
    s = quantize_scaled(nan, E2M1, NVFP4(global_amax=1.0))  # a calibrated amax: only the NaN block
    assert s.scale_codes[0, 1] == 0x7F and np.all(s.codes[0, 16:32] == 0) and s.scale_codes[0, 0] != 0x7F


def test_torchao_specials_hand_worked():
    x = np.linspace(-3, 3, 32).astype(np.float32).reshape(1, 32)
    x[0, 3] = np.nan
    st = quantize_scaled(x, E2M1, NVFP4(profile="torchao", two_level=False))
    # NaN block: scale NaN (0x7F), every element torchao's bit formula on torch's NaN 0x7FF00000 -> 4
    assert st.scale_codes[0, 0] == 0x7F and np.all(st.codes[0, :16] == 4)
    z = quantize_scaled(np.zeros((1, 32), np.float32), E2M1, NVFP4(profile="torchao"))
    # two level, amax 0: 0 / 0 is x86's negative default NaN -> scale 0xFF, codes 4 | 8
    assert np.all(z.scale_codes == 0xFF) and np.all(z.codes == 12)
    neg0 = np.full((1, 16), -0.0, np.float32)
    neg0[0, 0] = 1
    s = quantize_scaled(neg0, E2M1, NVFP4(profile="torchao", two_level=False))
    assert s.codes[0, 0] == 7 and np.all(s.codes[0, 1:] == 8)


# ---- torchao itself ---------------------------------------------------------------------------------------
def _torchao():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
            from torchao.prototype.mx_formats.nvfp4_tensor import nvfp4_quantize, per_tensor_amax_to_scale
    except Exception as exc:  # noqa: BLE001 - any failure to import means: not available here
        pytest.skip(f"torchao's nvfp4_quantize is not importable here ({exc}); install torchao>=0.18")
    return torch, nvfp4_quantize, per_tensor_amax_to_scale


def _torchao_run(x: np.ndarray, two_level: bool):
    torch, nvfp4_quantize, per_tensor_amax_to_scale = _torchao()
    t = torch.from_numpy(x)
    pts = per_tensor_amax_to_scale(torch.max(torch.abs(t))) if two_level else None
    s, d = nvfp4_quantize(t, 16, pts)
    return s.view(torch.uint8).numpy(), d.numpy(), (None if pts is None else np.float32(pts.item()))


@pytest.mark.parametrize("two_level", [True, False])
@pytest.mark.parametrize("case", ["wide", "narrow", "specials", "zeros"])
def test_torchao_byte_identical(two_level, case):
    rng = np.random.default_rng(11)
    if case == "wide":
        x = wide(rng, 64, 256, -20, 20)
    elif case == "narrow":
        x = wide(rng, 64, 256, -2, 2)
    elif case == "zeros":
        x = np.zeros((4, 32), np.float32)
    else:
        x = wide(rng, 16, 64, -4, 4)
        x[0, 3] = np.nan
        x[1, 17] = -np.nan
        x[2, 5] = np.inf
        x[3, 40] = -np.inf
        x[4, :16] = -0.0
    if case == "specials" and two_level:
        x[2, 5] = 7.0  # an Inf amax gives Inf / Inf in torchao's scale: kept out of the two-level check
    scodes, packed, pts = _torchao_run(x, two_level)
    st = quantize_scaled(x, E2M1, NVFP4(profile="torchao", two_level=two_level))
    assert np.array_equal(st.scale_codes, scodes)
    assert np.array_equal(fp8ref.pack_fp4(st.codes), packed)
    if pts is not None:
        assert st.global_scale.view(np.uint32) == pts.view(np.uint32)


# ---- DeepGEMM -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tile", [(1, 128), (128, 128)])
@pytest.mark.parametrize("ue8m0", [False, True])
def test_deepgemm_fp8_equals_exact_transcription(tile, ue8m0):
    rng = np.random.default_rng(3)
    x = wide(rng, 130, 200, -30, 30)  # partial edge blocks: DeepGEMM pads with zeros
    x[5, :128] = 1e-6  # amax below the 1e-4 clamp
    st = quantize_scaled(x, E4M3, DeepGEMM(tile=tile, ue8m0=ue8m0))
    for bi, bj, rows, cols, vals, vmax in _blocks(x, tile):
        sf, codes = ob.deepgemm_block(vals, vmax, ue8m0, fp4=False)
        assert st.scale[bi, bj] == np.float32(sf)
        assert st.codes[rows, cols].reshape(-1).tolist() == codes
    if ue8m0:
        assert np.array_equal(fp8ref.scaling.mx.e8m0_to_f32(st.scale_codes), st.scale)
    else:
        assert st.scale_codes is None


def test_deepgemm_fp4_ties_toward_zero():
    rng = np.random.default_rng(4)
    x = wide(rng, 8, 256, -5, 5)
    x[0, :8] = [6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]  # amax 6: sf 1, every midpoint exact
    x[0, 8:16] = [-0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5.0, -0.1]
    x[0, 16:128] = 0.1
    st = quantize_scaled(x, E2M1, DeepGEMM(element=E2M1))
    assert st.codes[0, :16].tolist() == [7, 0, 1, 2, 3, 4, 5, 6, 0, 9, 10, 11, 12, 13, 14, 0]
    for ue8m0 in (False, True):
        st = quantize_scaled(x, E2M1, DeepGEMM(element=E2M1, ue8m0=ue8m0))
        for bi, bj, rows, cols, vals, vmax in _blocks(x, (1, 128)):
            sf, codes = ob.deepgemm_block(vals, vmax, ue8m0, fp4=True)
            assert st.scale[bi, bj] == np.float32(sf)
            assert st.codes[rows, cols].reshape(-1).tolist() == codes


def test_deepgemm_specials():
    x = np.ones((2, 128), np.float32)
    x[0, 3] = np.nan
    x[1, 3] = np.inf
    st = quantize_scaled(x, E4M3, DeepGEMM())
    assert np.isnan(st.scale[0, 0]) and np.all(np.isin(st.codes[0], [0x7F, 0xFF]))
    # x * (1 / Inf) = 0; Inf * 0 is NaN (x86's default NaN, negative)
    assert np.isinf(st.scale[1, 0]) and st.codes[1, 3] == 0xFF and np.all(np.delete(st.codes[1], 3) == 0)
    st = quantize_scaled(x, E4M3, DeepGEMM(ue8m0=True))
    assert st.scale_codes[0, 0] == 254 and st.scale_codes[1, 0] == 254  # NaN and Inf: clamp to 254
    assert st.codes[1, 3] == 0x7E  # Inf * 2**-127 = Inf: torch 2.13's cast saturates to 448


# ---- Hadamard, stochastic rounding ----------------------------------------------------------------------
def test_hadamard_matrix_and_transform():
    from fp8ref.scaling.blockscaled import hadamard16, te_hadamard_matrix

    t = te_hadamard_matrix()
    assert np.array_equal(t @ t.T, np.eye(16, dtype=np.float32))  # orthogonal: (1/4)^2 * 16 = 1
    assert t[0].tolist() == [0.25] * 16 and t[3, 0] == -0.25  # row 3 carries TE's sign -1
    rng = np.random.default_rng(0)
    x = rng.integers(-64, 64, (8, 32)).astype(np.float32)  # integer sums: exact in any order
    want = (x.reshape(-1, 16).astype(np.float64) @ t.astype(np.float64)).reshape(x.shape)
    assert np.array_equal(hadamard16(x), want.astype(np.float32))
    st = quantize_scaled(x, E2M1, NVFP4(hadamard=True))
    ref = quantize_scaled(hadamard16(x), E2M1, NVFP4())
    assert np.array_equal(st.codes, ref.codes) and np.array_equal(st.scale_codes, ref.scale_codes)


def test_stochastic_rounding_reproducible_and_between_neighbours():
    rng = np.random.default_rng(5)
    x = wide(rng, 16, 64, -3, 3)
    r = NVFP4(rounding="stochastic", seed=42)
    a, b = quantize_scaled(x, E2M1, r), quantize_scaled(x, E2M1, r)
    assert np.array_equal(a.codes, b.codes)
    c = quantize_scaled(x, E2M1, NVFP4(rounding="stochastic", seed=43))
    assert not np.array_equal(a.codes, c.codes)
    near = quantize_scaled(x, E2M1, NVFP4())
    assert np.array_equal(a.scale_codes, near.scale_codes)
    y = np.clip(x * a.expand(a.quant_scale), -6, 6)
    lo = fp8ref.quantize(y, E2M1, rounding="toward_negative", saturate=True)
    hi = fp8ref.quantize(y, E2M1, rounding="toward_positive", saturate=True)
    va, vlo, vhi = (fp8ref.dequantize(c, E2M1) for c in (a.codes, lo, hi))
    assert np.all((va == vlo) | (va == vhi))


# ---- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, name", [
    ({"profile": "cublas"}, "profile"), ({"tile": (1, 32)}, "tile"), ({"tile": 16}, "tile"),
    ({"profile": "torchao", "tile": (16, 16)}, "tile"), ({"global_amax": float("nan")}, "global_amax"),
    ({"global_amax": -1.0}, "global_amax"), ({"global_amax": "3"}, "global_amax"),
    ({"two_level": 1}, "two_level"), ({"rounding": "toward_zero"}, "rounding"), ({"seed": -1}, "seed"),
    ({"two_level": False, "global_amax": 3.0}, "global_amax"),
])
def test_nvfp4_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        NVFP4(**kwargs)


@pytest.mark.parametrize("kwargs, name", [
    ({"tile": (1, 32)}, "tile"), ({"ue8m0": "yes"}, "ue8m0"), ({"element": E5M2}, "element"),
    ({"element": E2M1, "tile": (128, 128)}, "tile"),
])
def test_deepgemm_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DeepGEMM(**kwargs)


def test_bad_shapes_and_formats():
    x = np.ones((4, 40), np.float32)
    with pytest.raises(ValueError, match="tile"):
        quantize_scaled(x, E2M1, NVFP4())
    st = quantize_scaled(x, E2M1, NVFP4(pad=True))
    assert st.scale.shape == (4, 3)
    with pytest.raises(ValueError, match="fmt"):
        quantize_scaled(np.ones((4, 32), np.float32), E4M3, NVFP4())
    with pytest.raises(ValueError, match="fmt"):
        quantize_scaled(np.ones((4, 32), np.float32), E2M1, DeepGEMM())
    with pytest.raises(ValueError, match="x"):
        quantize_scaled(np.ones(32, np.float32), E2M1, NVFP4())
    with pytest.raises(ValueError, match="rounding"):
        quantize_scaled(np.ones((4, 32), np.float32), E2M1, NVFP4(), rounding="toward_zero")


@pytest.mark.parametrize("tile", [(1, 16), (16, 16)])
def test_parallel_launch_equals_small_pieces(tile):
    """A tensor above the one-thread threshold (2**17 elements) gives the codes of its 64-row pieces
    (one global amax for all)."""
    rng = np.random.default_rng(9)
    x = wide(rng, 512, 512)
    r = NVFP4(tile=tile, global_amax=float(np.abs(x).max()))
    big = quantize_scaled(x, E2M1, r)
    for lo in range(0, 512, 64):
        part = quantize_scaled(x[lo:lo + 64], E2M1, r)
        assert np.array_equal(big.codes[lo:lo + 64], part.codes)
        g = lo // tile[0]
        assert np.array_equal(big.scale_codes[g:g + part.scale_codes.shape[0]], part.scale_codes)


def test_partial_tiles_are_zero_padding():
    rng = np.random.default_rng(10)
    x = wide(rng, 20, 40, -3, 3)
    st = quantize_scaled(x, E2M1, NVFP4(tile=(16, 16), pad=True))
    xp = np.zeros((32, 48), np.float32)
    xp[:20, :40] = x
    codes, scodes, _ = oracle_te(xp, (16, 16))
    assert np.array_equal(st.codes, codes[:20, :40]) and np.array_equal(st.scale_codes, scodes)


def test_other_input_dtypes_are_cast_to_float32_first():
    import ml_dtypes

    rng = np.random.default_rng(12)
    x = wide(rng, 8, 32, -3, 3)
    ref = quantize_scaled(x, E2M1, NVFP4())
    x64 = x.astype(np.float64) * (1 + 2.0 ** -40)  # rounds back to x in float32
    for xin, want in ((x64, x), (x.astype(np.float16), x.astype(np.float16).astype(np.float32)),
                      (x.astype(ml_dtypes.bfloat16), x.astype(ml_dtypes.bfloat16).astype(np.float32))):
        got = quantize_scaled(xin, E2M1, NVFP4())
        exp = ref if want is x else quantize_scaled(want, E2M1, NVFP4())
        assert np.array_equal(got.codes, exp.codes) and np.array_equal(got.scale_codes, exp.scale_codes)


@functools.cache
def _clamp_rules():
    """The element rules as the sources write them, clamp first (``clamp(y, -6, 6)``, then the cast)."""
    from numba import njit, prange

    from fp8ref.cast.encode import bits_to_f32, encode_rne_f32
    from fp8ref.scaling import blockscaled_kernels as k

    @njit(inline="always")
    def clamp6(y):
        six = np.float32(6.0)
        y = -six if y < -six else y  # NaN passes the clamp
        return six if y > six else y

    @njit(parallel=True)
    def mismatches(start, count, pq):
        bad = 0
        for i in prange(count):
            u = np.int64(start) + i
            y = bits_to_f32(np.int32(u - (np.int64(1) << 32) if u >= (np.int64(1) << 31) else u))
            z = clamp6(y)
            te = np.int64(0) if (z != z) | (z == np.float32(0)) else np.int64(encode_rne_f32(z, pq))
            tao = np.int64(k.torchao_nan_code(z)) if z != z else np.int64(encode_rne_f32(z, pq))
            bad += (k._te_fp4(y, pq) != te) + (k._torchao_fp4(y, pq) != tao)
        return bad

    return mismatches


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_element_clamp_is_the_saturation_of_the_encoder_on_every_float32():
    """The kernels' TE and torchao element rules leave the sources' clamp to +-6 to the saturating E2M1
    encoder: both give the same code for all 2**32 float32 bit patterns."""
    from fp8ref.cast.encode import encoder_params

    mismatches = _clamp_rules()
    pq = encoder_params(E2M1, "nearest_even", True)
    chunk = 1 << 28
    assert sum(int(mismatches(s, chunk, pq)) for s in range(0, 1 << 32, chunk)) == 0


def test_element_clamp_is_the_saturation_of_the_encoder_near_six():
    """The same on every float32 from 4 to 8 and beyond (the values the clamp changes), Inf and NaN."""
    from fp8ref.cast.encode import encoder_params

    mismatches = _clamp_rules()
    pq = encoder_params(E2M1, "nearest_even", True)
    four = int(np.float32(4.0).view(np.uint32))
    assert int(mismatches(four, (1 << 24), pq)) == 0  # [4, 16)
    assert int(mismatches(four | (1 << 31), (1 << 24), pq)) == 0  # (-16, -4]
    assert int(mismatches(0x7F7F0000, 0x810000, pq)) == 0  # the largest finite, Inf, the NaNs
