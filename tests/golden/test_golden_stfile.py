"""fp8ref's own safetensors reader/writer, checked against the ``safetensors`` package."""

from __future__ import annotations

import json
import struct

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8ref
from fp8ref.golden import stfile

safetensors = pytest.importorskip("safetensors")


def _sample() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "codes_e4m3": np.arange(256, dtype=np.uint8).reshape(16, 16),
        "codes_e5m2": np.arange(256, dtype=np.uint8)[::-1].copy(),
        "fnuz": np.arange(256, dtype=np.uint8),
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f64": rng.standard_normal(7),
        "f16": rng.standard_normal(4).astype(np.float16),
        "bf16": rng.standard_normal(6).astype(ml_dtypes.bfloat16),
        "i32": np.array([-1, 2, 3], dtype=np.int32),
        "u32": np.array([1, 2**32 - 1], dtype=np.uint32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
    }


FORMATS = {"codes_e4m3": "E4M3", "codes_e5m2": "E5M2", "fnuz": "E4M3FNUZ"}


def test_roundtrip_own_reader() -> None:
    t = _sample()
    data = stfile.dumps(t, formats=FORMATS, metadata={"k": "v"})
    back, meta = stfile.loads(data)
    assert meta["k"] == "v" and meta["format.fnuz"] == "E4M3FNUZ"
    assert back["codes_e4m3"].dtype == "F8_E4M3" and back["codes_e4m3"].format == "E4M3"
    assert back["codes_e5m2"].dtype == "F8_E5M2" and back["fnuz"].dtype == "U8"
    assert back["fnuz"].format == "E4M3FNUZ" and back["f32"].format is None
    assert back["bf16"].dtype == "BF16"
    for name, arr in t.items():
        got = back[name].data
        assert got.shape == arr.shape
        assert got.tobytes() == np.ascontiguousarray(arr).tobytes(), name


def test_deterministic_and_aligned() -> None:
    t = _sample()
    a = stfile.dumps(t, formats=FORMATS)
    b = stfile.dumps(dict(reversed(list(t.items()))), formats=dict(reversed(list(FORMATS.items()))))
    assert a == b
    (n,) = struct.unpack("<Q", a[:8])
    assert n % 8 == 0


def test_read_by_safetensors_torch() -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load

    t = _sample()
    got = load(stfile.dumps(t, formats=FORMATS))
    assert got["codes_e4m3"].dtype == torch.float8_e4m3fn
    assert got["codes_e5m2"].dtype == torch.float8_e5m2
    assert got["fnuz"].dtype == torch.uint8
    assert got["bf16"].dtype == torch.bfloat16
    for name, arr in t.items():
        g = got[name]
        raw = g.view(torch.uint8) if g.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) else g
        if g.dtype == torch.bfloat16:
            raw = g.view(torch.int16)
        assert raw.numpy().tobytes() == np.ascontiguousarray(arr).tobytes(), name
        assert tuple(g.shape) == arr.shape


def test_reads_files_of_safetensors_numpy() -> None:
    from safetensors.numpy import save

    t = {
        "a": np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).reshape(2, 128),
        "b": np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e5m2),
        "c": np.linspace(-1, 1, 9, dtype=np.float32),
        "d": np.arange(4, dtype=np.int64),
    }
    back, _ = stfile.loads(save(t, metadata={"x": "y"}))
    assert back["a"].dtype == "F8_E4M3" and back["a"].format == "E4M3"
    assert back["b"].format == "E5M2"
    for k, v in t.items():
        assert back[k].data.tobytes() == v.tobytes() and back[k].data.shape == v.shape


def test_writer_accepts_ml_dtypes_arrays() -> None:
    arr = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e5m2)
    back, meta = stfile.loads(stfile.dumps({"x": arr}))
    assert back["x"].dtype == "F8_E5M2" and meta == {"format.x": "E5M2"}


def test_writer_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="uint8"):
        stfile.dumps({"x": np.zeros(3, np.float32)}, formats={"x": "E4M3"})
    with pytest.raises(TypeError, match="8-bit"):
        stfile.dumps({"x": np.zeros(3, np.uint8)}, formats={"x": "FP16"})
    with pytest.raises(ValueError, match="not given"):
        stfile.dumps({"x": np.zeros(3, np.uint8)}, formats={"y": "E4M3"})
    with pytest.raises(TypeError, match="complex"):
        stfile.dumps({"x": np.zeros(3, np.complex64)})


