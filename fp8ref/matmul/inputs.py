"""Validation and normalisation of the inputs of :func:`fp8ref.scaled_mm`, and the geometry of the scales.

Operands become (codes, format, decoded float64 values); scales become a :class:`Scales` (the float32
multipliers on their block grid and the block shape), which also answers which multiplier an element uses
(:meth:`Scales.at`, :meth:`Scales.expand`) and where K is cut into segments of constant scales
(:func:`segments`, :func:`segment_scales`); bias becomes exact float64 values; ``out_dtype`` becomes a
:class:`~fp8ref.Format` plus the NumPy dtype of the returned array. :class:`Args` holds all of them for one
call; :mod:`fp8ref.matmul.args` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from fp8ref.formats import BF16, FP16, FP32, Format
from fp8ref.formats import format as resolve_format

BLOCK = 128  # DeepSeek-V3 / cuBLASLt block scales: 1x128 and 128x128
MX_BLOCK = 32  # OCP MX: 1x32 blocks along K


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Operand:
    """One matrix operand: its codes, format, decoded values and (for ScaledTensor inputs) its scales."""

    codes: np.ndarray  # uint8, 2-D
    fmt: Format
    scales: Scales | None  # from a ScaledTensor, else None
    global_scale: float | None = None  # a ScaledTensor's float32 per-tensor decode scale (NVFP4), else None


@dataclass(frozen=True)
class Scales:
    """Dequantisation multipliers of one operand: ``grid`` (float64 values of float32 / E8M0 scales) with
    element ``(r, c)`` of the operand multiplied by ``grid[r // block[0], c // block[1]]``."""

    grid: np.ndarray
    block: tuple[int, int]
    granularity: str  # "tensor", "row", "column", "block-1x128", "block-128x1", "block-128x128", "mx", ...

    @property
    def is_tensor(self) -> bool:
        return self.grid.size == 1

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The multipliers of the elements ``(rows[i], cols[j])``: an array of shape (rows.size, cols.size)
        (a read-only broadcast for a tensorwise scale)."""
        if self.is_tensor:
            return np.broadcast_to(self.grid.reshape(1, 1), (rows.size, cols.size))
        return self.grid[rows // self.block[0]][:, cols // self.block[1]]

    def expand(self, rows: int, cols: int) -> np.ndarray:
        """The multiplier of every element of a (rows, cols) operand."""
        return self.at(np.arange(rows), np.arange(cols))


def segments(sa: Scales, sb: Scales, k: int) -> list[int]:
    """K boundaries of the common refinement of the scale blocks along K of ``a`` and ``b``."""
    cuts = {0, k}
    if not sa.is_tensor:
        cuts.update(range(0, k, sa.block[1]))
    if not sb.is_tensor:
        cuts.update(range(0, k, sb.block[0]))
    return sorted(cuts) if k > 0 else [0]


def segment_scales(sa: Scales, sb: Scales, bounds: list[int], m: int, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(M, S) multipliers of a per segment and (S, N) multipliers of b per segment (``bounds`` from
    :func:`segments`)."""
    starts = np.asarray(bounds[:-1], dtype=np.int64)
    ga = sa.at(np.arange(m), starts)
    gb = sb.at(starts, np.arange(n))
    return np.ascontiguousarray(ga, dtype=np.float64), np.ascontiguousarray(gb, dtype=np.float64)


@cache
def tables(fmt: Format) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per code of ``fmt`` (256 entries): decoded value (float64), |value| (0 for NaN/Inf), log2 of the
    value's quantum (its last significand bit; +inf for zero, NaN and Inf) and "is NaN or Inf"."""
    vals = np.full(256, np.nan)
    vals[: fmt.n_codes] = fmt.values()
    special = ~np.isfinite(vals)
    mag = np.where(special, 0.0, np.abs(vals))
    lsb = np.full(256, np.inf)
    for c in range(fmt.n_codes):
        v = mag[c]
        if v != 0.0:
            m, e = np.frexp(v)
            mi = int(m * 2.0**53)
            tz = (mi & -mi).bit_length() - 1
            lsb[c] = e - 53 + tz
    for arr in (vals, mag, lsb, special):
        arr.setflags(write=False)
    return vals, mag, lsb, special


def _is_scaled_tensor(x: Any) -> bool:
    return all(hasattr(x, f) for f in ("codes", "fmt", "scale", "block", "granularity"))


def operand(x: Any, fmt: Any, name: str, fmt_name: str) -> Operand:
    """Normalise ``a`` or ``b``: uint8 codes with ``fmt``, an ml_dtypes FP8 array (format from the dtype),
    or a ScaledTensor (format and scales from it)."""
    if type(x) is not np.ndarray and _is_scaled_tensor(x):  # a plain ndarray has none of its fields
        codes = np.asarray(x.codes)
        f = x.fmt
        if codes.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got a ScaledTensor of shape {codes.shape}")
        grid = np.asarray(x.scale, dtype=np.float64)
        if x.granularity == "tensor" or grid.size == 1 and grid.ndim == 0:
            sc = Scales(grid.reshape(1, 1), tuple(int(s) for s in codes.shape), "tensor")
        else:
            block = tuple(int(b) for b in x.block)
            sc = Scales(grid.reshape(grid.shape), block, str(x.granularity))  # type: ignore[arg-type]
        g = getattr(x, "global_scale", None)
        if g is not None:
            g = float(np.float32(g))
            if not np.isfinite(g):
                raise ValueError(f"{name}.global_scale must be finite, got {g!r}")
        return Operand(_check_codes(codes, f, name), f, sc, g)
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array (uint8 codes or an ml_dtypes FP8 dtype) or a "
                         f"ScaledTensor, got {type(x).__name__}")
    f = _format(fmt, fmt_name)
    if x.dtype == np.uint8:
        codes = x
    else:
        df = _ml_format(x.dtype)
        if df is None:
            raise ValueError(f"{name} must hold uint8 codes or an ml_dtypes FP8 dtype, got dtype {x.dtype}")
        if f != df and f.name != "E4M3":
            raise ValueError(f"{name} has dtype {x.dtype} (format {df.name}) but {fmt_name}={f.name}")
        f = df
        codes = x.view(np.uint8)
    if codes.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {codes.shape}")
    return Operand(_check_codes(codes, f, name), f, None)


