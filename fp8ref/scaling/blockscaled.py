"""NVFP4 and DeepGEMM block casts: the per-tensor part (global amax and scale, the Hadamard transform),
the call of the fused kernel, and the :class:`ScaledTensor` (docs/scaling.md section 7)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from fp8ref.formats import E2M1, E4M3, Format
from fp8ref.scaling.recipes import NVFP4, DeepGEMM
from fp8ref.scaling.tensor import ScaledTensor

F4_MAX = np.float32(6.0)
E4M3_MAX = np.float32(448.0)
E4M3_EPS = np.float32(2.0 ** -6)  # torch.finfo(torch.float8_e4m3fn).tiny, torchao's E4M3_EPS
FLT_MAX = np.float32(np.finfo(np.float32).max)
DEEPGEMM_AMAX_MIN = np.float32(1e-4)  # .clamp(1e-4) on a float32 tensor
# TransformerEngine get_wgrad_sign_vector (transformer_engine/pytorch/custom_recipes/reference_nvfp4.py)
TE_SIGNS = np.array([1, 1, 1, -1, 1, -1, -1, -1, -1, -1, -1, 1, -1, 1, -1, -1], dtype=np.float32)


def _f32(v: Any) -> np.float32:
    return np.float32(v)


def sylvester(n: int) -> np.ndarray:
    """The n x n Sylvester Hadamard matrix (n a power of two), entries +-1, float32."""
    h = np.ones((1, 1), dtype=np.float32)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def te_hadamard_matrix() -> np.ndarray:
    """TE's RHT matrix times its scale: ``diag(signs) @ H16 * (1 / sqrt(16))`` (entries +-0.25, exact)."""
    return (TE_SIGNS[:, None] * sylvester(16) * np.float32(0.25)).astype(np.float32)


def hadamard16(x: np.ndarray) -> np.ndarray:
    """TE's random Hadamard transform on the 16-element groups of the last axis of the float32 ``x``:
    ``out[:, j] = sum_i x[:, i] * T[i, j]`` with ``T = te_hadamard_matrix()``, each product exact (``T`` is
    +-1/4) and the sum accumulated in float32 from ``i = 0`` to 15 (TE's reference multiplies with a GEMM,
    whose order the library does not fix; the two agree whenever the partial sums are exact)."""
    if x.shape[-1] % 16:
        raise ValueError(f"hadamard: the last axis of x ({x.shape[-1]}) must be a multiple of 16")
    t = te_hadamard_matrix()
    g = x.reshape(-1, 16)
    out = np.zeros_like(g)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for i in range(16):
            out += g[:, i:i + 1] * t[i]
    return out.reshape(x.shape)


@functools.cache
def _E4M3_TABLE() -> np.ndarray:  # noqa: N802 - a constant made once
    return e4m3_table()


def e4m3_table() -> np.ndarray:
    """Decoded E4M3 codes as float32; the NaN codes as torch's ``float8_e4m3fn -> float32`` gives them
    (``0x7FF00000`` with the code's sign), whose payload torchao's FP4 converter reads."""
    from fp8ref.cast import dequantize

    t = dequantize(np.arange(256, dtype=np.uint8), E4M3, dtype=np.float32).copy()
    t.view(np.uint32)[[0x7F, 0xFF]] = [0x7FF00000, 0xFFF00000]
    return t


def _check_shape(w: np.ndarray, tile: tuple[int, int], pad: bool) -> None:
    if w.ndim != 2:
        raise ValueError(f"x must be 2-D for block scaling, got shape {w.shape}")
    m, n = w.shape
    if not pad and (m % tile[0] or n % tile[1]):
        raise ValueError(f"tile {tile} does not divide the shape {w.shape} of x; pass pad=True for partial "
                         "edge tiles (zero padding)")


def grid_max(agrid: np.ndarray) -> np.float32:
    """The largest of the block amaxes (NaN if one is NaN; 0 for none): the tensor's amax."""
    if agrid.size == 0:
        return np.float32(0)
    return np.array(agrid.view(np.int32).max(), dtype=np.int32).view(np.float32)[()]


def nvfp4_global(agrid: np.ndarray, recipe: NVFP4) -> tuple[int, np.float32, np.float32, np.float32 | None]:
    """(kernel profile, c1, c2, global decode scale) of an NVFP4 cast whose block amaxes are ``agrid``."""
    from fp8ref.scaling import blockscaled_kernels as k

    if not recipe.two_level:
        if recipe.profile == "torchao":
            return k.TORCHAO_1, _f32(1), _f32(1), None
        return k.TE, _f32(1.0) * (_f32(1) / F4_MAX), _f32(1), None  # TE's rule with the global scale 1
    amax = _f32(recipe.global_amax) if recipe.global_amax is not None else grid_max(agrid)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if recipe.profile == "torchao":  # per_tensor_amax_to_scale: amax / (448 * 6)
            if np.isnan(amax):  # torch.max(torch.abs(x)) with a NaN: the pattern 0xFFFFFFFF (x86 CPU)
                amax = np.array(0xFFFFFFFF, dtype=np.uint32).view(np.float32)[()]
            pts = amax / (E4M3_MAX * F4_MAX)
            return k.TORCHAO_2, pts, _f32(1) / pts, pts
        if np.isnan(amax):  # TE runs on the GPU, whose NaN results are the canonical 0x7FFFFFFF
            amax = np.array(0x7FFFFFFF, dtype=np.uint32).view(np.float32)[()]
        enc = E4M3_MAX * F4_MAX / amax
        enc = FLT_MAX if enc > FLT_MAX else enc  # torch.min: NaN stays
        enc = _f32(1) if enc == 0 else enc
        dec = _f32(1) / enc
        return k.TE, enc * (_f32(1) / F4_MAX), dec, dec


