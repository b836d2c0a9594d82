"""The backend protocol: :class:`Backend`, :class:`Capabilities`, :class:`Unsupported`.

A backend is any implementation of fp8ref's four FP8 operations -- ``quantize``, ``dequantize``, ``amax`` and
``scaled_mm`` -- with the *reference's semantics and signatures* (``fp8ref.quantize``, ``fp8ref.dequantize``,
``fp8ref.amax``, ``fp8ref.scaled_mm``). What it cannot do it refuses with :class:`Unsupported`, which the
conformance harness reports as *skipped*, never as failed. What it does differently from the reference is
not refused: it is returned as computed, and the harness measures the difference.

This module imports only NumPy; backends that need torch import it in their own modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fp8ref.formats import Format
from fp8ref.formats import format as _resolve_format

__all__ = [
    "Backend",
    "Capabilities",
    "Unsupported",
    "BackendUnavailable",
    "OPS",
    "GRANULARITIES",
    "dtype_name",
    "scale_granularity",
]

OPS = ("quantize", "dequantize", "amax", "scaled_mm")
#: scale granularities of ``scaled_mm`` operands, as ``fp8ref.scaled_mm`` names them (docs/matmul.md)
A_GRANULARITIES = ("tensor", "row", "block-1x128", "block-128x128", "block-1x32")
B_GRANULARITIES = ("tensor", "column", "block-128x1", "block-128x128", "block-32x1")
GRANULARITIES = tuple(dict.fromkeys(A_GRANULARITIES + B_GRANULARITIES))


def _format_argument(fmt: Any) -> Format:
    """The format ``fmt`` names; a bad one is a ``TypeError`` / ``ValueError`` that starts ``fmt:``, as in
    ``fp8ref.quantize``."""
    try:
        return _resolve_format(fmt)
    except TypeError as exc:
        raise TypeError(f"fmt: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"fmt: {exc}") from None


class Unsupported(Exception):
    """The backend cannot run this combination of operation and parameters.

    ``backend`` and ``op`` name where it happened; ``reason`` says why in one line. The conformance harness
    counts a case that raises ``Unsupported`` as skipped.
    """

    def __init__(self, reason: str, *, backend: str | None = None, op: str | None = None) -> None:
        self.reason = reason
        self.backend = backend
        self.op = op
        where = ".".join(p for p in (backend, op) if p)
        super().__init__(f"{where}: {reason}" if where else reason)


class BackendUnavailable(RuntimeError):
    """The backend is registered but cannot run here (its optional dependency or device is missing)."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend claims to support. Every field is plain data (names, not objects), JSON-serialisable.

    ``formats``
        element formats (``Format.name``) that ``quantize`` / ``dequantize`` accept.
    ``rounding``
        rounding modes (names of ``fp8ref.cast.ROUNDING_MODES``) that ``quantize`` accepts.
    ``saturate``
        the values of ``saturate=`` that ``quantize`` accepts.
    ``ops``
        the operations implemented (a subset of :data:`OPS`); the others raise :class:`Unsupported`.
    ``mm_formats``
        ``(a_format, b_format)`` pairs that ``scaled_mm`` accepts.
    ``granularities``
        ``(a granularity, b granularity)`` pairs of scales that ``scaled_mm`` accepts, named as
        :func:`scale_granularity` names them (:data:`A_GRANULARITIES` x :data:`B_GRANULARITIES`): torch's
        tensor-wise scaling is ``("tensor", "tensor")``, its row-wise scaling ``("row", "column")``.
    ``out_dtypes``
        ``scaled_mm`` output types: ``"float32"``, ``"float16"``, ``"bfloat16"`` or an FP8 format name.
    ``accumulation``
        the accumulation the backend's ``scaled_mm`` *claims* when called with ``accumulate=None``: a name
        that ``fp8ref.scaled_mm(accumulate=...)`` accepts (``"exact"``, ``"fp32"``, ``"h100-fp8"``, ...), or
        ``None`` when the backend has no ``scaled_mm`` or makes no claim. A claim is a hypothesis for the
        harness to test, not a guarantee. A name the reference does not know is refused (``ValueError``);
        the name is stored as ``fp8ref.accum.PRESETS`` spells it.
    ``accumulation_selectable``
        ``True`` when ``scaled_mm(accumulate=X)`` runs any model ``X`` the reference accepts (an emulator such
        as the reference itself); otherwise only ``None`` and the claimed name are accepted.
    ``device``
        where the computation runs (``"cpu"``, ``"cuda:0"``, ...).
    ``deviations``
        known, documented deviations from the reference, one sentence each.
    """

    formats: tuple[str, ...] = ()
    rounding: tuple[str, ...] = ()
    saturate: tuple[bool, ...] = ()
    ops: tuple[str, ...] = ()
    mm_formats: tuple[tuple[str, str], ...] = ()
    granularities: tuple[tuple[str, str], ...] = ()
    out_dtypes: tuple[str, ...] = ()
    accumulation: str | None = None
    accumulation_selectable: bool = False
    device: str = "cpu"
    deviations: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        bad = [op for op in self.ops if op not in OPS]
        if bad:
            raise ValueError(f"ops: unknown operation(s) {bad}; valid: {list(OPS)}")
        bad = [g for g in self.granularities
               if len(g) != 2 or g[0] not in A_GRANULARITIES or g[1] not in B_GRANULARITIES]
        if bad:
            raise ValueError(f"granularities: unknown (a, b) pair(s) {bad}; a: {list(A_GRANULARITIES)}, "
                             f"b: {list(B_GRANULARITIES)}")
        if self.accumulation is not None:
            object.__setattr__(self, "accumulation", _model_name(self.accumulation))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        d = asdict(self)
        d["mm_formats"] = [list(p) for p in self.mm_formats]
        d["granularities"] = [list(p) for p in self.granularities]
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


class Backend:
    """Base class of every backend: subclass it, set ``name`` and ``capabilities``, override the operations.

    Each operation has the signature and semantics of the reference function of the same name. The default
    implementations raise :class:`Unsupported`, so a casts-only backend overrides ``quantize`` and
    ``dequantize`` only. The ``check_*`` helpers raise :class:`Unsupported` for parameters outside
    ``capabilities``; call them first in an override.

    Arrays in and out are NumPy arrays: codes are ``np.uint8`` arrays, high-precision values ``np.float16``,
    ``ml_dtypes.bfloat16``, ``np.float32`` or ``np.float64`` arrays.
    """

    name: str = ""
    capabilities: Capabilities = Capabilities()

    # ---- the four operations (reference signatures) ------------------------------------------------------
    def quantize(self, x: Any, fmt: Any, *, rounding: str = "nearest_even", saturate: bool = True,
                 srbits: Any = None, srnumbits: int | None = None, seed: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        """``fp8ref.quantize``: encode ``x`` into codes of ``fmt`` (``np.uint8``, the shape of ``x``)."""
        raise Unsupported("quantize is not implemented", backend=self.name, op="quantize")

    def dequantize(self, codes: Any, fmt: Any, *, dtype: Any = np.float32) -> np.ndarray:
        """``fp8ref.dequantize``: decode ``codes`` of ``fmt`` to ``dtype``."""
        raise Unsupported("dequantize is not implemented", backend=self.name, op="dequantize")

    def amax(self, x: Any, axis: Any = None, *, nan: str = "propagate") -> Any:
        """``fp8ref.amax``: ``max(|x|)`` over ``axis`` as float32 (a ``np.float32`` for ``axis=None``)."""
        raise Unsupported("amax is not implemented", backend=self.name, op="amax")

    def scaled_mm(self, a: Any, b: Any, scale_a: Any = 1.0, scale_b: Any = 1.0, *, a_format: Any = "E4M3",
                  b_format: Any = "E4M3", bias: Any = None, out_dtype: Any = np.float32,
                  scale_result: Any = None, accumulate: Any = None, strict_torch: bool = False) -> np.ndarray:
        """``fp8ref.scaled_mm`` of ``a`` (M, K) and ``b`` (K, N): codes, ml_dtypes FP8 arrays or
        ScaledTensors; the output as ``fp8ref.scaled_mm`` returns it (FP8 outputs as ml_dtypes arrays).

        ``accumulate=None`` runs the backend's own accumulation (``capabilities.accumulation``); any other
        value is accepted only by backends with ``capabilities.accumulation_selectable`` or when it names the
        claimed accumulation (:meth:`check_accumulate`).
        """
        raise Unsupported("scaled_mm is not implemented", backend=self.name, op="scaled_mm")

    # ---- helpers for implementations ----------------------------------------------------------------------
    def unsupported(self, op: str, reason: str) -> Unsupported:
        """An :class:`Unsupported` naming this backend and ``op`` (to ``raise``)."""
        return Unsupported(reason, backend=self.name, op=op)

    def check_op(self, op: str) -> None:
        if op not in self.capabilities.ops:
            raise self.unsupported(op, f"{op} is not implemented by this backend")

    def check_format(self, op: str, fmt: Any) -> Format:
        """Resolve ``fmt`` (``ValueError`` / ``TypeError`` naming ``fmt`` if bad); :class:`Unsupported` if
        it is not in ``capabilities.formats``."""
        f = _format_argument(fmt)
        if f.name not in self.capabilities.formats:
            raise self.unsupported(op, f"format {f.name} not supported (supported: "
                                       f"{', '.join(self.capabilities.formats) or 'none'})")
        return f

    def check_quantize(self, fmt: Any, rounding: str, saturate: bool, srbits: Any = None,
                       srnumbits: Any = None, seed: Any = None) -> Format:
        """The checks of ``fp8ref.quantize`` (``ValueError`` / ``TypeError`` for bad arguments, in the
        reference's order), then :class:`Unsupported` for what ``capabilities`` excludes.

        Returns the resolved format."""
        from fp8ref.cast.oracle import ROUNDING_MODES, STOCHASTIC_MODES

        f = _format_argument(fmt)
        if rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
        if not isinstance(saturate, (bool, np.bool_)):
            raise TypeError(f"saturate must be a bool, got {type(saturate).__name__}")
        if rounding not in STOCHASTIC_MODES and (srbits is not None or srnumbits is not None
                                                 or seed is not None):
            raise ValueError(f"srbits, srnumbits and seed apply only to the stochastic rounding modes "
                             f"{STOCHASTIC_MODES}, not to rounding={rounding!r}")
        self.check_op("quantize")
        if f.name not in self.capabilities.formats:
            raise self.unsupported("quantize", f"format {f.name} not supported (supported: "
                                               f"{', '.join(self.capabilities.formats) or 'none'})")
        if rounding not in self.capabilities.rounding:
            raise self.unsupported("quantize", f"rounding={rounding!r} not supported (supported: "
                                               f"{', '.join(self.capabilities.rounding)})")
        if bool(saturate) not in self.capabilities.saturate:
            raise self.unsupported("quantize", f"saturate={bool(saturate)} not supported")
        return f

    def check_accumulate(self, accumulate: Any) -> None:
        """:class:`Unsupported` unless ``accumulate`` is ``None``, the claim, or the backend is selectable."""
        caps = self.capabilities
        if accumulate is None or caps.accumulation_selectable:
            return
        if isinstance(accumulate, str) and accumulate == caps.accumulation:
            return
        raise self.unsupported("scaled_mm", f"accumulate={accumulate!r}: this backend runs only its own "
                                            f"accumulation ({caps.accumulation!r}); pass accumulate=None")

    def describe(self) -> dict[str, Any]:
        """Name, class and capabilities as a JSON-serialisable dict."""
        return {"name": self.name, "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "capabilities": self.capabilities.to_dict()}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# ---- small shared helpers ----------------------------------------------------------------------------------
def _model_name(name: Any) -> str:
    """The ``accumulation`` claim as ``fp8ref.accum.PRESETS`` spells it; refused unless the reference has a
    model of that name (``fp8ref.accum.get``, the lookup ``scaled_mm(accumulate=...)`` uses)."""
    from fp8ref.accum.presets import PRESETS, get

    if not isinstance(name, str):
        raise TypeError(f"accumulation: must be a model name (one of {', '.join(PRESETS)}) or None, "
                        f"got {type(name).__name__}")
    try:
        get(name)
    except ValueError as exc:
        raise ValueError(f"accumulation: {exc}") from None
    return name.strip().lower()  # the key get() found


def dtype_name(dtype: Any) -> str:
    """Canonical name of a ``scaled_mm`` output type: ``"float32"``, ``"float16"``, ``"bfloat16"``, or the
    ``Format.name`` of an FP8 format (given as a Format, a name or an ml_dtypes dtype).

    >>> dtype_name(np.float32), dtype_name("bf16"), dtype_name("e4m3fn")
    ('float32', 'bfloat16', 'E4M3')
    """
    if isinstance(dtype, Format):
        f = dtype
    else:
        try:
            f = _resolve_format(dtype)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"out_dtype: not a float dtype or format: {dtype!r}") from exc
    return {"FP32": "float32", "FP16": "float16", "BF16": "bfloat16", "FP64": "float64"}.get(f.name, f.name)


def scale_granularity(scale: Any, rows: int, cols: int, operand: str) -> str:
    """The granularity ``fp8ref.scaled_mm`` gives a scale for an operand of shape (rows, cols).

    ``operand`` is ``"a"`` (M, K) or ``"b"`` (K, N). The names are those of docs/matmul.md: a scalar is
    ``"tensor"``; ``scale_a`` (M, 1) is ``"row"``, ``scale_b`` (1, N) ``"column"``; then the block shapes
    ``"block-1x128"``, ``"block-128x128"``, ``"block-1x32"`` (a) and ``"block-128x1"``, ``"block-128x128"``,
    ``"block-32x1"`` (b). A shape that fits none raises ``ValueError``.
    """
    from fp8ref.matmul.inputs import a_scales, b_scales

    if operand == "a":
        return a_scales(scale, rows, cols).granularity
    if operand == "b":
        return b_scales(scale, rows, cols).granularity
    raise ValueError(f"operand must be 'a' or 'b', got {operand!r}")
