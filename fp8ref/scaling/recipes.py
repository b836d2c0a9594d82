"""Scaling recipes as frozen data.

A recipe says how the scale of each block of a tensor is chosen; :func:`fp8ref.quantize_scaled` applies
it. The rules are normative in ``docs/scaling.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fp8ref.formats import E2M1, E4M3
from fp8ref.formats import format as _format
from fp8ref.scaling._inputs import check_int
from fp8ref.scaling.bias import BIAS_LIMIT, check_bounds

# A granularity is "tensor", "row", "column" or a block shape (br, bc) such as (1, 128) or (128, 128).
Granularity = str | tuple[int, int]

GRANULARITIES = ("tensor", "row", "column")
BLOCK_1x128 = (1, 128)
BLOCK_128x128 = (128, 128)
MX_RULES = ("FLOOR", "RCEIL", "CEIL", "EVEN")


class _PerTensor:
    """A recipe with one scale for the whole tensor (its ``granularity`` is ``"tensor"``, not a field)."""

    @property
    def granularity(self) -> str:
        return "tensor"


def check_granularity(g: Any, name: str = "granularity") -> Granularity:
    if isinstance(g, str):
        if g not in GRANULARITIES:
            raise ValueError(f"{name} must be one of {GRANULARITIES} or a block shape (br, bc), got {g!r}")
        return g
    try:
        br, bc = g
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be one of {GRANULARITIES} or a block shape (br, bc), "
                         f"got {g!r}") from exc
    return (check_int(br, f"{name}[0]", 1), check_int(bc, f"{name}[1]", 1))


@dataclass(frozen=True)
class JustInTime:
    """The paper's FP8-AMAX: per block (default: the whole tensor) ``bias = scale_bias(amax, fmt,
    margin=margin, bounds=bounds)`` from the very tensor being cast; ``x8 = Q(x * 2**bias)``.

    The paper uses margin 0 for weights and activations and margin 3 for gradients (E5M2); ``bounds``
    is the IPU's 6-bit signed scale operand. A non-finite amax raises ``FloatingPointError``."""

    margin: int = 0
    bounds: tuple[int, int] = (-31, 31)
    granularity: Granularity = "tensor"

    def __post_init__(self) -> None:
        check_int(self.margin, "margin")
        object.__setattr__(self, "bounds", check_bounds(self.bounds))
        object.__setattr__(self, "granularity", check_granularity(self.granularity))


@dataclass(frozen=True)
class Constant(_PerTensor):
    """The paper's FP8-CSCALE: one fixed bias for the whole tensor, ``x8 = Q(x * 2**bias)``."""

    bias: int

    def __post_init__(self) -> None:
        check_int(self.bias, "bias", -BIAS_LIMIT, BIAS_LIMIT)


@dataclass(frozen=True)
class Delayed(_PerTensor):
    """TransformerEngine's ``DelayedScaling``: the tensor is cast with the scale derived from earlier
    steps' amaxes, then its own amax enters the history and the scale is updated.

    ``scale = (fmt.max * 2**-margin) / amax_h`` in float32 (round to nearest even), where ``amax_h`` is the
    max of the history (``algo="max"``) or its newest entry (``"most_recent"``); the previous scale is kept
    when ``amax_h`` is 0 or not finite; an infinite scale becomes FLT_MAX. ``roll_zero_amax=False`` is the
    rule of TE's PyTorch path (``amax_and_scale_update_after_reduction``: a step whose amax is 0 leaves
    the history untouched); ``True`` is the standalone ``nvte_delayed_scaling_recipe_amax_and_scale_update``
    kernel, which rolls every step. Per tensor only."""

    history_len: int = 1024
    algo: str = "max"
    margin: int = 0
    roll_zero_amax: bool = False

    def __post_init__(self) -> None:
        check_int(self.history_len, "history_len", 1)
        if self.algo not in ("max", "most_recent"):
            raise ValueError(f"algo must be 'max' or 'most_recent', got {self.algo!r}")
        check_int(self.margin, "margin", -BIAS_LIMIT, BIAS_LIMIT)
        if not isinstance(self.roll_zero_amax, (bool, np.bool_)):
            raise ValueError(f"roll_zero_amax must be a bool, got {self.roll_zero_amax!r}")

    def initial_state(self) -> DelayedState:
        """TE's initial state: an all-zero history and scale 1."""
        return DelayedState(np.zeros(self.history_len, dtype=np.float32), np.float32(1.0))


