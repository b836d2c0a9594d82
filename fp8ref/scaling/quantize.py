"""``quantize_scaled``: choose the scales by a recipe, multiply, cast -- in at most two passes."""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.formats import Format
from fp8ref.scaling import recipes as rc
from fp8ref.scaling import rules
from fp8ref.scaling._inputs import as_float_array, element_format, input_type_max, widen
from fp8ref.scaling.amax import amax_flat, amax_grid
from fp8ref.scaling.mx import e8m0_to_f32, mx_scale_codes
from fp8ref.scaling.tensor import ScaledTensor

_STOCHASTIC = ("stochastic", "stochastic_fast", "stochastic_fastest")
_ROUNDING_MODES = ("nearest_even", "nearest_away", "toward_zero", "toward_positive", "toward_negative",
                   *_STOCHASTIC)  # fp8ref.ROUNDING_MODES, without importing the cast package here
_FUSED = True  # the fused kernels; tests switch this off to run the reference path


def _layout(w: np.ndarray, recipe: Any) -> tuple[str, tuple[int, ...]]:
    """(granularity name, block shape) of ``recipe`` on the array ``w``."""
    g = recipe.granularity
    if g == "tensor":
        return "tensor", tuple(w.shape)
    if w.ndim != 2:
        raise ValueError(f"x must be 2-D for {g!r} scaling, got shape {w.shape}")
    m, n = w.shape
    if g == "row":
        return "row", (1, max(n, 1))
    if g == "column":
        return "column", (max(m, 1), 1)
    if g == "mx":
        axis = recipe.axis % 2
        length = w.shape[axis]
        if length % recipe.block_size and not recipe.pad:
            raise ValueError(f"block_size {recipe.block_size} does not divide axis {axis} of x "
                             f"(length {length}); pass MX(..., pad=True) to allow a partial last block")
        return "mx", ((1, recipe.block_size) if axis == 1 else (recipe.block_size, 1))
    return "block", tuple(g)


