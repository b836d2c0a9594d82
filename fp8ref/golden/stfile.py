"""A minimal, safe safetensors reader and writer (no pickle, no code execution, no third-party package).

Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian unsigned header length ``n``,
``n`` bytes of UTF-8 JSON, then the raw little-endian tensor bytes. The JSON maps each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the end of the header) and may hold
``"__metadata__"``, a map of strings to strings.

FP8 tensors travel as ``np.uint8`` arrays of codes. OCP E4M3 / E5M2 are written with the native dtypes
``F8_E4M3`` / ``F8_E5M2``; every other 8-bit format (FNUZ, E8M0) as ``U8`` with the metadata entry
``"format.<tensor name>": "<format name>"``. OCP tensors also get that entry, so a reader never has to guess.

The writer is deterministic: tensors sorted by name and laid out in that order, JSON keys sorted, no
whitespace, header padded with spaces to a multiple of 8 bytes.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fp8ref.formats import Format
from fp8ref.formats import format as _resolve_format

__all__ = ["DTYPES", "StError", "Tensor", "dumps", "loads", "read", "write", "MAX_HEADER_BYTES", "MAX_RANK",
           "MAX_TENSOR_BYTES", "shape_problem"]

#: safetensors dtype name -> (NumPy storage dtype, little-endian). FP8 and BF16 are read as raw bits.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("|b1"),
    "U8": np.dtype("|u1"),
    "I8": np.dtype("|i1"),
    "F8_E4M3": np.dtype("|u1"),
    "F8_E5M2": np.dtype("|u1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
_NATIVE_FP8 = {"E4M3": "F8_E4M3", "E5M2": "F8_E5M2"}
_FROM_NUMPY = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16", "float16": "F16",
    "uint32": "U32", "int32": "I32", "float32": "F32", "uint64": "U64", "int64": "I64", "float64": "F64",
    "bfloat16": "BF16",
}
MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_RANK = 8
#: largest tensor a header may declare, in bytes, counting a zero dimension as 1 (so that a shape such as
#: ``[0, 2**62]``, which holds nothing, cannot ask NumPy for an impossible array either)
MAX_TENSOR_BYTES = 1 << 31


class StError(ValueError):
    """A malformed or unsupported safetensors file (the message says what and where)."""


@dataclass(frozen=True)
class Tensor:
    """One tensor read from a file: ``data`` is the storage array (uint8 codes for FP8, uint16 bits for
    BF16), ``dtype`` the safetensors dtype name, ``format`` the 8-bit format name from the metadata (or
    ``None``)."""

    data: np.ndarray
    dtype: str
    format: str | None = None


def _dtype_of(name: str, array: np.ndarray, fmt: Format | str | None) -> tuple[str, np.ndarray, str | None]:
    if fmt is not None:
        f = _resolve_format(fmt)
        if f.bits != 8:
            raise TypeError(f"tensor {name!r}: format {f.name} is not an 8-bit format")
        if array.dtype.itemsize != 1:
            raise TypeError(f"tensor {name!r}: codes of {f.name} must be uint8, got {array.dtype}")
        return _NATIVE_FP8.get(f.name, "U8"), array.view(np.uint8), f.name
    dt = array.dtype
    if dt.name in ("float8_e4m3fn", "float8_e5m2"):
        fname = "E4M3" if dt.name == "float8_e4m3fn" else "E5M2"
        return _NATIVE_FP8[fname], array.view(np.uint8), fname
    st = _FROM_NUMPY.get(dt.name)
    if st is None:
        raise TypeError(f"tensor {name!r}: dtype {dt} has no safetensors equivalent here")
    if st == "BF16":
        array = array.view(np.uint16)
    return st, array.astype(DTYPES[st], copy=False), None


def dumps(tensors: dict[str, np.ndarray], *, formats: dict[str, Format | str] | None = None,
          metadata: dict[str, str] | None = None) -> bytes:
    """Serialise ``tensors`` (name -> array). ``formats`` names the 8-bit format of uint8 code arrays."""
    formats = dict(formats or {})
    unknown = set(formats) - set(tensors)
    if unknown:
        raise ValueError(f"formats names tensors that are not given: {sorted(unknown)}")
    meta: dict[str, str] = {}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("metadata must map str to str")
        meta[k] = v
    header: dict[str, object] = {}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"invalid tensor name {name!r}")
        arr = np.asarray(tensors[name])
        st, arr, fname = _dtype_of(name, arr, formats.get(name))
        if fname is not None:
            meta[f"format.{name}"] = fname
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"data_offsets": [offset, offset + len(raw)], "dtype": st, "shape": list(arr.shape)}
        chunks.append(raw)
        offset += len(raw)
    if meta:
        header["__metadata__"] = meta
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def write(path: str | Path, tensors: dict[str, np.ndarray], *, formats: dict[str, Format | str] | None = None,
          metadata: dict[str, str] | None = None) -> bytes:
    """Write a safetensors file; returns the bytes written."""
    data = dumps(tensors, formats=formats, metadata=metadata)
    Path(path).write_bytes(data)
    return data


def shape_problem(shape: object, dtype: str) -> str | None:
    """Why ``shape`` is not an acceptable shape of a ``dtype`` tensor (a known dtype name), or ``None``:
    a list of at most :data:`MAX_RANK` non-negative ints whose product, zero dimensions counted as 1,
    times the item size is at most :data:`MAX_TENSOR_BYTES`."""
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(type(s) is int and s >= 0 for s in shape)):
        return f"shape must be a list of at most {MAX_RANK} non-negative ints, got {shape!r}"[:200]
    nominal = math.prod(max(s, 1) for s in shape) * DTYPES[dtype].itemsize
    if nominal > MAX_TENSOR_BYTES:
        return (f"shape {shape} of {dtype} declares {nominal} bytes (zero dimensions counted as 1), above "
                f"the limit of {MAX_TENSOR_BYTES}")
    return None


def _fail(where: str, msg: str) -> StError:
    return StError(f"{where}: {msg}")


def parse_header(buf: bytes, where: str = "<bytes>") -> tuple[dict[str, dict], dict[str, str], int]:
    """Validate the header of ``buf``; returns (tensor entries, metadata, start of the data section)."""
    if len(buf) < 8:
        raise _fail(where, f"file is {len(buf)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER_BYTES:
        raise _fail(where, f"header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    if 8 + n > len(buf):
        raise _fail(where, f"header length {n} runs past the end of the file ({len(buf)} bytes)")
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(where, f"header is not valid UTF-8 JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict):
        raise _fail(where, "header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise _fail(where, "__metadata__ must map strings to strings")
    data_len = len(buf) - 8 - n
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _fail(where, f"tensor {name!r}: entry must have exactly dtype, shape, data_offsets")
        dt, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dt, str) or dt not in DTYPES:
            raise _fail(where, f"tensor {name!r}: field dtype: unsupported dtype {dt!r}"[:300])
        problem = shape_problem(shape, dt)
        if problem:
            raise _fail(where, f"tensor {name!r}: field {problem}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int and o >= 0 for o in offs)):
            raise _fail(where, f"tensor {name!r}: field data_offsets must be two non-negative ints")
        nbytes = math.prod(shape) * DTYPES[dt].itemsize
        if offs[1] - offs[0] != nbytes:
            raise _fail(where, f"tensor {name!r}: data_offsets {offs} span {offs[1] - offs[0]} bytes, "
                        f"dtype {dt} and shape {shape} need {nbytes}")
        if offs[1] > data_len:
            raise _fail(where, f"tensor {name!r}: data_offsets {offs} run past the data section "
                        f"({data_len} bytes; file truncated?)")
        spans.append((offs[0], offs[1], name))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise _fail(where, f"tensor {name!r}: data starts at {begin}, expected {pos} (hole or overlap)")
        pos = end
    if pos != data_len:
        raise _fail(where, f"data section is {data_len} bytes, tensors cover {pos}")
    for key, fname in meta.items():
        if key.startswith("format.") and key[len("format."):] not in header:
            raise _fail(where, f"metadata {key!r} names no tensor")
        if key.startswith("format."):
            try:
                bits = _resolve_format(fname).bits
            except (ValueError, TypeError):
                raise _fail(where, f"metadata {key!r}: unknown format {fname!r}") from None
            if bits != 8:
                raise _fail(where, f"metadata {key!r}: {fname!r} is not an 8-bit format")
    return header, meta, 8 + n


def loads(buf: bytes, where: str = "<bytes>") -> tuple[dict[str, Tensor], dict[str, str]]:
    """Parse a whole safetensors file held in ``buf``; returns (name -> Tensor, metadata)."""
    header, meta, start = parse_header(buf, where)
    out: dict[str, Tensor] = {}
    for name in sorted(header):
        e = header[name]
        b, end = e["data_offsets"]
        arr = np.frombuffer(buf, dtype=DTYPES[e["dtype"]], count=math.prod(e["shape"]), offset=start + b)
        arr = arr.reshape(e["shape"]).astype(DTYPES[e["dtype"]].newbyteorder("="), copy=True)
        fname = meta.get(f"format.{name}")
        if e["dtype"] in ("F8_E4M3", "F8_E5M2"):
            native = "E4M3" if e["dtype"] == "F8_E4M3" else "E5M2"
            if fname is not None and _resolve_format(fname).name != native:
                raise _fail(where, f"tensor {name!r}: dtype {e['dtype']} but metadata says format {fname}")
            fname = native
        elif fname is not None and e["dtype"] != "U8":
            raise _fail(where, f"tensor {name!r}: a format is named for a {e['dtype']} tensor (needs U8)")
        out[name] = Tensor(arr, e["dtype"], fname)
    return out, meta


def read(path: str | Path, *, max_bytes: int = 1 << 31) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read and validate a safetensors file (size checked before it is read)."""
    p = Path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise _fail(str(p), f"file is {size} bytes, above the limit of {max_bytes}")
    return loads(p.read_bytes(), str(p))