@dataclass(frozen=True, eq=False)
class DelayedState:
    """The state of a :class:`Delayed` recipe for one tensor: TE's ``amax_history`` (float32, newest at
    index 0) and ``scale`` (float32, the multiplier applied before the cast). ``scale_inv`` is
    ``1 / scale`` in float32. The arrays are copied and read-only, so a state can be checkpointed."""

    amax_history: np.ndarray
    scale: np.float32 = field(default=np.float32(1.0))

    def __post_init__(self) -> None:
        raw = self.amax_history
        if isinstance(raw, (str, bytes)):
            raise ValueError(f"amax_history must be a 1-D array of floats, got {type(raw).__name__}")
        h = np.asarray(raw)
        if h.dtype.kind not in "iuf" and h.dtype.name != "bfloat16":
            raise ValueError(f"amax_history must be a 1-D array of floats, got dtype {h.dtype}")
        if h.ndim != 1:
            raise ValueError(f"amax_history must be 1-D (TransformerEngine's history of one tensor), "
                             f"got shape {h.shape}")
        if h.size < 1:
            raise ValueError("amax_history must hold at least one entry")
        h = np.array(h, dtype=np.float32)
        h.setflags(write=False)
        object.__setattr__(self, "amax_history", h)
        sc = self.scale
        if (isinstance(sc, (str, bytes, bool, np.bool_)) or np.ndim(sc) != 0
                or np.asarray(sc).dtype.kind not in "iuf"):
            raise ValueError(f"scale must be a positive finite float32, got {sc!r}")
        s = np.float32(sc)
        if not np.isfinite(s) or s <= 0:
            raise ValueError(f"scale must be a positive finite float32, got {self.scale!r}")
        object.__setattr__(self, "scale", s)

    @property
    def scale_inv(self) -> np.float32:
        with np.errstate(over="ignore"):
            return np.float32(1.0) / self.scale

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DelayedState):
            return NotImplemented
        return (self.amax_history.shape == other.amax_history.shape
                and bool(np.array_equal(self.amax_history.view(np.uint32),
                                        other.amax_history.view(np.uint32)))
                and self.scale.view(np.uint32) == other.scale.view(np.uint32))

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Current:
    """Current (dynamic) scaling from this tensor's amax, per block: TransformerEngine's
    ``Float8CurrentScaling`` (per tensor) and ``Float8BlockScaling`` (``granularity=(1, 128)`` or
    ``(128, 128)`` with ``power_of_2=True``), torchao's tensorwise and rowwise recipes
    (``compute_dtype="float64"``, ``eps=1e-12``; rowwise: ``granularity="row"``, ``power_of_2=True``).

    ``compute_dtype="float32"`` (TE ``compute_scale_from_amax``): ``a = max(amax, eps)``; if ``a`` is 0,
    Inf or NaN the scale is 1; else ``scale = fmt.max / a`` in float32 (round to nearest even), an
    infinite scale becomes the input type's largest finite value; ``power_of_2`` clears the mantissa
    (rounds the scale down to a power of two). ``compute_dtype="float64"`` (torchao ``amax_to_scale``):
    ``scale = float32(fmt.max / max(float64(amax), eps))``; a non-finite or zero result raises
    ``FloatingPointError``; ``power_of_2`` clears the mantissa."""

    eps: float = 0.0
    power_of_2: bool = False
    compute_dtype: str = "float32"
    granularity: Granularity = "tensor"

    def __post_init__(self) -> None:
        try:
            eps = float(self.eps)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"eps must be a non-negative float, got {self.eps!r}") from exc
        if not (eps >= 0 and np.isfinite(eps)):
            raise ValueError(f"eps must be a non-negative finite float, got {self.eps!r}")
        if not isinstance(self.power_of_2, (bool, np.bool_)):
            raise ValueError(f"power_of_2 must be a bool, got {self.power_of_2!r}")
        if self.compute_dtype not in ("float32", "float64"):
            raise ValueError(f"compute_dtype must be 'float32' or 'float64', got {self.compute_dtype!r}")
        object.__setattr__(self, "granularity", check_granularity(self.granularity))


