"""Every size a manifest or a safetensors header declares is bounded before anything is allocated, every
malformed declaration is INVALID (exit 2) with one line naming the file and the field, and random
corruptions of a valid set never give anything but INVALID, MISMATCH or a clean pass."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fp8ref.cli import main
from fp8ref.golden import manifest as mf
from fp8ref.golden import ops, stfile, verify
from fp8ref.golden.case import Case
from fp8ref.golden.io import write_case, write_manifest

verify_mod = importlib.import_module("fp8ref.golden.verify")  # the package exports the function as verify


def _cases() -> list[Case]:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(32) * 50).astype(np.float32)
    xs = {f"x.{i}": (rng.standard_normal((4, 8)) * 10 ** i).astype(np.float32) for i in range(2)}
    return [
        Case("casts/E4M3/dequantize-f32", "dequantize", {"format": "E4M3", "dtype": "float32"},
             {"codes": np.arange(256, dtype=np.uint8)}, {"codes": "E4M3"}),
        Case("casts/E5M2/quantize-sr", "quantize",
             {"format": "E5M2", "rounding": "stochastic", "saturate": True, "srnumbits": 4,
              "dtype": "float32"},
             {"x": x, "srbits": (np.arange(32) % 16).astype(np.uint8)}),
        Case("scaling/E4M3/seq-delayed", "scaled_sequence",
             {"format": "E4M3", "recipe": "Delayed", "recipe_args": {"history_len": 4}, "steps": 2}, xs),
        Case("scaling/E4M3/delayed", "quantize_scaled",
             {"format": "E4M3", "rounding": "nearest_even", "saturate": True, "recipe": "Delayed",
              "recipe_args": {"history_len": 8}}, {"x": xs["x.0"]}),
    ]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("limits") / "set"
    root.mkdir()
    entries = [write_case(root, c, ops.compute(c.op, c.params, c.inputs)) for c in _cases()]
    write_manifest(root, ["casts", "scaling"], entries, "fp8ref golden generate DIR")
    assert verify(root).exit_code == 0
    return root


@pytest.fixture()
def copy(small_set: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(small_set, dst)
    return dst


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def _save(root: Path, m: dict) -> None:
    (root / "manifest.json").write_bytes(mf.dumps(m))


def _entry(m: dict, cid: str) -> dict:
    return next(e for e in m["cases"] if e["id"] == cid)


def _no_recompute(monkeypatch: pytest.MonkeyPatch, cid: str) -> None:
    real = verify_mod.compute

    def guarded(op, params, inputs):
        if op in ("scaled_sequence", "quantize_scaled") and params.get("recipe_args", {}).get(
                "history_len", 0) > mf.MAX_HISTORY_LEN:
            raise AssertionError(f"{cid} was recomputed")
        return real(op, params, inputs)

    monkeypatch.setattr(verify_mod, "compute", guarded)


@pytest.mark.parametrize("cid", ["scaling/E4M3/seq-delayed", "scaling/E4M3/delayed"])
def test_a_claimed_history_of_250_million_is_refused_before_recompute(
        copy: Path, cid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recompute allocated the claimed history (8.7 GB for 250,000,000 entries)."""
    m = _manifest(copy)
    _entry(m, cid)["params"]["recipe_args"]["history_len"] = 250_000_000
    _save(copy, m)
    _no_recompute(monkeypatch, cid)
    rep = verify(copy)
    assert rep.exit_code == 2 and [f.case for f in rep.findings] == [cid]
    assert "manifest.json: params.recipe_args.history_len must be an int in [1, 65536], got 250000000" in \
        rep.findings[0].reason
    assert rep.passed == rep.cases - 1


@pytest.mark.parametrize(("edit", "match"), [
    (lambda p: p.update(steps=10**9), r"params.steps \(at most the number of x.<i> inputs\) must be an int "
                                      r"in \[1, 2\], got 1000000000"),
    (lambda p: p.update(steps=True), "params.steps"),
    (lambda p: p["recipe_args"].update(history_len=5), "history_len is 5, but tensor amax_history.0 is "
                                                       r"declared with shape \[4\]"),
    (lambda p: p["recipe_args"].update(history_len="4"), "history_len must be an int"),
    (lambda p: p["recipe_args"].pop("history_len"), "history_len is 1024, but tensor amax_history.0"),
])
def test_sequence_sizes_are_checked_against_the_declared_tensors(copy: Path, edit, match: str) -> None:
    m = _manifest(copy)
    edit(_entry(m, "scaling/E4M3/seq-delayed")["params"])
    _save(copy, m)
    rep = verify(copy)
    assert rep.exit_code == 2 and rep.findings[0].case == "scaling/E4M3/seq-delayed"
    assert len(rep.findings) == 1
    assert re.search(match, rep.findings[0].reason), rep.findings[0].reason


