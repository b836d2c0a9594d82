"""The one dispatcher of the accumulation kernels.

The models (:mod:`fp8ref.accum.models`) call these functions with checked float64 operands and one
parameter record (:mod:`fp8ref.accum.params`). Here, and only here, it is decided which kernel runs:

* block models (``BlockFMA``, ``Promoted``): the tiled kernel (:mod:`fp8ref.accum.tiled`) when it covers
  the parameters (:func:`fp8ref.accum.tiled.usable`), else the row-wise kernel
  (:mod:`fp8ref.accum.rowwise`); ``.dots`` always row-wise;
* ``Sequential``: the tiled float64-sum kernel when one rounding of the float64 sum is correct
  (:func:`fp8ref.accum.tiled.sequential_usable`), else the row-wise TwoSum kernel;
* ``Exact``: the superaccumulator kernel;
* every kernel in its serial build below ``SERIAL_WORK`` multiply-adds, else its parallel build.

It also prepares the operands the kernels read: per-element alignment exponents and the rows/columns that
hold NaN or Inf.
"""

from __future__ import annotations

import numpy as np

from fp8ref.accum import groupwise, rowwise, tiled
from fp8ref.accum.params import AccParams, BlockParams, acc_params
from fp8ref.accum.primitives import NEG
from fp8ref.formats import FP64

SERIAL_WORK = 1 << 18  # multiply-adds below which a kernel runs on the calling thread


def _pick(pair, work: int):
    return pair[1] if work >= SERIAL_WORK else pair[0]


# --------------------------------------------------------------------------------------------------
# preparation (NumPy)
def exponents(X: np.ndarray, emin: int) -> np.ndarray:
    """int32 array of ``max(floor(log2|x|), emin)``; zeros and non-finite elements get ``NEG``."""
    _, e = np.frexp(X)
    ex = np.maximum(e.astype(np.int32) - 1, np.int32(emin))
    ok = np.isfinite(X) & (X != 0)
    return np.where(ok, ex, np.int32(NEG)).astype(np.int32)


def nonfinite_rows(X: np.ndarray) -> np.ndarray:
    return ~np.isfinite(X).all(axis=1)


def check_block_params(p: BlockParams) -> None:
    # |term| < 2**(F+2), at most nfma + 1 terms per block: the float64 sum must stay exact
    if (p.nfma + 1) * 2.0 ** (p.frac_bits + 2) >= 2.0**53:
        raise ValueError(f"nfma={p.nfma} with frac_bits={p.frac_bits} exceeds the exact float64 block sum "
                         "((nfma+1) * 2**(frac_bits+2) must be < 2**53)")


# --------------------------------------------------------------------------------------------------
# block models
def block_gemm(A: np.ndarray, B: np.ndarray, C: np.ndarray, p: BlockParams, fa, fb, EA=None, EB=None,
               rowwise_only: bool = False) -> np.ndarray:
    """``C + A @ B`` under the block model ``p`` (operands of formats ``fa`` and ``fb``). ``EA`` / ``EB``:
    the elements' alignment exponents when they are not those of their values (block-scaled products);
    ``rowwise_only``: zero elements carry exponents that count (the tiled kernel skips zeros)."""
    check_block_params(p)
    work = A.size * B.shape[1]
    own = EA is not None
    EA = exponents(A, fa.emin) if EA is None else EA
    EB = exponents(B, fb.emin) if EB is None else EB
    if tiled.usable(p) and not rowwise_only:
        return _tiled_block_gemm(A, B, C, p, fa, fb, work, EA, EB, not own)
    BT = np.ascontiguousarray(B.T)
    EBT = np.ascontiguousarray(EB.T)
    return _pick(rowwise.BLOCK_GEMM, work)(A, EA, BT, EBT, C, nonfinite_rows(A), nonfinite_rows(BT), p)


def _tiled_block_gemm(A, B, C, p: BlockParams, fa, fb, work: int, EA, EB, f32_ok: bool) -> np.ndarray:
    Bc = np.ascontiguousarray(B)
    EB = np.ascontiguousarray(EB)
    f32 = f32_ok and tiled.float32_terms(p, fa, fb)
    if f32:
        B32 = Bc.astype(np.float32)
        PA, PB = tiled.pow2_f32(EA), tiled.pow2_f32(EB)
    else:
        B32 = PA = PB = np.zeros((1, 1), dtype=np.float32)
    p32 = p.every > 0 and tiled.float32_promotion(p, C)  # (fast accumulation has no promotion step)
    out, redo = _pick(tiled.BLOCK, work)(A, EA, Bc, EB, B32, PA, PB, f32, p32, C, p)
    badA = nonfinite_rows(A)
    BT = np.ascontiguousarray(B.T)
    badB = nonfinite_rows(BT)
    if redo.any() or badA.any() or badB.any() or not np.isfinite(C).all():
        tiled.fixup(out, redo, A, EA, BT, np.ascontiguousarray(EB.T), C, badA, badB, p)
    return out