def _ml_format(dt: np.dtype) -> Format | None:
    if dt.itemsize != 1 or dt == np.uint8 or dt == np.int8 or dt == np.bool_:
        return None
    try:
        return resolve_format(dt)
    except (ValueError, TypeError):
        return None


def _format(fmt: Any, name: str) -> Format:
    try:
        f = resolve_format(fmt)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: {exc}") from exc
    if f.bits > 8:
        raise ValueError(f"{name}={f.name}: operand formats must have at most 8 bits (codes in uint8)")
    return f


def _check_codes(codes: np.ndarray, fmt: Format, name: str) -> np.ndarray:
    if codes.dtype != np.uint8:
        raise ValueError(f"{name} codes must be uint8, got dtype {codes.dtype}")
    if fmt.bits < 8 and codes.size and int(codes.max()) >= fmt.n_codes:
        raise ValueError(f"{name} holds code {int(codes.max())}, not a valid {fmt.name} code "
                         f"({fmt.bits} bits: codes 0..{fmt.n_codes - 1})")
    return codes


# ---- scales ------------------------------------------------------------------------------------------
def _scale_values(s: Any, name: str) -> np.ndarray:
    """Scale values as float64: float32, float16, bfloat16 and 8-bit ml_dtypes (E8M0) arrays keep their
    exact values; Python numbers, integers and float64 arrays are rounded to float32 first (torch's scales
    are float32 tensors)."""
    if isinstance(s, (bool, np.bool_)):
        raise ValueError(f"{name} must be a real number or an array of them, got {s!r}")
    arr = np.asarray(s)
    if arr.dtype in (np.float16, np.float32) or arr.dtype.name == "bfloat16" or _ml_format(arr.dtype):
        return arr.astype(np.float64)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float32).astype(np.float64)
    raise ValueError(f"{name} must be float32 (or E8M0) scales, got dtype {arr.dtype}")


def a_scales(s: Any, m: int, k: int) -> Scales:
    """The granularity of ``scale_a`` for a (M, K) operand, from its shape (see docs/matmul.md)."""
    return _granularity(s, "scale_a", "a", (m, k), [
        ((m, 1), (1, max(k, 1)), "row", "rowwise"),
        ((m, _ceil(k, BLOCK)), (1, BLOCK), "block-1x128", "1x128 blocks along K"),
        ((_ceil(m, BLOCK), _ceil(k, BLOCK)), (BLOCK, BLOCK), "block-128x128", "128x128 blocks"),
        ((m, _ceil(k, MX_BLOCK)), (1, MX_BLOCK), "block-1x32", "1x32 blocks along K, MX")])


