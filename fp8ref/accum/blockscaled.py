"""Block-scaled MMA instructions (``kind::mxf8f6f4``, ``kind::mxf4nvf4``) as an accumulation model.

The rules (docs/accumulation.md §4.2; MMA-Sim @ c785138 ``mmasim/simulator/arithmetic.py``
``fused_dot_add`` / ``nv_fused_dot_add_with_block_scale``, ``nv_ptx.py`` ``mma_block_scale`` /
``tcgen05mma_block_scale``):

* ``group == 0`` (kind::mxf8f6f4, K = 32 per instruction, one UE8M0 scale per 32 elements): each product is
  one term of the alignment, its value ``a*b*sa*sb`` and its exponent ``ea + eb + e(sa) + e(sb)``; the
  products and ``c`` are aligned at ``frac_bits`` (25) below the largest exponent (at least ``e_floor``),
  truncated, summed exactly and rounded once toward zero to fp32 — the block-FMA rule of §2.1 on the scaled
  products.
* ``group == 16`` (kind::mxf4nvf4, K = 64, scales per 16 or 32 elements): each group of 16 products is summed
  exactly, multiplied by its two scales; the group's exponent is ``e(sa) + e(sb)`` (the scales' exponents,
  whatever the sum); the groups and ``c`` are aligned at ``frac_bits`` (35), truncated, summed, rounded toward
  zero to fp32.

Instructions chain along K through the accumulator. Scales are decoded values: UE8M0 powers of two, UE4M3
values (the sign is ignored: the absolute value is used); a NaN scale makes the outputs it touches NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fp8ref.accum import exact
from fp8ref.accum.models import _dot_args, _fmt, _Fp32Out, _gemm_args, check_representable
from fp8ref.accum.params import BlockParams
from fp8ref.formats import E4M3, E8M0, FP32, Format

KINDS = ("mxf8f6f4", "mxf4nvf4")
SCALE_FLOOR = -126  # MMA-Sim: the exponent of a zero UE4M3 scale, and the accumulator's least exponent


def scale_exponents(S: np.ndarray, fmt: Format) -> np.ndarray:
    """int32 exponents of decoded scales: ``floor(log2 s)`` (a UE4M3 subnormal keeps ``emin``), a zero scale
    -126 (MMA-Sim's exponent of zero); NaN gives 0 (its outputs are NaN anyway)."""
    _, e = np.frexp(np.where(np.isfinite(S), S, 1.0))
    e = e.astype(np.int32) - 1
    if fmt.has_subnormals:
        e = np.maximum(e, np.int32(fmt.emin))
    return np.where(S == 0, np.int32(SCALE_FLOOR), e).astype(np.int32)


@dataclass(frozen=True)
class BlockScaled(_Fp32Out):
    """A block-scaled MMA instruction chained along K (module docstring; docs/accumulation.md §4.2).

    ``kind``: ``"mxf8f6f4"`` or ``"mxf4nvf4"``; ``k``: products per instruction; ``block_size``: elements per
    scale along K; ``scale_format``: ``E8M0`` (UE8M0) or ``E4M3`` (UE4M3, sign ignored); ``frac_bits``: the
    alignment width; ``group``: products summed exactly before scaling (0: none); ``formats``: the element
    formats the kind takes (``for_inputs`` checks them). Output and accumulator: fp32, rounded toward zero.
    ``zero_exponent`` (kind::mxf8f6f4): ``None`` drops zero products from the alignment (fp8ref's default,
    the rule of the measured models); an int gives a zero element that exponent, so that its product enters
    the alignment with ``zero_exponent + e(other) + e(sa) + e(sb)`` and may raise it (MMA-Sim's
    ``extract_significand_exponent`` rule: ``-126``)."""

    kind: str
    k: int
    block_size: int
    scale_format: Format
    frac_bits: int
    group: int = 0
    formats: tuple[str, ...] = ("E4M3", "E5M2", "E2M1", "E2M3", "E3M2")
    e_floor: int = SCALE_FLOOR
    zero_exponent: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        z = self.zero_exponent
        if z is not None and (not isinstance(z, (int, np.integer)) or isinstance(z, bool) or abs(z) > 1000):
            raise ValueError(f"zero_exponent must be None or an int in -1000..1000 (MMA-Sim: -126), "
                             f"got {z!r}")
        if z is not None and self.group:
            raise ValueError("zero_exponent: a grouped kind (kind::mxf4nvf4) aligns groups by their scales, "
                             "not products; valid: None")
        object.__setattr__(self, "scale_format", _fmt(self.scale_format, "scale_format"))
        if self.scale_format not in (E8M0, E4M3):
            raise ValueError(f"scale_format must be E8M0 or E4M3, got {self.scale_format.name}")
        if self.group and (self.block_size % self.group or self.k % self.group):
            raise ValueError(f"block_size {self.block_size} and k {self.k} must be multiples of group "
                             f"{self.group}")
        self._set_in_formats()
        for f in (self.in_format, self.format_b):
            if f.name not in self.formats:
                raise ValueError(f"in_format: kind::{self.kind} takes {', '.join(self.formats)}, "
                                 f"not {f.name}")

    def describe(self) -> str:
        ins = self.inputs_label()
        how = "groups of 16 summed exactly" if self.group else "scale exponents added to each product's"
        s = (f"BlockScaled(kind::{self.kind}, k={self.k}, block={self.block_size}, "
             f"scale={self.scale_format.name}, frac_bits={self.frac_bits}, {how}, RZ, in={ins}, out=FP32"
             + ("" if self.zero_exponent is None else f", zero elements at exponent {self.zero_exponent}")
             + ")")
        return self._named(s)

    def for_inputs(self, a_format: Format | str, b_format: Format | str | None = None) -> BlockScaled:
        fa = _fmt(a_format, "a_format")
        fb = fa if b_format is None else _fmt(b_format, "b_format")
        return replace(self, in_format=fa, in_format_b=None if fb == fa else fb)

    def _params(self) -> BlockParams:
        """The record of the kernels: blocks of ``k`` products, fp32 output rounded toward zero."""
        return BlockParams(int(self.k), int(self.frac_bits), FP32.mbits, True, int(self.e_floor),
                           self.in_format.emin, self.format_b.emin, FP32.emin, FP32.emin, FP32.emax, False)

    # ---- scales ----------------------------------------------------------------------------------
    def _scales(self, scale: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
        if scale is None:
            raise ValueError(f"{name}: {self.name or 'this model'} is block-scaled (kind::{self.kind}): pass "
                             f"{name} of shape {shape}")
        arr = np.asarray(scale)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (one scale per {self.block_size} elements "
                             f"along K), got {arr.shape}")
        if self.scale_format == E4M3:
            arr = np.abs(arr)  # UE4M3: the hardware ignores the sign bit
        else:
            bad = ~np.isnan(arr) & ~(arr > 0)
            if bad.any():
                raise ValueError(f"{name} holds {arr[bad][0]!r}, not a UE8M0 value (a power of two "
                                 "2^-127..2^127 or NaN)")
        check_representable(arr, self.scale_format, name)
        return np.ascontiguousarray(arr)

    def _nblocks(self, k: int) -> int:
        return -(-k // self.block_size)

    # ---- evaluation ------------------------------------------------------------------------------
    def dot(self, a: Any, b: Any, c: float = 0.0, *, scale_a: Any = None, scale_b: Any = None) -> float:
        """One chain of instructions over 1-D ``a``, ``b``; ``scale_a``, ``scale_b`` of shape (K/block,)."""
        A, B, cv = _dot_args(self, a, b, c)
        nb = self._nblocks(A.shape[1])
        sa = self._scales(scale_a, "scale_a", (nb,)).reshape(1, nb)
        sb = self._scales(scale_b, "scale_b", (nb,)).reshape(nb, 1)
        return float(self._gemm_scaled(A, B, np.array([[cv]]), sa, sb)[0, 0])

    def dot_exact(self, a: Any, b: Any, c: float = 0.0, *, scale_a: Any = None, scale_b: Any = None) -> float:
        """The slow exact implementation of the rule (:func:`fp8ref.accum.exact.scaled_chain`)."""
        A, B, cv = _dot_args(self, a, b, c)
        nb = self._nblocks(A.shape[1])
        sa = self._scales(scale_a, "scale_a", (nb,))
        sb = self._scales(scale_b, "scale_b", (nb,))
        idx = np.arange(A.shape[1]) // self.block_size
        return exact.scaled_chain(self, A[0].tolist(), B[:, 0].tolist(), cv, sa[idx].tolist(),
                                  sb[idx].tolist())

    def gemm(self, A: Any, B: Any, C: Any = None, *, scale_a: Any = None, scale_b: Any = None) -> np.ndarray:
        """``C + A @ B`` under the instruction: ``scale_a`` (M, K/block), ``scale_b`` (K/block, N)."""
        A, B, C = _gemm_args(self, A, B, C)
        nb = self._nblocks(A.shape[1])
        sa = self._scales(scale_a, "scale_a", (A.shape[0], nb))
        sb = self._scales(scale_b, "scale_b", (nb, B.shape[1]))
        return self._gemm_scaled(A, B, C, sa, sb)

    def _gemm_scaled(self, A: np.ndarray, B: np.ndarray, C: np.ndarray, sa: np.ndarray, sb: np.ndarray
                     ) -> np.ndarray:
        from fp8ref.accum import dispatch

        esa, esb = scale_exponents(sa, self.scale_format), scale_exponents(sb, self.scale_format)
        if self.group:
            return dispatch.group_scaled_gemm(A, B, C, sa, sb, esa, esb, self.block_size, self.group,
                                              self._params())
        return dispatch.product_scaled_gemm(A, B, C, sa, sb, esa, esb, self.block_size, self._params(),
                                            self.in_format, self.format_b, self.zero_exponent)


__all__ = ["BlockScaled", "KINDS", "scale_exponents"]