def product_scaled_gemm(A, B, C, SA, SB, ESA, ESB, block: int, p: BlockParams, fa, fb,
                        zero_exponent: int | None = None) -> np.ndarray:
    """kind::mxf8f6f4: the block model ``p`` on the scaled operands ``A * sa``, ``B * sb`` (exact: powers of
    two) with each element's exponent raised by its scale's exponent. A zero element keeps ``NEG`` (its
    product drops out of the alignment) or, with ``zero_exponent``, has that exponent (raised by its scale
    like any other): then the row-wise kernel runs, whose block FMA takes every product's exponent (the
    tiled kernel skips zero elements)."""
    k = A.shape[1]
    cols = np.arange(k) // block
    EA, EB = exponents(A, fa.emin), exponents(B, fb.emin)
    if zero_exponent is not None:
        EA = np.where(A == 0, np.int32(zero_exponent), EA)
        EB = np.where(B == 0, np.int32(zero_exponent), EB)
    EA = np.where(EA == NEG, EA, EA + ESA[:, cols]).astype(np.int32)
    EB = np.where(EB == NEG, EB, EB + ESB[cols, :]).astype(np.int32)
    As = np.ascontiguousarray(A * SA[:, cols])
    Bs = np.ascontiguousarray(B * SB[cols, :])
    return block_gemm(As, Bs, C, p, fa, fb, EA, EB, rowwise_only=zero_exponent is not None)


def group_scaled_gemm(A, B, C, SA, SB, ESA, ESB, block: int, group: int, p: BlockParams) -> np.ndarray:
    """kind::mxf4nvf4: instructions of ``p.nfma`` elements, each group of ``group`` products summed exactly,
    the groups aligned by their scale exponents (:data:`groupwise.GROUP_GEMM`)."""
    if p.nfma // group > groupwise.MAX_GROUPS:
        raise ValueError(f"{p.nfma // group} groups per instruction: the kernel holds "
                         f"{groupwise.MAX_GROUPS}")
    return _pick(groupwise.GROUP_GEMM, A.size * B.shape[1])(A, np.ascontiguousarray(B), C, SA, SB, ESA, ESB,
                                                            block, group, p)


def block_dots(A: np.ndarray, B: np.ndarray, c: np.ndarray, p: BlockParams, fa, fb) -> np.ndarray:
    """Row-wise dot products ``c[l] + A[l] . B[l]`` under the block model ``p``."""
    check_block_params(p)
    EA, EB = exponents(A, fa.emin), exponents(B, fb.emin)
    return _pick(rowwise.BLOCK_DOTS, A.size)(A, EA, B, EB, c, nonfinite_rows(A), nonfinite_rows(B), p)


# --------------------------------------------------------------------------------------------------
# sequential and exact models, one addition
def sequential_gemm(A: np.ndarray, B: np.ndarray, C: np.ndarray, acc: AccParams, fa, fb) -> np.ndarray:
    """``C + A @ B`` accumulated in k order into ``acc``, one RNE rounding per addition (an fp64
    accumulator: one fused multiply-add per step)."""
    work = A.size * B.shape[1]
    fp64 = tuple(acc) == tuple(acc_params(FP64))
    if fp64 or tiled.sequential_usable(fa, fb, acc):
        fp32 = tuple(acc) == (23, -126, 127)
        return _pick(tiled.SEQUENTIAL, work)(A, np.ascontiguousarray(B), C, acc, fp32, fp64)
    return _pick(rowwise.SEQUENTIAL, work)(A, np.ascontiguousarray(B.T), C, acc)


def exact_gemm(A: np.ndarray, B: np.ndarray, C: np.ndarray, acc: AccParams) -> np.ndarray:
    """``C + A @ B`` exactly, rounded once (RNE) into ``acc``."""
    BT = np.ascontiguousarray(B.T)
    return _pick(rowwise.EXACT, A.size * B.shape[1])(A, BT, C, nonfinite_rows(A), nonfinite_rows(BT), acc)


def add_round_arrays(x: np.ndarray, y: np.ndarray, acc: AccParams) -> np.ndarray:
    """Element-wise IEEE ``RN(x + y)`` into ``acc`` (``c_mode="last"``)."""
    xf = np.ascontiguousarray(x, dtype=np.float64)
    yf = np.ascontiguousarray(np.broadcast_to(np.asarray(y, dtype=np.float64), xf.shape))
    return rowwise.ADD_ROUND(xf.ravel(), yf.ravel(), acc).reshape(xf.shape)
