"""The block-scaled linear layers of the Blackwell-era recipes: ``mxfp8`` and ``nvfp4``.

``mxfp8`` -- NVIDIA's MXFP8 pre-training recipe (arXiv 2506.08027): every GEMM operand, gradients included, is
E4M3 in 1x32 blocks along the GEMM's reduction dimension with RCEIL (round-up) E8M0 scales
(``fp8ref.MX("RCEIL")``), and each operand of each GEMM is quantised from the high-precision tensor in its
own orientation (the forward ``x`` along K, the backward ``x^T`` along the tokens)::

    forward:  y  = scaled_mm(MX_k(x), MX_k(w))                 # x [N, K] 1x32 along K, w [K, M] 32x1 along K
    backward: dx = scaled_mm(MX_m(dy), MX_m(w^T))              # along M
              dw = scaled_mm(MX_n(x^T), MX_n(dy))              # along N (the tokens)

``nvfp4`` -- TransformerEngine's NVFP4 recipe (arXiv 2509.25149; ``NVFP4BlockScaling``, the reference
quantiser ``fp8ref.NVFP4(profile="te")``): E2M1 elements, E4M3 scales, two-level scaling; weights in 16x16
tiles (one quantisation serves ``w`` and ``w^T``: a tile holds the same values in both), activations and
gradients in 1x16 blocks along the reduction dimension; the random Hadamard transform on both inputs of the
weight-gradient GEMM (along the tokens; ``T T^T = I`` so the product is unchanged in exact arithmetic);
stochastic rounding on the gradient ``dy`` (both orientations). The GEMM is ``scaled_mm`` of the block
scales (any ``accumulate=`` model), multiplied afterwards by the two per-tensor decode scales in float32 (the
epilogue ``alpha`` of TE's GEMM). The recipe keeps the last ~16% of the blocks' linear layers in higher
precision (``nvfp4_high_precision_layers``).

``last_bias`` records ``-log2`` of the median block scale (times the per-tensor scale) per role, for the
scaling-bias plot.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import replace
from typing import Any

import numpy as np

from fp8ref.nn.fp8 import FP8Linear, NonFiniteError

BLOCK_RECIPES: tuple[str, ...] = ("mxfp8", "nvfp4")
NVFP4_HIGH_PRECISION_FRACTION = 0.16  # arXiv 2509.25149: about 16% of the linear layers stay in BF16


def nvfp4_high_precision_layers(n_layer: int) -> set[int]:
    """The blocks whose linear layers the ``nvfp4`` recipe keeps in higher precision: the last
    ``ceil(0.16 * n_layer)`` (the recipe keeps the final layers, the most sensitive to FP4, in BF16)."""
    k = math.ceil(NVFP4_HIGH_PRECISION_FRACTION * n_layer)
    return set(range(n_layer - k, n_layer))


def _transpose(st: Any) -> Any:
    """The ScaledTensor of the transposed matrix: codes, grids and block transposed."""
    def t(a: Any) -> Any:
        return None if a is None else np.ascontiguousarray(np.asarray(a).T)

    return replace(st, codes=t(st.codes), scale=t(st.scale), bias=t(st.bias), scale_codes=t(st.scale_codes),
                   quant_scale=t(st.quant_scale), amax=t(st.amax), block=tuple(reversed(st.block)))


class BlockScaledLinear(FP8Linear):
    """An :class:`FP8Linear` whose three GEMMs run on block-scaled operands (``mxfp8``, ``nvfp4``)."""

    def __init__(self, name: str, recipe: Any, ops: Any = None) -> None:
        super().__init__(name, recipe, ops)
        self._sr_calls = 0

    # ---- recipe state: the count of stochastic casts, which keys the next seed ---------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"{self.name}.sr_calls": np.array(self._sr_calls, dtype=np.int64)}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        key = f"{self.name}.sr_calls"
        if key in arrays:
            self._sr_calls = int(arrays[key])

    # ---- quantisation ---------------------------------------------------------------------------------
    def _quantize(self, t: np.ndarray, role: str, along: int, *, hadamard: bool = False,
                  stochastic: bool = False, tile16: bool = False) -> Any:
        """``t`` [R, C] quantised in blocks along axis ``along`` (0 or 1) of ``t``; returns the ScaledTensor
        of ``t`` itself (blocks (32, 1) / (16, 1) when ``along`` is 0)."""
        from fp8ref.formats import E2M1, E4M3
        from fp8ref.scaling import MX, NVFP4, quantize_scaled

        if not np.all(np.isfinite(t)):
            raise NonFiniteError(f"layer {self.name}, tensor {role}")
        src = np.ascontiguousarray(t if along == 1 else t.T, dtype=np.float32)
        if self.recipe.name == "mxfp8":
            st = quantize_scaled(src, E4M3, MX("RCEIL", pad=True))
        else:
            seed = None
            if stochastic:
                self._sr_calls += 1
                seed = zlib.crc32(self.name.encode()) * 1_000_003 + self._sr_calls
            r = NVFP4(tile=(16, 16) if tile16 else (1, 16), hadamard=hadamard, pad=True,
                      rounding="stochastic" if stochastic else "nearest_even", seed=seed)
            st = quantize_scaled(src, E2M1, r)
        g = 1.0 if st.global_scale is None else float(st.global_scale)
        with np.errstate(divide="ignore"):
            self.last_bias[role] = round(float(-np.log2(np.median(st.scale.astype(np.float64)) * g)), 3)
        return st if along == 1 else _transpose(st)

    def _gemm(self, a: Any, b: Any) -> np.ndarray:
        """``scaled_mm`` of the block-scaled operands; the per-tensor decode scales multiply the float32
        result afterwards (TE's GEMM epilogue ``alpha``)."""
        ga, gb = a.global_scale, b.global_scale
        y = self.ops.scaled_mm(replace(a, global_scale=None), replace(b, global_scale=None), a_format=a.fmt,
                               b_format=b.fmt, out_dtype=np.float32, accumulate=self.recipe.accumulate)
        if ga is not None or gb is not None:
            alpha = np.float32(1.0 if ga is None else ga) * np.float32(1.0 if gb is None else gb)
            y = (y * alpha).astype(np.float32)
        return y

    # ---- executor protocol ------------------------------------------------------------------------------
    def forward(
        self, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
    ) -> tuple[np.ndarray, Any]:
        """x [N, K], w [K, M] -> y [N, M]; both operands blocked along K."""
        nv = self.recipe.name == "nvfp4"
        qx = self._quantize(x, "x", 1)
        qw = self._quantize(w, "w", 0, tile16=nv)
        y = self._gemm(qx, qw)
        if b is not None:
            y = y + b
        return y, (x, w, qw, b is not None)

    def backward(
        self, name: str, dy: np.ndarray, cache: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """dy [N, M] -> (dx [N, K], dw [K, M], db [M] or None)."""
        x, w, qw, has_bias = cache
        nv = self.recipe.name == "nvfp4"
        g_dgrad = self._quantize(dy, "g", 1, stochastic=nv)  # along M
        w_t = _transpose(qw) if nv else self._quantize(w.T, "w", 0)  # w^T [M, K] along M
        dx = self._gemm(g_dgrad, w_t)
        x_t = self._quantize(x.T, "x", 1, hadamard=nv)  # x^T [K, N] along N
        g_wgrad = self._quantize(dy, "g", 0, hadamard=nv, stochastic=nv)  # dy [N, M] along N
        dw = self._gemm(x_t, g_wgrad)
        db = dy.sum(axis=0) if has_bias else None
        return dx, dw, db


def linear_for(name: str, recipe: Any, ops: Any = None) -> FP8Linear:
    """The FP8 linear layer of ``recipe``: a :class:`BlockScaledLinear` for the block-scaled recipes
    (:data:`BLOCK_RECIPES`), else an :class:`FP8Linear` (the trainer and ``fp8ref embed`` build theirs
    here)."""
    cls = BlockScaledLinear if recipe.name in BLOCK_RECIPES else FP8Linear
    return cls(name, recipe, ops)