def _with_header(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize(
    ("buf", "match"),
    [
        (b"\x01\x02", "shorter"),
        (struct.pack("<Q", 1 << 40) + b"{}", "exceeds"),
        (struct.pack("<Q", 50) + b"{}", "past the end"),
        (struct.pack("<Q", 4) + b"{]]}", "JSON"),
        (struct.pack("<Q", 2) + b"[]", "object"),
        (struct.pack("<Q", 200000) + b"[" * 100000 + b"]" * 100000, "JSON"),
        (_with_header({"a": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}, b"\0\0"), "past"),
        (_with_header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4), "need 16"),
        (_with_header({"a": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8), "dtype"),
        (_with_header({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}, b""), "shape"),
        (_with_header({"a": {"dtype": "U8", "shape": [2**62, 2**62], "data_offsets": [0, 1]}}, b"\0"),
         "above the limit"),
        (_with_header({"a": {"dtype": "U8", "shape": [0, 2**62], "data_offsets": [0, 0]}}, b""),
         r"field shape \[0, 4611686018427387904\] of U8 declares 4611686018427387904 bytes"),
        (_with_header({"a": {"dtype": "F32", "shape": [0, 2**29 + 1], "data_offsets": [0, 0]}}, b""),
         "above the limit of 2147483648"),
        (_with_header({"a": {"dtype": "U8", "shape": [2, 2], "data_offsets": [0, 1]}}, b"\0"), "need 4"),
        (_with_header({"a": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
         r"tensor 'a': field dtype: unsupported dtype \['F32'\]"),
        (_with_header({"a": {"dtype": {"x": 1}, "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "dtype"),
        (_with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                       "__metadata__": {"format.a": "FP16"}}, b"\0"), "not an 8-bit format"),
        (_with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                       "__metadata__": {"format.a": "e0m3"}}, b"\0"), "unknown format"),
        (_with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"\0\0"), "hole"),
        (_with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0\0"), "cover"),
        (_with_header({"a": {"dtype": "U8", "shape": [1]}}, b"\0"), "exactly"),
        (_with_header({"__metadata__": {"a": 1}}, b""), "strings"),
        (_with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                       "__metadata__": {"format.a": "nonsense"}}, b"\0"), "unknown format"),
        (_with_header({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                       "__metadata__": {"format.a": "E4M3FNUZ"}}, b"\0" * 4), "needs U8"),
        (_with_header({"a": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]},
                       "__metadata__": {"format.a": "E5M2"}}, b"\0"), "metadata says"),
    ],
)
def test_malformed_files_raise_sterror(buf: bytes, match: str) -> None:
    with pytest.raises(stfile.StError, match=match):
        stfile.loads(buf)


def test_truncation_at_every_length_is_an_error() -> None:
    data = stfile.dumps(_sample(), formats=FORMATS)
    for n in range(0, len(data), 7):
        with pytest.raises(stfile.StError):
            stfile.loads(data[:n])


_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.float16, np.uint32, np.int32, np.float32, np.uint64,
           np.int64, np.float64, ml_dtypes.bfloat16]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(range(len(_DTYPES))),
                          st.lists(st.integers(0, 5), min_size=0, max_size=3),
                          st.sampled_from([None, "E4M3", "E5M2", "E4M3FNUZ", "E5M2FNUZ", "E8M0"])),
                min_size=1, max_size=5),
       st.integers(0, 2**32 - 1))
def test_roundtrip_property_against_safetensors(specs, seed) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load

    rng = np.random.default_rng(seed)
    tensors, formats = {}, {}
    for i, (d, shape, fmt) in enumerate(specs):
        name = f"t{i}"
        if fmt is not None:
            tensors[name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
            formats[name] = fmt
        else:
            dt = np.dtype(_DTYPES[d])
            raw = rng.integers(0, 256, size=(int(np.prod(shape)) * dt.itemsize,), dtype=np.uint8)
            tensors[name] = raw.view(dt).reshape(shape)
    data = stfile.dumps(tensors, formats=formats)
    back, meta = stfile.loads(data)
    theirs = load(data)
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        assert back[name].data.tobytes() == raw and back[name].data.shape == arr.shape
        assert back[name].format == (fp8ref.format(formats[name]).name if name in formats else None)
        t = theirs[name]
        assert tuple(t.shape) == arr.shape
        if t.numel():
            assert t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() == raw
