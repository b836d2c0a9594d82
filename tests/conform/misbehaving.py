"""Backends that break the rules in every way the conformance harness must survive: wrong result types, an
exception, ``sys.exit``, a hang, a segmentation fault. Module-level classes, so that a worker process can
unpickle them."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import numpy as np

import fp8ref
from fp8ref.backends import Backend, Capabilities

CASTS = Capabilities(formats=("E4M3", "E5M2", "E4M3FNUZ", "E5M2FNUZ"), rounding=("nearest_even",),
                     saturate=(False, True), ops=("quantize", "dequantize", "amax"))


class Casts(Backend):
    """The reference's casts and amax; subclasses break one of them."""

    name = "casts"
    capabilities = CASTS

    def quantize(self, x, fmt, *, rounding="nearest_even", saturate=True, srbits=None, srnumbits=None,
                 seed=None, out=None):
        self.check_quantize(fmt, rounding, saturate, srbits, srnumbits, seed)
        return fp8ref.quantize(x, fmt, rounding=rounding, saturate=saturate)

    def dequantize(self, codes, fmt, *, dtype=np.float32):
        return fp8ref.dequantize(codes, fmt, dtype=dtype)

    def amax(self, x, axis=None, *, nan="propagate"):
        return fp8ref.amax(x, axis=axis, nan=nan)


class Int64Plus256(Casts):
    """Right codes, as int64 values + 256: ``astype(uint8)`` would wrap them back to the right codes."""

    name = "int64-plus-256"

    def quantize(self, x, fmt, **kw):
        return super().quantize(x, fmt, **kw).astype(np.int64) + 256


class FloatPlus04(Casts):
    """Right codes + 0.4 as float64: ``astype(uint8)`` would truncate them to the right codes."""

    name = "float-plus-0.4"

    def quantize(self, x, fmt, **kw):
        return super().quantize(x, fmt, **kw) + 0.4


class WrongShape(Casts):
    name = "wrong-shape"

    def quantize(self, x, fmt, **kw):
        return super().quantize(x, fmt, **kw).reshape(-1)[:-1]


class ListCodes(Casts):
    name = "list-codes"

    def quantize(self, x, fmt, **kw):
        return super().quantize(x, fmt, **kw).tolist()


class Float64Values(Casts):
    """dequantize returns float64 where float32 was asked for."""

    name = "float64-values"

    def dequantize(self, codes, fmt, *, dtype=np.float32):
        return fp8ref.dequantize(codes, fmt, dtype=np.float64)


class NegativeAmax(Casts):
    name = "negative-amax"

    def amax(self, x, axis=None, *, nan="propagate"):
        return -super().amax(x, axis=axis, nan=nan)


class Raises(Casts):
    name = "raises"

    def quantize(self, x, fmt, **kw):
        raise ZeroDivisionError("kernel bug")


class Exits(Casts):
    """``sys.exit(0)`` in quantize: a harness in the same process would stop with status 0 and no report."""

    name = "exits"

    def quantize(self, x, fmt, **kw):
        sys.exit(0)


class HardExits(Casts):
    """``os._exit(0)``: no exception to catch."""

    name = "hard-exits"

    def quantize(self, x, fmt, **kw):
        os._exit(0)


class Hangs(Casts):
    name = "hangs"

    def quantize(self, x, fmt, **kw):
        while True:
            time.sleep(0.05)


class Segfaults(Casts):
    name = "segfaults"

    def quantize(self, x, fmt, **kw):
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)


class DequantizeExitsOnce(Casts):
    """Exits in the first dequantize of each process: the cases after it must run in a new worker."""

    name = "dequantize-exits-once"
    _done = False

    def dequantize(self, codes, fmt, *, dtype=np.float32):
        if not DequantizeExitsOnce._done:
            DequantizeExitsOnce._done = True
            os._exit(3)
        return super().dequantize(codes, fmt, dtype=dtype)


class Prints(Casts):
    """Writes to standard output on every call."""

    name = "prints"

    def quantize(self, x, fmt, **kw):
        print("hello from the backend")
        return super().quantize(x, fmt, **kw)


def exits_on_import() -> Any:
    """A factory that exits before it returns a backend."""
    sys.exit(0)