def test_trainer_history_is_bounded() -> None:
    with pytest.raises(ValueError, match=r"params.config.delayed_history must be an int in \[1, 65536\]"):
        ops.check_sizes("trainer_linear", {"config": {"delayed_history": 250_000_000}}, {})
    ops.check_sizes("trainer_linear", {"config": {"delayed_history": 16}}, {})
    ops.check_sizes("no-such-op", {"steps": 10**12}, {})  # unknown ops are compute()'s to report


def _rewrite_header(root: Path, cid: str, edit) -> str:
    """Apply ``edit`` to the JSON header of a case's file; keep the manifest's size and hash consistent."""
    m = _manifest(root)
    e = _entry(m, cid)
    p = root / e["file"]
    data = p.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    edit(header, e)
    text = json.dumps(header).encode()
    data = struct.pack("<Q", len(text)) + text + data[8 + n:]
    p.write_bytes(data)
    e["bytes"], e["sha256"] = len(data), mf.sha256_hex(data)
    _save(root, m)
    return e["file"]


def test_header_dtype_that_is_a_list_is_invalid(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``"dtype": ["F32"]`` crashed the reader with a traceback (exit 1, the mismatch code)."""
    cid = "casts/E4M3/dequantize-f32"
    f = _rewrite_header(copy, cid, lambda h, e: h["values"].update(dtype=["F32"]))
    assert main(["golden", "verify", str(copy), "-q"]) == 2
    out = capsys.readouterr().out.splitlines()
    bad = [line for line in out if line.startswith("INVALID ")]
    assert bad == [f"INVALID {cid}: case {cid}: {f}: tensor 'values': field dtype: unsupported dtype ['F32']"]


def test_header_shape_with_a_zero_and_a_huge_dimension_is_invalid(copy: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``[0, 2**62]`` holds no element, passed the offset checks and then made NumPy's reshape raise."""
    cid = "casts/E4M3/dequantize-f32"

    def edit(h: dict, e: dict) -> None:
        h["zz"] = {"dtype": "F32", "shape": [0, 2**62], "data_offsets": [0, 0]}

    f = _rewrite_header(copy, cid, edit)
    assert main(["golden", "verify", str(copy)]) == 2
    out = capsys.readouterr().out
    assert f"INVALID {cid}: case {cid}: {f}: tensor 'zz': field shape [0, {2**62}] of F32 declares" in out
    assert "Traceback" not in out


def test_manifest_shape_with_a_huge_dimension_is_invalid(copy: Path) -> None:
    m = _manifest(copy)
    m["cases"][0]["tensors"]["values"]["shape"] = [0, 2**62]
    _save(copy, m)
    rep = verify(copy)
    assert rep.exit_code == 2 and rep.findings[0].case == "<manifest>"
    reason = rep.findings[0].reason
    assert "manifest.json: case 'casts/E4M3/dequantize-f32' tensor 'values': shape [0, " in reason


def test_manifest_tensors_larger_than_their_file_are_invalid(copy: Path) -> None:
    m = _manifest(copy)
    m["cases"][0]["tensors"]["values"]["shape"] = [1 << 20]
    _save(copy, m)
    rep = verify(copy)
    assert rep.exit_code == 2 and "more than the file of 1528 bytes can hold" in rep.findings[0].reason


def test_set_total_is_bounded(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    total = sum(e["bytes"] for e in _manifest(copy)["cases"])
    monkeypatch.setattr(mf, "MAX_SET_BYTES", total - 1)
    rep = verify(copy)
    assert rep.exit_code == 2 and "above the limit of" in rep.findings[0].reason and rep.cases == 0
    monkeypatch.setattr(mf, "MAX_SET_BYTES", total)
    assert verify(copy).exit_code == 0


def test_unreadable_files_are_invalid(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self.name.startswith("quantize-sr") or self.name == "manifest.json" and "deny" in str(self):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    rep = verify(copy)
    assert rep.exit_code == 2 and [f.case for f in rep.findings] == ["casts/E5M2/quantize-sr"]
    assert "cannot be read (Permission denied)" in rep.findings[0].reason
    denied = copy.parent / "deny"
    shutil.copytree(copy, denied)
    rep = verify(denied)
    assert rep.findings[0].case == "<manifest>" and "cannot be read" in rep.findings[0].reason


# ---- fuzzing: random corruptions never escape as another exception -----------------------------------
_FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None, extra: bytes) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    if cut is not None:
        b = b[:cut % (len(b) + 1)]
    return bytes(b) + extra


_edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)


@_FUZZ
@given(case=st.integers(0, 3), edits=_edits, cut=st.none() | st.integers(0, 1 << 20),
       extra=st.binary(max_size=16), header_only=st.booleans())
def test_fuzz_tensor_files(small_set: Path, tmp_path_factory: pytest.TempPathFactory, case: int,
                           edits: list[tuple[int, int]], cut: int | None, extra: bytes,
                           header_only: bool) -> None:
    """A corrupted tensor file with a manifest that matches its size and hash: INVALID, MISMATCH (a changed
    input or output value) or a pass -- never a traceback. A corruption confined to the header is never a
    mismatch."""
    root = tmp_path_factory.mktemp("fuzz") / "set"
    shutil.copytree(small_set, root)
    m = _manifest(root)
    e = m["cases"][case]
    p = root / e["file"]
    data = p.read_bytes()
    if header_only:
        (n,) = struct.unpack("<Q", data[:8])
        edits = [(8 + pos % n, val) for pos, val in edits]
        cut, extra = None, b""
    data = _mutate(data, edits, cut, extra)
    p.write_bytes(data)
    e["bytes"], e["sha256"] = len(data), mf.sha256_hex(data)
    if not 8 <= len(data):
        return
    _save(root, m)
    try:
        tensors, _ = stfile.loads(data, e["file"])
    except stfile.StError:
        tensors = None
    rep = verify(root)
    assert rep.exit_code in ((0, 2) if header_only else (0, 1, 2))
    if tensors is None:
        assert rep.exit_code == 2
    assert all("\n" not in f.reason for f in rep.findings)


@_FUZZ
@given(edits=_edits, cut=st.none() | st.integers(0, 1 << 20), extra=st.binary(max_size=16))
def test_fuzz_manifest(small_set: Path, tmp_path_factory: pytest.TempPathFactory,
                       edits: list[tuple[int, int]], cut: int | None, extra: bytes) -> None:
    root = tmp_path_factory.mktemp("fuzzm") / "set"
    shutil.copytree(small_set, root)
    p = root / "manifest.json"
    p.write_bytes(_mutate(p.read_bytes(), edits, cut, extra))
    rep = verify(root)
    assert rep.exit_code in (0, 1, 2)
    assert all("\n" not in f.reason for f in rep.findings)


@settings(max_examples=300, deadline=None)
@given(edits=_edits, cut=st.none() | st.integers(0, 1 << 20), extra=st.binary(max_size=16))
def test_fuzz_reader(edits: list[tuple[int, int]], cut: int | None, extra: bytes) -> None:
    """The reader on its own: a valid parse or StError, nothing else."""
    data = stfile.dumps({"a": np.arange(256, dtype=np.uint8), "b": np.linspace(-1, 1, 7),
                         "c": np.zeros((0, 3), np.float32), "d": np.array(2.5, np.float32)},
                        formats={"a": "E4M3"}, metadata={"k": "v"})
    try:
        stfile.loads(_mutate(data, edits, cut, extra))
    except stfile.StError as exc:
        assert "\n" not in str(exc)


_json = st.recursive(
    st.none() | st.booleans() | st.sampled_from([0, 1, -1, 7, 2**31, 2**62, 2**64, 10**30]) | st.integers()
    | st.floats(allow_nan=False) | st.sampled_from(["F32", "U8", "F8_E4M3", "E4M3", "FP16", "e0m3", ""])
    | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3),
    max_leaves=6)


