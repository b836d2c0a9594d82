"""Accumulation models as frozen dataclasses.

Every model has ``name``, ``describe()``, ``.dot(a, b, c=0.0)`` (one dot product of 1-D float arrays) and
``.gemm(A, B, C=None)`` (float64 arrays). ``.dot_exact`` runs the slow exact implementation of the same rule
(:mod:`fp8ref.accum.exact`), the specification the fast kernels are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fp8ref.accum import exact
from fp8ref.accum.params import NO_FLOOR, AccParams, BlockParams, acc_params
from fp8ref.formats import BF16, E4M3, FP16, FP32, FP64, Format
from fp8ref.formats import format as _resolve_format

ROUNDINGS = ("rz", "rne")
C_MODES = ("aligned", "separate", "last")
# the formats a model may take as inputs / produce: IEEE-like, <= 24-bit significand and <= 8 exponent bits,
# so that every value and every product of two values is exact in float64
_MAX_IN_PRECISION = 24
_MAX_IN_EBITS = 8


def _fmt(value: Any, name: str) -> Format:
    if isinstance(value, Format):
        return value
    if isinstance(value, str):
        try:
            return _resolve_format(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc
    raise TypeError(f"{name} must be a Format or a format name, got {type(value).__name__}")


def _check_in_format(fmt: Format, name: str, fp64_acc: bool = False) -> None:
    if fp64_acc and fmt == FP64:  # Sequential(FP64): the fp64 FMA chain takes any float64
        return
    if not fmt.signed or not fmt.has_zero or fmt.precision > _MAX_IN_PRECISION or fmt.ebits > _MAX_IN_EBITS:
        raise ValueError(f"{name}={fmt.name}: input formats must be signed with zero, at most "
                         f"{_MAX_IN_EBITS} exponent bits and {_MAX_IN_PRECISION} significand bits"
                         + ("" if fmt != FP64 else " (FP64 inputs: Sequential(FP64, in_format=FP64), the "
                            "fp64 FMA chain)"))


def _check_out_format(fmt: Format, name: str, fp64_ok: bool = False) -> None:
    if fp64_ok and fmt == FP64:
        return
    if fmt.nan != "ieee" or fmt.precision > 24 or fmt.ebits > 8:
        raise ValueError(f"{name}={fmt.name}: accumulator/output formats must be IEEE-like (Inf and NaN) "
                         "with at most 8 exponent and 24 significand bits, e.g. FP32, FP16, BF16"
                         + (" (FP64: Sequential(FP64), the fp64 FMA chain)" if fmt == FP64 else ""))


# --------------------------------------------------------------------------------------------------
# input validation shared by the models
def as_vector(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def as_matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    return arr


def check_representable(x: np.ndarray, fmt: Format, name: str) -> None:
    """Raise ``ValueError`` unless every element of ``x`` is a value of ``fmt`` (NaN/Inf where encodable)."""
    bad = np.zeros(x.shape, dtype=bool)
    nan = np.isnan(x)
    inf = np.isinf(x)
    if fmt.nan == "none":
        bad |= nan
    if not fmt.has_inf:
        bad |= inf
    fin = np.isfinite(x) & (x != 0)
    if fin.any():
        v = x[fin]
        _, e = np.frexp(v)
        q = np.maximum(e - 1, fmt.emin) - fmt.mbits
        y = np.ldexp(v, -q)
        sub = (y != np.trunc(y)) | (np.abs(v) > fmt.max)
        bad[fin] |= sub
    if bad.any():
        idx = np.argwhere(bad)[0]
        raise ValueError(f"{name}{list(map(int, idx))} = {x[tuple(idx)]!r} is not a value of {fmt.name} "
                         f"({int(bad.sum())} such element(s))")


def check_c(c: Any, fmt: Format, name: str = "c") -> float:
    try:
        v = float(c)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real number, got {c!r}") from exc
    check_representable(np.array([v]), fmt, name)
    return v


def check_C(C: Any, shape: tuple[int, int], fmt: Format) -> np.ndarray:
    if C is None:
        return np.zeros(shape, dtype=np.float64)
    arr = np.asarray(C)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"C must hold real numbers, got dtype {arr.dtype}")
    arr = np.array(np.broadcast_to(arr.astype(np.float64), shape)) if arr.shape != shape and arr.ndim <= 2 \
        and _broadcastable(arr.shape, shape) else arr.astype(np.float64)
    if arr.shape != shape:
        raise ValueError(f"C must have shape {shape} (M, N) or broadcast to it, got {np.shape(C)}")
    check_representable(arr, fmt, "C")
    return np.ascontiguousarray(arr)


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def check_ab(A: np.ndarray, B: np.ndarray) -> None:
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"inner dimensions differ: A is {A.shape} (M, K), B is {B.shape} (K, N)")


class _Model:
    """What every accumulation model shares: ``dot`` and ``gemm`` check their arguments and call the
    model's ``_gemm_checked(A, B, C)`` on float64 arrays; models with their own operand formats
    (``in_format``, ``in_format_b``) also share ``format_b`` and ``for_inputs``."""

    name: str

    @property
    def c_format(self) -> Format:
        """Format of the accumulator input ``c`` / ``C``: the model's output format."""
        return self.out_format  # type: ignore[attr-defined]

    def _named(self, s: str) -> str:
        return f"{self.name}: {s}" if self.name else s

    def _gemm_checked(self, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _exact(self, a: list[float], b: list[float], c: float) -> float:
        raise NotImplementedError

    def dot_exact(self, a: Any, b: Any, c: float = 0.0) -> float:
        """The slow exact implementation of the model's rule (:mod:`fp8ref.accum.exact`), one dot product."""
        A, B, cv = _dot_args(self, a, b, c)
        return self._exact(A[0].tolist(), B[:, 0].tolist(), cv)

    def _no_scales(self, scale_a: Any, scale_b: Any) -> None:
        for nm, v in (("scale_a", scale_a), ("scale_b", scale_b)):
            if v is not None:
                raise ValueError(f"{nm}: {self.name or type(self).__name__} is not a block-scaled "
                                 "instruction and takes no scales; valid: None (block-scaled models come "
                                 "from tensor_core(..., block_size=16|32, scale_format='E8M0'|'E4M3'))")

    def dot(self, a: Any, b: Any, c: float = 0.0, *, scale_a: Any = None, scale_b: Any = None) -> float:
        """One dot product ``c + sum a_k*b_k`` of 1-D arrays of exactly representable inputs (``scale_a`` /
        ``scale_b``: only ``None``; block-scaled models take them)."""
        self._no_scales(scale_a, scale_b)
        A, B, cv = _dot_args(self, a, b, c)
        return float(self._gemm_checked(A, B, np.array([[cv]]))[0, 0])

    def gemm(self, A: Any, B: Any, C: Any = None, *, scale_a: Any = None, scale_b: Any = None) -> np.ndarray:
        """``C + A @ B`` under the model, (M, K) x (K, N) float64 arrays of representable inputs."""
        self._no_scales(scale_a, scale_b)
        A, B, C = _gemm_args(self, A, B, C)
        return self._gemm_checked(A, B, C)


class _OwnFormats(_Model):
    in_format: Format
    in_format_b: Format | None

    def _set_formats(self, acc_field: str, fp64_ok: bool = False) -> None:
        """Resolve and check the accumulator (= output) format field ``acc_field``, ``in_format`` and
        ``in_format_b`` (a frozen dataclass's ``__post_init__``); ``fp64_ok``: the model takes an FP64
        accumulator, and FP64 inputs with it."""
        acc = _fmt(getattr(self, acc_field), acc_field)
        object.__setattr__(self, acc_field, acc)
        _check_out_format(acc, acc_field, fp64_ok)
        self._set_in_formats(fp64_ok and acc == FP64)

    def _set_in_formats(self, fp64_acc: bool = False) -> None:
        """Resolve and check ``in_format`` and ``in_format_b`` (``fp64_acc``: FP64 is one of them too)."""
        object.__setattr__(self, "in_format", _fmt(self.in_format, "in_format"))
        _check_in_format(self.in_format, "in_format", fp64_acc)
        if self.in_format_b is not None:
            object.__setattr__(self, "in_format_b", _fmt(self.in_format_b, "in_format_b"))
            _check_in_format(self.in_format_b, "in_format_b", fp64_acc)

    @property
    def format_b(self) -> Format:
        return self.in_format if self.in_format_b is None else self.in_format_b

    def inputs_label(self) -> str:
        """The operand formats for ``describe``: ``E4M3``, or ``E4M3xE5M2`` for a mixed pair."""
        return self.in_format.name + (f"x{self.format_b.name}" if self.in_format_b is not None else "")

    def for_inputs(self, a_format: Format | str, b_format: Format | str | None = None) -> Any:
        """The same model for operands of ``a_format`` x ``b_format`` (default: ``a_format`` for both)."""
        fa = _fmt(a_format, "a_format")
        fb = fa if b_format is None else _fmt(b_format, "b_format")
        return replace(self, in_format=fa, in_format_b=None if fb == fa else fb)


@dataclass(frozen=True, kw_only=True)
class _Fp32Out(_OwnFormats):
    """An instruction model whose instruction fixes the accumulator and the output to fp32 (block-scaled
    MMA, AMD MFMA). Its operand formats and labels are keyword-only fields, after the instruction's own."""

    in_format: Format
    in_format_b: Format | None = None
    name: str = field(default="", compare=False)
    confirmed: bool = field(default=True, compare=False)
    source: str = field(default="", compare=False, repr=False)

    @property
    def out_format(self) -> Format:
        return FP32


# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockFMA(_OwnFormats):
    """The parametrised block-FMA model of a tensor-core dot product (docs/accumulation.md §2).

    Blocks of ``nfma`` consecutive products and the accumulator are aligned to their largest exponent
    ``E`` (clamped below by ``e_floor``; ``None`` = no clamp), each aligned term is truncated toward zero
    to ``frac_bits`` fraction bits below ``2**E``, the integer sum is exact, and the result is rounded once
    (``rounding``: ``"rz"`` or ``"rne"``) to ``out_frac_bits`` fraction bits in the range of
    ``out_format``. The rounded block result is the next block's accumulator (chained over all of K).

    ``c_mode="aligned"`` (all GPUs but B200 FP8): the accumulator input is one more term of the block.
    ``c_mode="separate"`` (B200 FP8): the block's products alone are aligned, truncated, summed and rounded
    (``rounding``), then added to the accumulator input with one IEEE round-to-nearest-even addition to
    ``out_frac_bits`` fraction bits.

    ``c_mode="last"`` (H100/H200/B200 FP8 with fp16 output): the blocks are chained from an accumulator of
    0 (each aligned and rounded as in ``"aligned"``); the accumulator input is added to the chain's result at
    the end with one IEEE round-to-nearest-even addition to ``out_frac_bits`` fraction bits.

    ``k_order`` (``None`` = natural order): a permutation of ``range(m)`` applied to every consecutive chunk
    of ``m`` elements before the blocks are formed (the products enter the blocks in the order
    ``k0 + k_order[0], k0 + k_order[1], ...``); a last partial chunk of ``r < m`` elements takes the entries
    of ``k_order`` below ``r`` in the same order.

    ``in_format`` / ``in_format_b`` give the operand formats (subnormal operands keep the exponent
    ``emin`` of their format when aligned); ``in_format_b=None`` means the same as ``in_format``.
    ``confirmed=False`` marks a best-known model that measurements do not (fully) reproduce.
    """

    nfma: int
    frac_bits: int
    out_frac_bits: int = 23
    rounding: str = "rz"
    e_floor: int | None = None
    in_format: Format = E4M3
    out_format: Format = FP32
    in_format_b: Format | None = None
    c_mode: str = "aligned"
    k_order: tuple[int, ...] | None = None
    name: str = field(default="", compare=False)
    confirmed: bool = field(default=True, compare=False)
    source: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.c_mode not in C_MODES:
            raise ValueError(f"c_mode must be one of {C_MODES}, got {self.c_mode!r}")
        if self.k_order is not None:
            try:
                ko = tuple(int(i) for i in self.k_order)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"k_order must be None or a permutation of range(m), got {self.k_order!r}") \
                    from exc
            if not ko or sorted(ko) != list(range(len(ko))):
                raise ValueError(f"k_order must be None or a permutation of range(m), got {self.k_order!r}")
            object.__setattr__(self, "k_order", ko)
        for attr in ("nfma", "frac_bits", "out_frac_bits"):
            v = getattr(self, attr)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(f"{attr} must be an int, got {v!r}")
        if not 1 <= self.nfma <= 4096:
            raise ValueError(f"nfma must be in 1..4096, got {self.nfma}")
        if not 0 <= self.frac_bits <= 48:
            raise ValueError(f"frac_bits must be in 0..48, got {self.frac_bits}")
        object.__setattr__(self, "in_format", _fmt(self.in_format, "in_format"))
        object.__setattr__(self, "out_format", _fmt(self.out_format, "out_format"))
        if self.in_format_b is not None:
            object.__setattr__(self, "in_format_b", _fmt(self.in_format_b, "in_format_b"))
            _check_in_format(self.in_format_b, "in_format_b")
        _check_in_format(self.in_format, "in_format")
        _check_out_format(self.out_format, "out_format")
        if not 0 <= self.out_frac_bits <= self.out_format.mbits:
            raise ValueError(f"out_frac_bits must be in 0..{self.out_format.mbits} for out_format "
                             f"{self.out_format.name}, got {self.out_frac_bits}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        if self.e_floor is not None and (not isinstance(self.e_floor, (int, np.integer))
                                         or not -100000 < self.e_floor < 100000):
            raise ValueError(f"e_floor must be None or an int in (-1e5, 1e5), got {self.e_floor!r}")

    # ---- description ---------------------------------------------------------------------------
    def describe(self) -> str:
        ins = self.inputs_label()
        floor = "none" if self.e_floor is None else str(self.e_floor)
        cm = "" if self.c_mode == "aligned" else f", c_mode={self.c_mode}"
        if self.k_order is not None:
            cm += f", k_order={list(self.k_order)}"
        s = (f"BlockFMA(nfma={self.nfma}, frac_bits={self.frac_bits}, out_frac_bits={self.out_frac_bits}, "
             f"rounding={self.rounding}, e_floor={floor}{cm}, in={ins}, out={self.out_format.name})")
        if self.name:
            s = f"{self.name}: {s}"
        if not self.confirmed:
            s += " [unconfirmed]"
        return s

    def _params(self, every: int = 0, acc: Format = FP32) -> BlockParams:
        """The model as the kernels and the exact oracle read it; ``every`` and ``acc``: the promotion of
        a :class:`Promoted` model with this inner model (0: none)."""
        floor = NO_FLOOR if self.e_floor is None else int(self.e_floor)
        return BlockParams(int(self.nfma), int(self.frac_bits), int(self.out_frac_bits),
                           self.rounding == "rz", floor, self.in_format.emin, self.format_b.emin,
                           self.c_format.emin, self.out_format.emin, self.out_format.emax,
                           self.c_mode == "separate", int(every), acc.mbits, acc.emin, acc.emax)

    # ---- evaluation ----------------------------------------------------------------------------
    def _exact(self, a: list[float], b: list[float], c: float) -> float:
        return exact.bfma_chain(self, a, b, c)

    def k_permutation(self, k: int) -> np.ndarray:
        """The order in which the ``k`` products enter the blocks (``k_order`` applied chunk by chunk)."""
        if self.k_order is None:
            return np.arange(k)
        m = len(self.k_order)
        idx = [k0 + p for k0 in range(0, k, m) for p in self.k_order if k0 + p < k]
        return np.array(idx, dtype=np.int64)

    def _run(self, kernel: Any, A: np.ndarray, B: np.ndarray, C: np.ndarray, b_k_axis: int) -> np.ndarray:
        """``kernel`` (a dispatcher entry) after the ``k_order`` permutation of the K axis of ``A`` and of
        ``B`` (its axis ``b_k_axis``); with ``c_mode="last"`` from a zero accumulator, then ``C`` added with
        one RNE addition."""
        if self.k_order is not None:
            perm = self.k_permutation(A.shape[1])
            A, B = np.ascontiguousarray(A[:, perm]), np.ascontiguousarray(np.take(B, perm, axis=b_k_axis))
        p = self._params()
        if self.c_mode != "last":
            return kernel(A, B, C, p, self.in_format, self.format_b)
        from fp8ref.accum import dispatch

        d = kernel(A, B, np.zeros_like(C), p, self.in_format, self.format_b)
        return dispatch.add_round_arrays(d, C, AccParams(p.out_frac_bits, p.out_emin, p.out_emax))

    def dots(self, A: Any, B: Any, c: Any = None) -> np.ndarray:
        """Row-wise dot products: ``out[l] = dot(A[l], B[l], c[l])`` for (L, K) arrays ``A``, ``B``."""
        from fp8ref.accum import dispatch

        return self._run(dispatch.block_dots, *_dots_args(self, A, B, c), 1)

    def _gemm_checked(self, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
        from fp8ref.accum import dispatch

        return self._run(dispatch.block_gemm, A, B, C, 0)


@dataclass(frozen=True)
class Promoted(_Model):
    """GEMM-level two-level accumulation (DeepSeek-V3 / CUTLASS ``GmmaFP8Accumulation``): the partial sum of
    each group of ``every`` consecutive K-elements is computed by ``inner`` starting from 0, then added to an
    ``acc_format`` (fp32) accumulator with one round-to-nearest-even addition. The accumulator starts at
    ``c``."""

    inner: BlockFMA
    every: int = 128
    acc_format: Format = FP32
    name: str = field(default="", compare=False)
    confirmed: bool = field(default=True, compare=False)
    source: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.inner, BlockFMA):
            raise TypeError(f"inner must be a BlockFMA, got {type(self.inner).__name__}")
        if self.inner.c_mode == "last" or self.inner.k_order is not None:
            raise ValueError("inner: Promoted takes a BlockFMA with c_mode 'aligned' or 'separate' and no "
                             "k_order")
        if not isinstance(self.every, (int, np.integer)) or isinstance(self.every, bool) or self.every < 1:
            raise ValueError(f"every must be a positive int, got {self.every!r}")
        object.__setattr__(self, "acc_format", _fmt(self.acc_format, "acc_format"))
        _check_out_format(self.acc_format, "acc_format")

    @property
    def in_format(self) -> Format:
        return self.inner.in_format

    @property
    def format_b(self) -> Format:
        return self.inner.format_b

    @property
    def out_format(self) -> Format:
        return self.acc_format

    def describe(self) -> str:
        s = f"Promoted(every={self.every}, acc={self.acc_format.name}, inner={self.inner.describe()})"
        return self._named(s)

    def for_inputs(self, a_format: Format | str, b_format: Format | str | None = None) -> Promoted:
        return replace(self, inner=self.inner.for_inputs(a_format, b_format))

    def _exact(self, a: list[float], b: list[float], c: float) -> float:
        return exact.promoted_dot(self, a, b, c)

    def dots(self, A: Any, B: Any, c: Any = None) -> np.ndarray:
        """Row-wise dot products: ``out[l] = dot(A[l], B[l], c[l])`` for (L, K) arrays ``A``, ``B``."""
        from fp8ref.accum import dispatch

        A, B, c = _dots_args(self, A, B, c)
        return dispatch.block_dots(A, B, c, self._params(), self.in_format, self.format_b)

    def _gemm_checked(self, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
        from fp8ref.accum import dispatch

        return dispatch.block_gemm(A, B, C, self._params(), self.in_format, self.format_b)

    def _params(self) -> BlockParams:
        return self.inner._params(self.every, self.acc_format)


@dataclass(frozen=True)
class Sequential(_OwnFormats):
    """Sequential accumulation in k order in ``acc_format``: ``acc = RN(c)``, then for each k
    ``acc = RN_acc(acc + a_k*b_k)`` where the product is exact and the addition rounds once to nearest
    even (a fused multiply-add per element; IEEE specials and signed zeros). ``acc_format=FP64`` is the
    fp64 FMA chain of the f64 tensor-core instructions (NVIDIA DMMA, AMD MFMA f64), which also takes FP64
    inputs."""

    acc_format: Format = FP32
    in_format: Format = E4M3
    in_format_b: Format | None = None
    name: str = field(default="", compare=False)
    confirmed: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        self._set_formats("acc_format", fp64_ok=True)

    @property
    def out_format(self) -> Format:
        return self.acc_format

    def describe(self) -> str:
        s = f"Sequential(acc={self.acc_format.name}, RNE per addition, exact products, k order)"
        return self._named(s)

    def _exact(self, a: list[float], b: list[float], c: float) -> float:
        return exact.sequential_dot(a, b, c, self.acc_format)

    def _gemm_checked(self, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
        from fp8ref.accum import dispatch

        return dispatch.sequential_gemm(A, B, C, acc_params(self.acc_format), self.in_format, self.format_b)


def fp64_fma_chain(name: str = "") -> Sequential:
    """The model of the f64 matrix instructions (NVIDIA mma .f64 / DMMA, AMD's f64 MFMA): no block FMA but
    one fp64 fused multiply-add per product in k order, starting from c (MMA-Sim's ``fma`` operation)."""
    return Sequential(FP64, in_format=FP64, name=name)


@dataclass(frozen=True)
class Exact(_OwnFormats):
    """The exact value of ``c + sum_k a_k*b_k`` rounded once to nearest even in ``out_format``; order
    independent."""

    out_format: Format = FP32
    in_format: Format = E4M3
    in_format_b: Format | None = None
    name: str = field(default="", compare=False)
    confirmed: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        self._set_formats("out_format")

    def describe(self) -> str:
        s = f"Exact(one RNE rounding to {self.out_format.name})"
        return self._named(s)

    def _exact(self, a: list[float], b: list[float], c: float) -> float:
        return exact.exact_dot(a, b, c, self.out_format)

    def _gemm_checked(self, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
        from fp8ref.accum import dispatch

        return dispatch.exact_gemm(A, B, C, acc_params(self.out_format))


Model = BlockFMA | Promoted | Sequential | Exact


def _dot_args(model: Any, a: Any, b: Any, c: Any) -> tuple[np.ndarray, np.ndarray, float]:
    av = as_vector(a, "a")
    bv = as_vector(b, "b")
    if av.shape != bv.shape:
        raise ValueError(f"a and b must have the same length, got {av.shape} and {bv.shape}")
    check_representable(av, model.in_format, "a")
    check_representable(bv, model.format_b, "b")
    cv = check_c(c, model.c_format)
    return av.reshape(1, -1), np.ascontiguousarray(bv.reshape(-1, 1)), cv


def _gemm_args(model: Any, A: Any, B: Any, C: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Am = as_matrix(A, "A")
    Bm = as_matrix(B, "B")
    check_ab(Am, Bm)
    check_representable(Am, model.in_format, "A")
    check_representable(Bm, model.format_b, "B")
    Cm = check_C(C, (Am.shape[0], Bm.shape[1]), model.c_format)
    return Am, Bm, Cm


def _dots_args(model: Any, A: Any, B: Any, c: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Am = as_matrix(A, "A")
    Bm = as_matrix(B, "B")
    if Am.shape != Bm.shape:
        raise ValueError(f"A and B must have the same (L, K) shape, got {Am.shape} and {Bm.shape}")
    check_representable(Am, model.in_format, "A")
    check_representable(Bm, model.format_b, "B")
    if c is None:
        cv = np.zeros(Am.shape[0])
    else:
        cv = np.ascontiguousarray(np.broadcast_to(np.asarray(c, dtype=np.float64), (Am.shape[0],)))
        check_representable(cv, model.c_format, "c")
    return Am, Bm, cv


# formats referenced by presets (kept here so presets.py stays data)
__all__ = ["BlockFMA", "Promoted", "Sequential", "Exact", "Model", "ROUNDINGS", "C_MODES", "FP16", "BF16",
           "FP32"]