@dataclass(frozen=True)
class MSAMP(_PerTensor):
    """MS-AMP's ``ScalingMeta.compute_scaling_factor`` with in-time scaling (window 1, its default):
    ``bias = floor(log2(float32(fmt.max / amax))) - margin`` (the quotient rounded to float32 first, as
    MS-AMP divides in float32), ``scale = 2**bias``; when amax is 0 or not finite the previous bias
    (``state``, default 0 i.e. scale 1) is kept. Per tensor; the state is the bias (an ``int``)."""

    margin: int = 0

    def __post_init__(self) -> None:
        check_int(self.margin, "margin", -BIAS_LIMIT, BIAS_LIMIT)


@dataclass(frozen=True)
class MX:
    """OCP Microscaling: blocks of ``block_size`` consecutive elements along ``axis`` of a 2-D tensor
    share one E8M0 scale ``2**e``; elements are ``Q(x * 2**-e)``.

    Scale rules (torchao ``ScaleCalculationMode`` names), with ``emax`` the element format's largest
    exponent: ``"FLOOR"`` (OCP v1.0) ``e = floor(log2(amax)) - emax``; ``"CEIL"``
    ``e = ceil(log2(amax)) - emax``; ``"EVEN"`` amax first rounded to the element's mantissa width
    (torchao's bit rule), then floor; ``"RCEIL"`` (NVIDIA cuBLAS / TransformerEngine MXFP8)
    ``e = ceil(log2(float32(amax * float32(1 / fmt.max))))``. NaN or Inf amax gives the NaN scale 0xFF.
    ``pad=False`` requires ``block_size`` to divide the axis (OCP, torchao); ``pad=True`` lets the last
    block be partial (its amax is over the elements present, as zero padding gives)."""

    rule: str = "FLOOR"
    block_size: int = 32
    axis: int = -1
    pad: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.rule, str) or self.rule.upper() not in MX_RULES:
            raise ValueError(f"rule must be one of {MX_RULES}, got {self.rule!r}")
        object.__setattr__(self, "rule", self.rule.upper())
        check_int(self.block_size, "block_size", 1)
        if check_int(self.axis, "axis") not in (-2, -1, 0, 1):
            raise ValueError(f"axis must be 0, 1, -1 or -2 (MX scales 2-D tensors), got {self.axis}")
        if not isinstance(self.pad, (bool, np.bool_)):
            raise ValueError(f"pad must be a bool, got {self.pad!r}")

    @property
    def granularity(self) -> str:
        return "mx"


NVFP4_PROFILES = ("te", "torchao")
NVFP4_TILES = ((1, 16), (16, 16))
NVFP4_ROUNDING = ("nearest_even", "stochastic")