def _expand(grid: np.ndarray, block: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    if grid.ndim == 0:
        return grid
    br, bc = block
    m, n = shape
    return np.repeat(np.repeat(grid, br, axis=0)[:m], bc, axis=1)[:, :n]


def scale_values(w: np.ndarray, q: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    """``w * q`` blockwise in ``w``'s precision (float32 or float64), round to nearest even; the
    reference for the fused kernels."""
    qq = _expand(np.asarray(q, dtype=np.float32), block, w.shape).astype(w.dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return (w * qq).astype(w.dtype)


def _cast_unfused(w: np.ndarray, q: np.ndarray, block: tuple[int, ...], fmt: Format, rounding: str,
                  saturate: bool, cast_kw: dict[str, Any]) -> np.ndarray:
    """The reference path: ``scale_values`` then :func:`fp8ref.quantize` (any rounding mode)."""
    from fp8ref.cast import quantize

    y = scale_values(w, q, block)
    nan_scale = np.isnan(q)
    if fmt.nan_code is None and np.any(nan_scale):
        # NaN-scaled MX blocks: the block is NaN through its scale; element codes 0 where fmt has no NaN
        y = np.where(_expand(nan_scale, block, w.shape), w.dtype.type(0), y)
    return quantize(y, fmt, rounding=rounding, saturate=saturate, **cast_kw)


def _fusable(w: np.ndarray, fmt: Format, rounding: str) -> bool:
    """Whether the fused float32 kernels apply: float32 (or widened float16/bfloat16) input, and a format
    and rounding mode the float32 encoder covers. Everything else takes the reference path (the same
    result)."""
    from fp8ref.cast import encode

    return (_FUSED and w.dtype == np.float32 and encode.fast_ok(fmt)
            and encode.mode_index(rounding) in encode.F32_MODES)


def _cast_fused(w: np.ndarray, q: np.ndarray, block: tuple[int, ...], fmt: Format, rounding: str,
                saturate: bool, with_amax: bool = False) -> tuple[np.ndarray, np.float32 | None]:
    """One pass over the float32 ``w``: multiply by the block's ``q`` in float32 and encode; with
    ``with_amax`` (per tensor only) also the amax of ``w`` with NaN ignored."""
    from fp8ref.cast.encode import encoder_params
    from fp8ref.scaling import kernels as k

    p = encoder_params(fmt, rounding, saturate)
    out = np.empty(w.shape, dtype=np.uint8)
    amax_v = None
    with k.threads_for(w.size):
        if q.ndim == 0:
            flat, oflat = w.reshape(-1), out.reshape(-1)
            if with_amax:
                m = k.scaled_cast_amax_flat(flat, np.float32(q), p, oflat)
                amax_v = np.array(m, dtype=np.int32).view(np.float32)[()]
            else:
                k.scaled_cast_flat(flat, np.float32(q), p, oflat)
        else:
            k.scaled_cast_blocks(w, q, block[0], block[1], p, out)
    return out, amax_v


def quantize_scaled(x: Any, fmt: Any, recipe: Any, *, rounding: str = "nearest_even", saturate: bool = True,
                    state: Any = None, srbits: Any = None, srnumbits: int | None = None,
                    seed: int | None = None) -> ScaledTensor:
    """Quantise ``x`` to ``fmt`` with the scales chosen by ``recipe``.

    Per block: the scale multiplier ``q`` is derived from the block's amax (or from ``state`` for
    :class:`Delayed`), ``y = x * q`` is computed in the input's precision (float64 for float64 input,
    float32 otherwise) with round-to-nearest-even, then ``y`` is cast once to ``fmt`` with ``rounding``
    and ``saturate`` (see :func:`fp8ref.quantize`; ``srbits`` / ``srnumbits`` / ``seed`` are passed on for
    the stochastic modes). Returns a :class:`ScaledTensor`; for the stateful recipes (``Delayed``,
    ``MSAMP``) ``st.state`` is the state to pass to the next call (``state=None`` starts from the initial
    state).
    """
    fmt = element_format(fmt)
    if rounding not in _ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {_ROUNDING_MODES}, got {rounding!r}")
    if not isinstance(saturate, (bool, np.bool_)):
        raise TypeError(f"saturate must be a bool, got {type(saturate).__name__}")
    if not isinstance(recipe, rc.RECIPES):
        raise TypeError(f"recipe must be one of {[r.__name__ for r in rc.RECIPES]}, "
                        f"got {type(recipe).__name__}")
    if state is not None and not isinstance(recipe, (rc.Delayed, rc.MSAMP)):
        raise ValueError(f"state is only used by the Delayed and MSAMP recipes, not {type(recipe).__name__}")
    a = as_float_array(x)
    if isinstance(recipe, (rc.NVFP4, rc.DeepGEMM)):
        from fp8ref.scaling.blockscaled import quantize_blockscaled

        if rounding != "nearest_even":
            raise ValueError(f"rounding: {type(recipe).__name__} takes its rounding from the recipe "
                             f"(NVFP4(rounding=...)), got rounding={rounding!r}")
        return quantize_blockscaled(a, fmt, recipe)
    w = widen(a)
    gname, block = _layout(w, recipe)
    cast_kw = {"srbits": srbits, "srnumbits": srnumbits, "seed": seed}
    scale_codes = None
    amax_g = None
    new_state = None

    fused = _fusable(w, fmt, rounding)
    if isinstance(recipe, rc.Constant):
        q, s, bias = rules.constant(recipe.bias)
    elif isinstance(recipe, rc.Delayed):
        st_in = _delayed_state(recipe, state)
        q, s, bias = rules.delayed_scales(st_in)
        if fused:  # one pass: cast with the previous scale and take the amax on the way
            codes, a_now = _cast_fused(w, q, block, fmt, rounding, saturate, with_amax=True)
        else:
            a_now = amax_flat(w, "ignore")  # TE's cast kernels: fmaxf, NaN ignored
        amax_g = np.asarray(a_now, dtype=np.float32)
        new_state = rules.delayed_update(recipe, st_in, amax_g[()], fmt)
    else:
        amax_g = np.asarray(amax_flat(w)) if gname == "tensor" else amax_grid(w, block)
        if isinstance(recipe, rc.JustInTime):
            q, s, bias = rules.just_in_time(amax_g, fmt, recipe)
        elif isinstance(recipe, rc.Current):
            q, s, bias = rules.current(amax_g, fmt, recipe, input_type_max(a.dtype))
        elif isinstance(recipe, rc.MSAMP):
            prev = _msamp_state(state)
            (q, s, bias), new_state = rules.msamp(amax_g[()], fmt, recipe, prev)
        else:  # MX
            scale_codes = mx_scale_codes(amax_g, fmt, recipe.rule)
            q = e8m0_to_f32(scale_codes, negate=True)
            s = e8m0_to_f32(scale_codes)
            bias = np.where(scale_codes == 255, 0, 127 - scale_codes.astype(np.int32)).astype(np.int32)

    q = np.asarray(q, dtype=np.float32)
    if not isinstance(recipe, rc.Delayed) or not fused:
        if fused:
            codes, _ = _cast_fused(w, q, block, fmt, rounding, saturate)
        else:
            codes = _cast_unfused(w, q, block, fmt, rounding, saturate, cast_kw)
    return ScaledTensor(codes=codes, fmt=fmt, scale=np.asarray(s, dtype=np.float32), bias=bias,
                        block=block, granularity=gname, scale_codes=scale_codes,
                        quant_scale=np.asarray(q, dtype=np.float32), amax=amax_g, state=new_state)


def _delayed_state(recipe: rc.Delayed, state: Any) -> rc.DelayedState:
    if state is None:
        return recipe.initial_state()
    if not isinstance(state, rc.DelayedState):
        raise ValueError(f"state must be a DelayedState for the Delayed recipe, got {type(state).__name__}")
    if state.amax_history.size != recipe.history_len:
        raise ValueError(f"state.amax_history has {state.amax_history.size} entries but history_len is "
                         f"{recipe.history_len}")
    return state


def _msamp_state(state: Any) -> int:
    if state is None:
        return 0
    if isinstance(state, (bool, np.bool_)) or not isinstance(state, (int, np.integer)):
        raise ValueError(f"state must be the previous MS-AMP bias (an int), got {state!r}")
    return int(state)
