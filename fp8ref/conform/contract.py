"""What each backend operation must return, checked on every call the harness makes.

A backend's result is never converted to what it should have been: ``np.asarray(codes, np.uint8)`` would
turn int64 codes + 256 into the right codes and float codes + 0.4 into integers, and score a wrong backend
as exact. :class:`CheckedBackend` forwards each call to the backend and checks the result against the
operation's contract (docs/backends.md, section 2) before anyone converts it:

==============  ==========================================================================================
``quantize``    a NumPy array of dtype ``uint8`` (the dtype of ``out=`` when given), the shape of ``x``;
                codes below ``2**fmt.bits`` (formats narrower than 8 bits)
``dequantize``  a NumPy array of exactly ``dtype=``, the shape of ``codes``
``amax``        ``float32``: a scalar (``np.float32`` or a 0-d array) for ``axis=None``, else an array of
                the reduced shape; no negative value (NaN allowed: it propagates)
``scaled_mm``   an (M, N) array of ``out_dtype``: ``float32``, ``float16``, ``ml_dtypes.bfloat16``; an FP8
                output as the format's ``ml_dtypes`` array (as ``fp8ref.scaled_mm`` returns it) or as
                ``uint8`` codes
==============  ==========================================================================================

A result outside its contract raises :class:`ContractViolation`, which the harness reports as a failure of
the case ("contract violation: quantize returned dtype int64; expected uint8 codes of shape (1642,)").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fp8ref.backends.base import dtype_name
from fp8ref.formats import format as resolve_format

__all__ = ["ContractViolation", "CheckedBackend", "check_result"]


class ContractViolation(Exception):
    """A backend operation returned something its contract excludes; ``op`` names the operation."""

    def __init__(self, op: str, problem: str) -> None:
        self.op = op
        self.problem = problem
        super().__init__(f"{op} {problem}")


def _shape_of(a: Any) -> tuple[int, ...]:
    """The shape of an operand: an array, or a ScaledTensor (its codes)."""
    return tuple(np.shape(getattr(a, "codes", a)))


def _show_shape(shape: tuple[int, ...]) -> str:
    return str(tuple(int(n) for n in shape))


def _expect(op: str, result: Any, dtypes: tuple[np.dtype, ...], shape: tuple[int, ...],
            what: str) -> np.ndarray:
    """``result`` as an array after checking its type, dtype and shape; :class:`ContractViolation` naming
    what was expected and what came back."""
    expected = f"expected {what} of shape {_show_shape(shape)}"
    if not isinstance(result, (np.ndarray, np.generic)):
        raise ContractViolation(op, f"returned {type(result).__module__}.{type(result).__qualname__}; "
                                    f"{expected} (a NumPy array)")
    arr = np.asarray(result)
    if arr.dtype not in dtypes:
        raise ContractViolation(op, f"returned dtype {arr.dtype}; {expected}")
    if arr.shape != tuple(shape):
        raise ContractViolation(op, f"returned shape {_show_shape(arr.shape)}; {expected}")
    return arr


def _float_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def check_result(op: str, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Check the result of ``backend.<op>(*args, **kwargs)`` against the operation's contract."""
    if op == "quantize":
        x, fmt = args[0], resolve_format(args[1])
        out = kwargs.get("out")
        dtypes = (np.dtype(np.uint8),) if out is None else (np.asarray(out).dtype,)
        arr = _expect(op, result, dtypes, np.shape(x), f"{dtypes[0]} codes")
        if fmt.bits < 8 and arr.size and int(arr.view(np.uint8).max()) >= fmt.n_codes:
            raise ContractViolation(op, f"returned code {int(arr.view(np.uint8).max())}; {fmt.name} has "
                                        f"codes 0..{fmt.n_codes - 1}")
    elif op == "dequantize":
        dt = np.dtype(kwargs.get("dtype", np.float32))
        _expect(op, result, (dt,), np.shape(args[0]), f"{dt} values")
    elif op == "amax":
        x = args[0]
        axis = args[1] if len(args) > 1 else kwargs.get("axis")
        shape = np.zeros(np.shape(x), np.bool_).any(axis=axis).shape
        arr = _expect(op, result, (np.dtype(np.float32),), shape, "float32 magnitudes")
        if arr.size and bool(np.any(arr < 0)):
            raise ContractViolation(op, f"returned a negative value ({float(arr[arr < 0].min())!r}); "
                                        "expected magnitudes max(|x|) >= 0")
    elif op == "scaled_mm":
        shape = (_shape_of(args[0])[0], _shape_of(args[1])[1])
        name = dtype_name(kwargs.get("out_dtype", np.float32))
        if name in ("float32", "float16", "bfloat16", "float64"):
            _expect(op, result, (_float_dtype(name),), shape, name)
        else:
            fmt = resolve_format(name)
            dtypes = tuple(np.dtype(d) for d in (fmt.ml_dtype, np.uint8) if d is not None)
            _expect(op, result, dtypes, shape, f"{fmt.name} values ({' or '.join(map(str, dtypes))})")
    elif op == "tensor_core_gemm":  # (gpu, instruction, in_format, in_format_b, out_format, a, b, c, ...)
        from fp8ref.golden.suites.tensorcore import result_dtype

        dt = np.dtype(result_dtype(args[4]))  # float64 for the fp64 instructions
        _expect(op, result, (dt,), np.shape(args[7]), f"{dt.name} values")
    else:
        raise ValueError(f"unknown backend operation {op!r}")


class CheckedBackend:
    """A backend whose every operation's result is checked (:func:`check_result`) before it is returned.

    ``op`` is the operation in progress: set before each call, cleared after it returns, left set when it
    raises (so that an error can name it). ``track`` is called with the same value (the worker process
    publishes it, so that a crash can name the operation it happened in).
    """

    def __init__(self, backend: Any, track: Callable[[str | None], None] | None = None) -> None:
        self.backend = backend
        self.name = backend.name
        self.capabilities = backend.capabilities
        self.op: str | None = None
        self._track = track

    def _enter(self, op: str | None) -> None:
        self.op = op
        if self._track is not None:
            self._track(op)

    def _call(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self._enter(op)
        result = getattr(self.backend, op)(*args, **kwargs)
        check_result(op, result, args, kwargs)
        self._enter(None)
        return result

    def quantize(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("quantize", args, kwargs)

    def dequantize(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("dequantize", args, kwargs)

    def amax(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("amax", args, kwargs)

    def scaled_mm(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("scaled_mm", args, kwargs)

    def tensor_core_gemm(self, *args: Any, **kwargs: Any) -> Any:
        """The golden suite ``tensorcore``'s operation where the backend has it, else :class:`Unsupported`."""
        if not hasattr(self.backend, "tensor_core_gemm"):
            from fp8ref.backends import Unsupported

            raise Unsupported("tensor_core_gemm is not implemented", backend=self.name,
                              op="tensor_core_gemm")
        return self._call("tensor_core_gemm", args, kwargs)