def _tile(value: Any, allowed: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """``value`` as one of the ``allowed`` tile shapes; ``ValueError`` naming ``tile`` otherwise."""
    try:
        tile = (int(value[0]), int(value[1])) if len(value) == 2 else None
    except (TypeError, ValueError):
        tile = None
    if tile not in allowed:
        raise ValueError(f"tile must be one of {allowed}, got {value!r}")
    return tile


@dataclass(frozen=True)
class NVFP4:
    """NVIDIA's NVFP4: E2M1 elements, one E4M3 block scale per ``tile`` and (``two_level``) one float32
    per-tensor scale. The rules of each ``profile`` are normative in docs/scaling.md section 7:

    - ``"te"``: TransformerEngine's ``NVFP4QuantizerRef._quantize_blockwise_reference``
      (``custom_recipes/reference_nvfp4.py``): global encode ``min(448 * 6 / amax, FLT_MAX)`` (1 where that
      is 0), block scale ``E4M3(clamp(vec_max * (global_encode * fp32(1 / 6)), 448))``, element multiplier
      ``min(1 / (block_scale * global_decode), FLT_MAX)``, values clamped to +-6, E2M1 nearest-even.
    - ``"torchao"``: torchao's ``nvfp4_quantize``: block scale ``E4M3(clamp(vec_max / 6 / pts, E4M3 eps,
      448))`` with ``pts = amax / (448 * 6)`` (two level) or 1 (single level), element multiplier
      ``(1 / pts) / block_scale``.

    ``tile`` is ``(1, 16)`` (activations, gradients) or ``(16, 16)`` (weights; torchao has only 1x16);
    ``global_amax`` replaces the tensor's own amax in the per-tensor scale (calibrated amax); ``hadamard``
    applies TE's random Hadamard transform to 16-element groups of the last axis first; ``rounding`` is
    ``"nearest_even"`` or ``"stochastic"`` (the counter-based bits of ``fp8ref.quantize``, keyed by
    ``seed``); ``pad=True`` allows dimensions the tile does not divide (partial edge tiles, as zero
    padding)."""

    profile: str = "te"
    tile: tuple[int, int] = (1, 16)
    two_level: bool = True
    global_amax: float | None = None
    hadamard: bool = False
    rounding: str = "nearest_even"
    seed: int | None = None
    pad: bool = False

    def __post_init__(self) -> None:
        if self.profile not in NVFP4_PROFILES:
            raise ValueError(f"profile must be one of {NVFP4_PROFILES}, got {self.profile!r}")
        tile = _tile(self.tile, NVFP4_TILES)
        if self.profile == "torchao" and tile != (1, 16):
            raise ValueError(f"tile: torchao's nvfp4_quantize has 1x16 blocks only, got {self.tile!r}")
        object.__setattr__(self, "tile", tile)
        for name in ("two_level", "hadamard", "pad"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.global_amax is not None:
            g = self.global_amax
            if isinstance(g, (str, bytes, bool, np.bool_)) or np.ndim(g) != 0:
                raise ValueError(f"global_amax must be a non-negative float or None, got {g!r}")
            gv = float(g)
            if not gv >= 0:  # NaN fails too
                raise ValueError(f"global_amax must be a non-negative float (not NaN) or None, got {g!r}")
            if not self.two_level:
                raise ValueError("global_amax sets the per-tensor scale of two-level scaling; "
                                 "it needs two_level=True")
            object.__setattr__(self, "global_amax", gv)
        if self.rounding not in NVFP4_ROUNDING:
            raise ValueError(f"rounding must be one of {NVFP4_ROUNDING}, got {self.rounding!r}")
        if self.seed is not None:
            check_int(self.seed, "seed", 0)

    @property
    def granularity(self) -> tuple[int, int]:
        return self.tile


DEEPGEMM_TILES = ((1, 128), (128, 128))


@dataclass(frozen=True)
class DeepGEMM:
    """DeepGEMM's block casts (``deep_gemm/utils/math.py``: ``per_token_cast_to_fp8``,
    ``per_block_cast_to_fp8``, ``per_token_cast_to_fp4``): per ``tile`` block
    ``sf = max(amax, 1e-4) / 448`` (``/ 6`` for E2M1) in float32, with ``ue8m0=True`` rounded up to a
    power of two (``ceil_to_ue8m0``: exponent field plus one when the mantissa is not zero, clamped to
    [1, 254]); elements ``Q(x * float32(1 / sf))``: E4M3 saturating (torch 2.13's cast, Inf included),
    E2M1 with DeepGEMM's own quantiser (ties toward zero, no negative zero). Partial edge blocks are
    zero padding, as DeepGEMM pads."""

    tile: tuple[int, int] = (1, 128)
    ue8m0: bool = False
    element: Any = E4M3

    def __post_init__(self) -> None:
        tile = _tile(self.tile, DEEPGEMM_TILES)
        object.__setattr__(self, "tile", tile)
        if not isinstance(self.ue8m0, (bool, np.bool_)):
            raise ValueError(f"ue8m0 must be a bool, got {self.ue8m0!r}")
        try:
            el = _format(self.element)
        except (TypeError, ValueError):
            el = None
        if el not in (E4M3, E2M1):
            raise ValueError(f"element must be E4M3 or E2M1 (DeepGEMM's FP8 and FP4 casts), "
                             f"got {self.element!r}")
        if el == E2M1 and tile != (1, 128):
            raise ValueError(f"tile: DeepGEMM's FP4 cast is per token (1, 128), got {self.tile!r}")
        object.__setattr__(self, "element", el)

    @property
    def granularity(self) -> tuple[int, int]:
        return self.tile


Recipe = JustInTime | Constant | Delayed | Current | MSAMP | MX | NVFP4 | DeepGEMM
RECIPES = (JustInTime, Constant, Delayed, Current, MSAMP, MX, NVFP4, DeepGEMM)