def _slots(node: object) -> list[tuple[object, object]]:
    """Every (container, key) of a JSON tree, depth first."""
    out: list[tuple[object, object]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            out += _slots(v)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            out += _slots(v)
    return out


@settings(max_examples=400, deadline=None)
@given(which=st.integers(0, 1000), value=_json)
def test_fuzz_header_values(which: int, value: object) -> None:
    """Any field of a valid header replaced by any JSON value: a valid parse or StError (``"dtype":
    ["F32"]`` and ``"shape": [0, 2**62]`` raised TypeError and ValueError)."""
    data = stfile.dumps({"a": np.arange(256, dtype=np.uint8), "b": np.linspace(-1, 1, 7),
                         "c": np.zeros((0, 3), np.float32), "d": np.array(2.5, np.float32)},
                        formats={"a": "E4M3"}, metadata={"k": "v"})
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    slots = _slots(header)
    container, key = slots[which % len(slots)]
    container[key] = value  # type: ignore[index]
    text = json.dumps(header).encode()
    try:
        stfile.loads(struct.pack("<Q", len(text)) + text + data[8 + n:])
    except stfile.StError as exc:
        assert "\n" not in str(exc)


@_FUZZ
@given(which=st.integers(0, 10000), value=_json)
def test_fuzz_manifest_values(small_set: Path, tmp_path_factory: pytest.TempPathFactory, which: int,
                              value: object) -> None:
    """Any field of a valid manifest (parameters included) replaced by any JSON value: verify reports,
    never raises, and allocates nothing a declaration did not bound."""
    root = tmp_path_factory.mktemp("fuzzv") / "set"
    shutil.copytree(small_set, root)
    m = _manifest(root)
    slots = _slots(m)
    container, key = slots[which % len(slots)]
    container[key] = value  # type: ignore[index]
    (root / "manifest.json").write_text(json.dumps(m))
    rep = verify(root)
    assert rep.exit_code in (0, 1, 2)
    assert all("\n" not in f.reason for f in rep.findings)
