"""The public casts: argument checking and dispatch to the Numba kernels (imported on first call)."""

from __future__ import annotations

import operator
from functools import lru_cache
from typing import Any

import numpy as np

from fp8ref.cast.oracle import ROUNDING_MODES, STOCHASTIC_MODES
from fp8ref.formats import Format
from fp8ref.formats import format as _resolve_format


def _fmt(fmt: Any) -> Format:
    try:
        f = _resolve_format(fmt)
    except TypeError as exc:
        raise TypeError(f"fmt: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"fmt: {exc}") from None
    if f.bits > 16:
        raise ValueError(f"fmt: {f.name} has {f.bits}-bit codes; quantize/dequantize handle formats of at "
                         "most 16 bits (codes are uint8, or uint16 for 9..16 bits)")
    return f


def _code_dtype(f: Format) -> np.dtype:
    return np.dtype(np.uint8) if f.bits <= 8 else np.dtype(np.uint16)


def _float_input(x: Any) -> np.ndarray:
    """``x`` as a native-endian float32 or float64 array holding exactly the same values."""
    if isinstance(x, (bool, np.bool_, int, np.integer, complex, np.complexfloating)):
        raise TypeError(f"x must hold floating-point values (float16, bfloat16, float32, float64), "
                        f"got {type(x).__name__}")
    a = np.asarray(x)
    dt = a.dtype
    if dt.kind == "f" and dt.type in (np.float16, np.float32, np.float64):
        if dt.itemsize == 2:
            return a.astype(np.float32)  # exact
        return a.astype(dt.newbyteorder("="), copy=False)
    if dt.kind in "fV" and dt.itemsize <= 2 and dt.type.__module__.startswith("ml_dtypes"):
        import ml_dtypes

        try:
            ml_dtypes.finfo(dt)
        except Exception:  # noqa: BLE001 - any failure means "not an ml_dtypes float"
            pass
        else:
            return a.astype(np.float32)  # every ml_dtypes float widens exactly to float32
    if dt.kind == "f":
        raise TypeError(f"x: {dt} is not supported (its values do not all fit float64 exactly); "
                        "use float16, bfloat16, float32 or float64")
    raise TypeError(f"x must hold floating-point values (float16, bfloat16, float32, float64), got dtype "
                    f"{dt}")


def _check_out(out: Any, shape: tuple[int, ...], dtypes: tuple[np.dtype, ...], shape_of: str) -> np.ndarray:
    """``out`` checked: a writable NumPy array of ``shape`` and one of ``dtypes`` (the first one is the
    dtype the kernels write; the others must be views of it)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.dtype not in dtypes:
        raise TypeError(f"out must have dtype {' or '.join(str(d) for d in dtypes)}, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, {shape_of} has shape {shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def _code_dtypes(f: Format) -> tuple[np.dtype, ...]:
    """The dtypes a code array of ``f`` may have: uint8 / uint16, or the format's ml_dtypes dtype."""
    cdt = _code_dtype(f)
    ml = f.ml_dtype
    return (cdt,) if ml is None or ml.itemsize != cdt.itemsize else (cdt, ml)


def _overlaps(out: np.ndarray, *inputs: np.ndarray | None) -> bool:
    """Whether writing ``out`` could change one of ``inputs`` before it is read: any shared byte. The
    bounds test first, then NumPy's exact test (assumed to overlap when that is too costly to decide)."""
    for a in inputs:
        if a is None or not np.may_share_memory(out, a):
            continue
        try:
            if np.shares_memory(out, a, max_work=1 << 16):
                return True
        except np.exceptions.TooHardError:
            return True
    return False



def _integer(value: Any, name: str) -> int:
    """``value`` as a Python int (an integer of any kind, not a bool); ``TypeError`` naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def _random_args(rounding: str, shape: tuple[int, ...], srbits: Any, srnumbits: Any,
                 seed: Any) -> tuple[np.ndarray | None, int, int | None]:
    """Checked stochastic arguments: (bits as int64 of x's shape or None, srnumbits, seed or None)."""
    if rounding not in STOCHASTIC_MODES:
        if srbits is not None or srnumbits is not None or seed is not None:
            raise ValueError(f"srbits, srnumbits and seed apply only to the stochastic rounding modes "
                             f"{STOCHASTIC_MODES}, not to rounding={rounding!r}")
        return None, 0, None
    if srbits is not None and seed is not None:
        raise ValueError("pass either srbits (with srnumbits) or seed, not both")
    if srbits is None and seed is None:
        raise ValueError(f"rounding={rounding!r} needs random bits: pass srbits= with srnumbits=, or seed=")
    if srnumbits is None:
        if srbits is not None:
            raise ValueError("srnumbits (the number of random bits, 1..32) is required with srbits")
        srnumbits = 32
    r = _integer(srnumbits, "srnumbits")
    if not 1 <= r <= 32:
        raise ValueError(f"srnumbits must be in 1..32, got {r}")
    if seed is not None:
        s = _integer(seed, "seed")
        if not 0 <= s < 1 << 64:
            raise ValueError(f"seed must be in [0, 2**64), got {s}")
        return None, r, s
    b = np.asarray(srbits)
    if b.dtype.kind not in "iu":
        raise TypeError(f"srbits must be an integer array, got dtype {b.dtype}")
    try:
        b = np.broadcast_to(b, shape)
    except ValueError:
        raise ValueError(f"srbits of shape {b.shape} does not broadcast to the shape of x {shape}") from None
    if b.size:
        lo, hi = int(b.min()), int(b.max())
        if lo < 0 or hi >= 1 << r:
            raise ValueError(f"srbits must lie in [0, 2**srnumbits) = [0, {1 << r}), "
                             f"got values in [{lo}, {hi}]")
    return np.ascontiguousarray(b, dtype=np.int64).reshape(-1), r, None


def quantize(x: Any, fmt: Any, *, rounding: str = "nearest_even", saturate: bool = True,
             srbits: Any = None, srnumbits: int | None = None, seed: int | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
    """Round every element of ``x`` once, directly from its own precision, to a code of ``fmt``.

    Args:
      x: float16, ml_dtypes bfloat16, float32 or float64 array-like (or a Python float). Integer and
        complex input raise ``TypeError``.
      fmt: a :class:`~fp8ref.Format` or any name :func:`fp8ref.format` resolves.
      rounding: one of :data:`ROUNDING_MODES`.
      saturate: ``True``: finite overflow and +-Inf give +-max (NaN stays NaN). ``False``: the OCP rule:
        overflow gives Inf where the format has it, else NaN; directed modes never overflow toward zero.
      srbits, srnumbits: the random bits ``R`` (integers broadcastable to ``x``, ``0 <= R < 2**srnumbits``)
        and their count ``1..32`` for the stochastic modes.
      seed: instead of ``srbits``: bits from Philox-4x32-10 keyed by ``seed`` and the flat index
        (``srnumbits`` defaults to 32).
      out: optional writable array of ``x``'s shape, dtype uint8 (uint16 for 9..16-bit formats) or the
        format's ml_dtypes dtype, to write the codes into. It may overlap ``x`` (or ``srbits``) in memory:
        the result is the same as with a separate array (the codes then go through a temporary).

    Returns:
      The codes: uint8 (uint16 for formats of 9..16 bits), same shape as ``x`` (``out`` if given).
    """
    f = _fmt(fmt)
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
    if not isinstance(saturate, (bool, np.bool_)):
        raise TypeError(f"saturate must be a bool, got {type(saturate).__name__}")
    a = _float_input(x)
    rbits, r, s = _random_args(rounding, a.shape, srbits, srnumbits, seed)
    if out is not None:
        _check_out(out, a.shape, _code_dtypes(f), "x")

    from fp8ref.cast import kernels as k
    from fp8ref.cast.encode import encoder_params

    p = encoder_params(f, rounding, bool(saturate))
    src = np.ascontiguousarray(a).reshape(-1)
    # codes go straight into out when it is contiguous, a failure cannot leave it half-written (formats
    # with NaN encode every input), and it shares no memory with what the kernel reads
    direct = (out is not None and out.flags.c_contiguous and f.nan_code is not None
              and not _overlaps(out, src, rbits))
    res = out.view(_code_dtype(f)) if direct else np.empty(a.shape, dtype=_code_dtype(f))
    flat = res.reshape(-1)
    if flat.size:
        with k.threads_for(flat.size), np.errstate(invalid="ignore"):  # NaN float16 -> float64 warns
            nerr = _encode(k, src, f, p, rbits, r, s, flat)
        if nerr:
            raise ValueError(f"{nerr} element(s) of x have no encoding in {f.name}, which has no NaN: "
                             "NaN input, or overflow with saturate=False")
    if out is None:
        return res
    if not direct:
        out.view(res.dtype)[...] = res
    return out


def _encode(k: Any, src: np.ndarray, f: Format, p: Any, rbits: np.ndarray | None, r: int, s: int | None,
            flat: np.ndarray) -> int:
    """Run the kernel that fits the input dtype, format and mode into ``flat`` (a fast encoder where it
    covers the format and mode, else the general one); returns the number of elements that have no
    encoding (formats without NaN)."""
    from fp8ref.cast import encode

    if src.dtype == np.float32 and encode.fast_ok(f):
        if p.mode in encode.F32_MODES:
            return k.quantize_f32(src, p, flat)
        if p.mode in encode.F32_STOCHASTIC_MODES and encode.f32_stochastic_ok(f):
            if s is not None:
                return k.quantize_f32_seeded(src, p, s & 0xFFFFFFFF, s >> 32, r, flat)
            return k.quantize_f32_srbits(src, p, rbits, r, flat)
    x64 = src.astype(np.float64, copy=False)
    if p.mode == encode.NEAREST_EVEN and encode.fast_ok(f, 52):
        return k.quantize_rne_f64(x64, p, flat)
    if s is not None:
        return k.quantize_f64_seeded(x64, p, s & 0xFFFFFFFF, s >> 32, r, flat)
    if rbits is not None:
        return k.quantize_f64_srbits(x64, p, rbits, r, flat)
    return k.quantize_f64(x64, p, flat)


@lru_cache(maxsize=64)
def _table(f: Format, dtype: np.dtype) -> np.ndarray:
    vals = f.values()
    negative_nan = np.isnan(vals) & ((np.arange(f.n_codes) & f.sign_mask) != 0)
    vals = np.where(negative_nan, -np.abs(vals), vals)
    with np.errstate(over="ignore"):  # research formats beyond float32's range: +-inf, rounded once
        t = vals.astype(dtype)
    t.flags.writeable = False
    return t



def dequant_dtype(dtype: Any) -> np.dtype:
    """The ``dtype=`` of :func:`dequantize`: float32 or float64 (``TypeError`` for what is not a dtype,
    ``ValueError`` for another dtype)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def dequantize(codes: Any, fmt: Any, *, dtype: Any = np.float32, out: np.ndarray | None = None) -> np.ndarray:
    """The values of ``codes`` in ``fmt`` as float32 or float64, each rounded once to ``dtype`` (exact for
    every named format). NaN codes decode to a quiet NaN with the code's sign bit.

    ``codes``: unsigned or signed integer array-like with values in ``[0, 2**bits)``, or an array of the
    format's ml_dtypes dtype. ``out``: optional writable array of ``codes``'s shape and of dtype ``dtype``
    to write the values into (it is returned); it may overlap ``codes`` in memory. Every argument is
    checked before anything is written.
    """
    f = _fmt(fmt)
    dt = dequant_dtype(dtype)
    c = np.asarray(codes)
    cdt = _code_dtype(f)
    if f.ml_dtype is not None and c.dtype == f.ml_dtype and c.dtype.itemsize == cdt.itemsize:
        c = c.view(cdt)
    if c.dtype.kind not in "iu" or c.dtype == np.bool_:
        raise TypeError(f"codes must be an integer array (or {f.ml_dtype}), got dtype {c.dtype}")
    if out is not None:
        if isinstance(out, np.ndarray) and out.dtype in (np.float32, np.float64) and out.dtype != dt:
            raise TypeError(f"out has dtype {out.dtype} but dtype is {dt}: pass dtype=np.{out.dtype}")
        _check_out(out, c.shape, (dt,), "codes")
    if c.dtype != cdt:
        if c.size and (int(c.min()) < 0 or int(c.max()) >= f.n_codes):
            raise ValueError(f"codes must lie in [0, {f.n_codes}) for {f.name}, got values in "
                             f"[{int(c.min())}, {int(c.max())}]")
        c = c.astype(cdt)
    elif f.bits < 8 * cdt.itemsize and c.size and int(c.max()) >= f.n_codes:
        raise ValueError(f"codes must lie in [0, {f.n_codes}) for {f.name}, got a maximum of {int(c.max())}")
    table = _table(f, dt)
    src = np.ascontiguousarray(c).reshape(-1)
    direct = out is not None and out.flags.c_contiguous and not _overlaps(out, src)
    res = out if direct else np.empty(c.shape, dtype=dt)
    if res.size:
        from fp8ref.cast import kernels as k

        with k.threads_for(res.size):
            k.decode_table(src, table, res.reshape(-1))
    if out is None or direct:
        return res
    out[...] = res
    return out


def as_ml_dtypes(codes: Any, fmt: Any) -> np.ndarray:
    """A zero-copy view of uint8 (uint16) ``codes`` with the ml_dtypes dtype of ``fmt``."""
    f = _fmt(fmt)
    dt = f.ml_dtype
    if dt is None:
        raise ValueError(f"fmt: {f.name} has no ml_dtypes dtype")
    if not isinstance(codes, np.ndarray):
        raise TypeError(f"codes must be a numpy array (a view cannot be made of {type(codes).__name__})")
    if codes.dtype == dt:
        return codes
    if codes.dtype.kind != "u" or codes.dtype.itemsize != dt.itemsize:
        raise TypeError(f"codes must have dtype uint{8 * dt.itemsize} to be viewed as {dt}, "
                        f"got {codes.dtype}")
    if f.bits < 8 * dt.itemsize and codes.size and int(codes.max()) >= f.n_codes:
        raise ValueError(f"codes must lie in [0, {f.n_codes}) for {f.name}")
    return codes.view(dt)