def b_scales(s: Any, k: int, n: int) -> Scales:
    """The granularity of ``scale_b`` for a (K, N) operand, from its shape (see docs/matmul.md)."""
    return _granularity(s, "scale_b", "b", (k, n), [
        ((1, n), (max(k, 1), 1), "column", "rowwise, per column of b"),
        ((_ceil(k, BLOCK), n), (BLOCK, 1), "block-128x1", "128x1 blocks along K"),
        ((_ceil(k, BLOCK), _ceil(n, BLOCK)), (BLOCK, BLOCK), "block-128x128", "128x128 blocks"),
        ((_ceil(k, MX_BLOCK), n), (MX_BLOCK, 1), "block-32x1", "32x1 blocks along K, MX")])


def _granularity(s: Any, name: str, opname: str, shape: tuple[int, int],
                 accepted: list[tuple[tuple[int, int], tuple[int, int], str, str]]) -> Scales:
    """``Scales`` of the first ``(grid shape, block, granularity, description)`` in ``accepted`` whose grid
    shape is that of ``s``; a scalar is tensorwise; any other shape is a ``ValueError`` listing the rule."""
    v = _scale_values(s, name)
    if v.size == 1:
        return Scales(v.reshape(1, 1), (max(shape[0], 1), max(shape[1], 1)), "tensor")
    for grid, block, gran, _ in accepted:
        if v.shape == grid:
            return Scales(v, block, gran)
    listed = [f"({g[0]}, {g[1]}) ({desc})" for g, _, _, desc in accepted]
    raise ValueError(f"{name} has shape {v.shape}, which fits no granularity for {opname} of shape "
                     f"({shape[0]}, {shape[1]}): expected a scalar (tensorwise), {', '.join(listed[:-1])} or "
                     f"{listed[-1]}")


# ---- bias and output ---------------------------------------------------------------------------------
def bias_values(bias: Any, n: int) -> np.ndarray | None:
    if bias is None:
        return None
    arr = np.asarray(bias)
    if arr.dtype.kind != "f" and arr.dtype.name != "bfloat16":
        raise ValueError(f"bias must be a float array (bfloat16, float16, float32 or float64), got dtype "
                         f"{arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"bias must have shape ({n},) (one value per column of the output), got {arr.shape}")
    return arr.astype(np.float64)


@dataclass(frozen=True)
class Output:
    fmt: Format
    dtype: np.dtype


def output(out_dtype: Any) -> Output:
    """``out_dtype`` as (format, dtype of the returned array): float32, float16, bfloat16, or a format of
    at most 8 bits with an ml_dtypes dtype (FP8; returned as that ml_dtypes array)."""
    if isinstance(out_dtype, (type, np.dtype, Format)):  # hashable and immutable: memoised
        return _output_of(out_dtype)
    return _output(out_dtype)


@cache
def _output_of(out_dtype: Any) -> Output:
    return _output(out_dtype)


def _output(out_dtype: Any) -> Output:
    try:
        f = resolve_format(out_dtype)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"out_dtype: {exc}") from exc
    if f in (FP32, FP16, BF16) or (f.bits <= 8 and f.ml_dtype is not None and f.signed):
        return Output(f, f.ml_dtype)
    raise ValueError(f"out_dtype={f.name} is not supported: use float32, float16, bfloat16 or an FP8 format")


def is_fp8(f: Format) -> bool:
    return f.bits <= 8


@dataclass(frozen=True)
class Args:
    """The checked, normalised arguments of one ``scaled_mm`` call (:func:`fp8ref.matmul.args.parse`).

    ``bias``: exact float64 values or None; ``scale_result``: the float32 divisor as a float, or None (also
    when a wide output under ``strict_torch`` ignores it, as torch does)."""

    a: Operand
    b: Operand
    scale_a: Scales
    scale_b: Scales
    out: Output
    bias: np.ndarray | None
    scale_result: float | None

    @property
    def global_scale(self) -> float | None:
        """``fl32(ga * gb)`` of the operands' per-tensor decode scales (cuBLASLt's alpha of two-level
        scaling), ``None`` when neither has one."""
        ga, gb = self.a.global_scale, self.b.global_scale
        if ga is None and gb is None:
            return None
        return float(np.float32(1.0 if ga is None else ga) * np.float32(1.0 if gb is None else gb))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(M, K, N)."""
        m, k = self.a.codes.shape
        return m, k, self.b.codes.shape[1]
