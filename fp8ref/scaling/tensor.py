"""``ScaledTensor``: FP8 codes with their per-block scales (the contract in docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fp8ref.formats import Format

GRANULARITY_NAMES = ("tensor", "row", "column", "block", "mx")


def _block(block: Any) -> tuple[int, ...]:
    """``block`` as a tuple of non-negative Python ints; ``ValueError`` naming ``block`` otherwise."""
    try:
        items = tuple(block)
    except TypeError:
        raise ValueError(f"block must be a tuple of ints, got {block!r}") from None
    if not all(isinstance(b, (int, np.integer)) and not isinstance(b, (bool, np.bool_)) and b >= 0
               for b in items):
        raise ValueError(f"block must be a tuple of non-negative ints, got {block!r}")
    return tuple(int(b) for b in items)


@dataclass(frozen=True, eq=False)
class ScaledTensor:
    """A quantised tensor: ``x ~= dequantize(codes, fmt) * scale`` blockwise.

    Fields (see docs/architecture.md):

    - ``codes``: uint8 element codes, the shape ``S`` of the input.
    - ``fmt``: the element :class:`~fp8ref.Format`.
    - ``scale``: float32 **dequantisation multiplier** per block, shape = the block grid (``()`` per tensor,
      ``(M, 1)`` per row, ``(1, N)`` per column, ``(ceil(M/br), ceil(N/bc))`` for blocks).
    - ``bias``: int32, same shape as ``scale``, where every scale is a power of two ``2**-bias`` (the
      paper's scaling bias: ``codes = Q(x * 2**bias)``), else ``None``. MX blocks with the NaN scale have
      bias 0 there; use ``scale`` / ``scale_codes`` for them.
    - ``block``: ``(br, bc)``; per tensor the shape ``S`` itself.
    - ``granularity``: ``"tensor"``, ``"row"``, ``"column"``, ``"block"`` or ``"mx"``.
    - ``scale_codes``: uint8 codes of the block scales in the recipe's scale format (E8M0 for MX, E4M3 for
      NVFP4), shape of ``scale``; required for MX, else ``None`` where the scales are plain float32.
    - ``global_scale``: the float32 per-tensor **decode** multiplier of two-level scaling (NVFP4), applied
      after the block scale (``x ~= dequantize(codes) * scale * global_scale``), else ``None``.

    Added fields: ``quant_scale`` (float32, the multiplier applied to ``x`` before the cast, same shape as
    ``scale``), ``amax`` (float32 amax per block of the input, or ``None``), ``state`` (the recipe state
    after this cast: a :class:`~fp8ref.scaling.DelayedState` for ``Delayed``, the bias for ``MSAMP``,
    else ``None``).
    """

    codes: np.ndarray
    fmt: Format
    scale: np.ndarray
    bias: np.ndarray | None = None
    block: tuple[int, ...] | None = None
    granularity: str = "tensor"
    scale_codes: np.ndarray | None = None
    quant_scale: np.ndarray | None = None
    amax: np.ndarray | None = None
    state: Any = None
    global_scale: np.float32 | None = None

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.dtype != np.uint8:
            raise ValueError(f"codes must be a uint8 array, got dtype {codes.dtype}")
        if not isinstance(self.fmt, Format):
            raise ValueError(f"fmt must be a Format, got {self.fmt!r}")
        if self.granularity not in GRANULARITY_NAMES:
            raise ValueError(f"granularity must be one of {GRANULARITY_NAMES}, got {self.granularity!r}")
        scale = np.asarray(self.scale, dtype=np.float32)
        block = tuple(codes.shape) if self.block is None else _block(self.block)
        if self.granularity == "tensor":
            if block != tuple(codes.shape):
                raise ValueError(f"block of a per-tensor ScaledTensor must be the shape of codes "
                                 f"{tuple(codes.shape)} (or None), got {self.block!r}")
            if scale.shape != ():
                raise ValueError(f"a per-tensor scale must have shape (), got {scale.shape}")
        else:
            if codes.ndim != 2 or len(block) != 2 or min(block) < 1:
                raise ValueError(f"{self.granularity} scaling needs 2-D codes and a block (br, bc), "
                                 f"got codes {codes.shape} and block {self.block!r}")
            m, n = codes.shape
            want = {"row": (1, max(n, 1)), "column": (max(m, 1), 1)}.get(self.granularity)
            if want is not None and block != want:
                raise ValueError(f"block of {self.granularity} scaling must be {want} for codes "
                                 f"{codes.shape}, got {self.block!r}")
            if self.granularity == "mx" and 1 not in block:
                raise ValueError(f"block of MX scaling must be (1, k) or (k, 1), got {self.block!r}")
            grid = (-(-m // block[0]), -(-n // block[1]))
            if scale.shape != grid:
                raise ValueError(f"scale must have the block-grid shape {grid}, got {scale.shape}")
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "block", block)
        for name, dt in (("bias", np.int32), ("scale_codes", np.uint8), ("quant_scale", np.float32),
                         ("amax", np.float32)):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=dt)
                if v.shape != scale.shape:
                    raise ValueError(f"{name} must have the shape of scale {scale.shape}, got {v.shape}")
                object.__setattr__(self, name, v)
        if self.granularity == "mx" and self.scale_codes is None:
            raise ValueError("MX scaling needs scale_codes")
        if self.global_scale is not None:
            g = np.asarray(self.global_scale)
            if g.shape != () or g.dtype.kind not in "fiu" or g.dtype == np.bool_:
                raise ValueError(f"global_scale must be a real scalar or None, got {self.global_scale!r}")
            object.__setattr__(self, "global_scale", np.float32(g))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    def expand(self, a: np.ndarray | None = None) -> np.ndarray:
        """A per-block array (default: ``scale``) repeated to the shape of ``codes``."""
        a = self.scale if a is None else np.asarray(a)
        if self.granularity == "tensor":
            return np.broadcast_to(a, self.codes.shape)
        br, bc = self.block
        m, n = self.codes.shape
        return np.repeat(np.repeat(a, br, axis=0)[:m], bc, axis=1)[:, :n]

    def dequantize(self, dtype: Any = np.float32) -> np.ndarray:
        """``dequantize(codes) * scale`` per element, multiplied in float64 and rounded once to ``dtype``
        (float32 or float64); with a ``global_scale`` the product of the block scale and it is formed in
        float64 too (exact for float32 operands). NaN codes and NaN scales give NaN."""
        from fp8ref.cast import dequantize

        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dt}")
        v = dequantize(self.codes, self.fmt, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            scale = self.expand().astype(np.float64)
            if self.global_scale is not None:
                scale = scale * np.float64(self.global_scale)
            out = v * scale
            return out.astype(dt)

    def __repr__(self) -> str:
        return (f"ScaledTensor(shape={self.shape}, fmt={self.fmt.name}, granularity={self.granularity!r}, "
                f"block={self.block}, scale={self.scale if self.scale.size <= 4 else self.scale.shape})")