def quantize_blockscaled(a: np.ndarray, fmt: Format, recipe: NVFP4 | DeepGEMM) -> ScaledTensor:
    """``quantize_scaled`` for the NVFP4 and DeepGEMM recipes (``a``: the checked input array)."""
    from fp8ref.cast.encode import encoder_params
    from fp8ref.cast.kernels import threads_for
    from fp8ref.scaling import blockscaled_kernels as k
    from fp8ref.scaling.amax import amax_grid

    want = E2M1 if isinstance(recipe, NVFP4) else recipe.element
    if fmt != want:
        raise ValueError(f"fmt must be {want.name} for {type(recipe).__name__} (its element format), "
                         f"got {fmt.name}")
    with np.errstate(over="ignore"):
        w = np.ascontiguousarray(a, dtype=np.float32)  # the sources cast to float32 first (.float())
    pad = recipe.pad if isinstance(recipe, NVFP4) else True
    _check_shape(w, recipe.tile, pad)
    br, bc = recipe.tile
    qdec = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float32)
    global_scale = None
    scale_codes_kept = True
    pe = encoder_params(E4M3, "nearest_even", True)  # the NVFP4 block scales (unused by DeepGEMM's rule)
    if isinstance(recipe, NVFP4):
        if recipe.hadamard:
            w = hadamard16(w)
        fused = recipe.tile == (1, 16) and w.shape[1] % 16 == 0  # the flat 1x16 kernels
        if fused:
            agrid = np.empty((w.shape[0], w.shape[1] // 16), np.float32)
            with threads_for(w.size):
                k.block_amax_1x16(w.reshape(-1), agrid.reshape(-1))
        else:
            agrid = amax_grid(w, recipe.tile)
        profile, c1, c2, global_scale = nvfp4_global(agrid, recipe)
        smax, seps = (E4M3_MAX, -E4M3_MAX) if profile == k.TE else (E4M3_MAX, E4M3_EPS)
        element = k.EL_TE_FP4 if profile == k.TE else k.EL_TORCHAO_FP4
        pq = encoder_params(E2M1, "nearest_even", True)
    else:
        profile, c1, c2 = k.DEEPGEMM, _f32(want.max), _f32(1 if recipe.ue8m0 else 0)
        smax, seps = FLT_MAX, DEEPGEMM_AMAX_MIN
        if want == E4M3:
            element, pq = k.EL_E4M3, pe  # torch 2.13: saturating
        else:
            element, pq = k.EL_DEEPGEMM_FP4, encoder_params(E2M1, "nearest_even", True)
        scale_codes_kept = recipe.ue8m0
        fused = False
        agrid = amax_grid(w, recipe.tile)
    m, n = w.shape
    grid = (-(-m // br), -(-n // bc))
    codes = np.empty(w.shape, dtype=np.uint8)
    scodes = np.empty(grid, dtype=np.uint8)
    sgrid, qgrid = (np.empty(grid, dtype=np.float32) for _ in range(2))
    args = (profile, element, _f32(c1), _f32(c2), smax, seps, pe, _E4M3_TABLE(), pq, qdec)
    with threads_for(w.size):
        if isinstance(recipe, NVFP4) and fused:
            k.block_cast_1x16(w.reshape(-1), *args, codes.reshape(-1), agrid.reshape(-1), scodes.reshape(-1),
                              sgrid.reshape(-1), qgrid.reshape(-1))
        else:
            k.block_cast(w, br, bc, *args, codes, agrid, scodes, sgrid, qgrid)
    if isinstance(recipe, NVFP4) and recipe.rounding == "stochastic":
        codes = _stochastic(w, qgrid, recipe, codes)
    bias = None
    if isinstance(recipe, DeepGEMM) and recipe.ue8m0:
        bias = 127 - scodes.astype(np.int32)
    return ScaledTensor(codes=codes, fmt=fmt, scale=sgrid, bias=bias, block=(br, bc), granularity="block",
                        scale_codes=scodes if scale_codes_kept else None, quant_scale=qgrid, amax=agrid,
                        global_scale=global_scale)


def _stochastic(w: np.ndarray, qgrid: np.ndarray, recipe: NVFP4, codes: np.ndarray) -> np.ndarray:
    """Stochastic rounding of the finite non-zero scaled values ``clamp(x * q, -6, 6)`` with the
    counter-based bits of ``fp8ref.quantize`` (``seed``, keyed by the flat index); zeros and NaN keep
    the profile's codes."""
    from fp8ref.cast import quantize

    br, bc = recipe.tile
    m, n = w.shape
    q = np.repeat(np.repeat(qgrid, br, axis=0)[:m], bc, axis=1)[:, :n]
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        y = np.clip(w * q, -F4_MAX, F4_MAX).astype(np.float32)
    sr = quantize(y, E2M1, rounding="stochastic", saturate=True, seed=recipe.seed)
    keep = np.isfinite(y) & (y != 0)
    out = codes.copy()
    out[keep] = sr[keep]
    return out
