"""generate / verify on the casts suite, and every way a set can be broken: reported, never a crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fp8ref.cli import main
from fp8ref.golden import generate, load_case, load_set, stfile, verify
from fp8ref.golden import manifest as mf


@pytest.fixture(scope="module")
def casts_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("golden") / "set"
    generate(root, ["casts"])
    return root


@pytest.fixture()
def broken(casts_set: Path, tmp_path: Path) -> Path:
    """A copy of the first six cases of the set (small, so that each corruption test verifies quickly)."""
    root = tmp_path / "copy"
    m = _manifest(casts_set)
    m["cases"] = m["cases"][:6]
    for e in m["cases"]:
        (root / e["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(casts_set / e["file"], root / e["file"])
    (root / "manifest.json").write_bytes(mf.dumps(m))
    return root


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def _save(root: Path, m: dict) -> None:
    (root / "manifest.json").write_text(json.dumps(m))


def test_generated_set_verifies(casts_set: Path) -> None:
    rep = verify(casts_set)
    assert rep.findings == [] and rep.exit_code == 0
    assert rep.cases == rep.passed == len(_manifest(casts_set)["cases"]) > 50


def test_generate_is_deterministic(casts_set: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    generate(other, ["casts"])
    a = sorted(p.relative_to(casts_set) for p in casts_set.rglob("*") if p.is_file())
    b = sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    assert a == b
    for rel in a:
        assert (casts_set / rel).read_bytes() == (other / rel).read_bytes(), rel


def test_manifest_contents(casts_set: Path) -> None:
    m = load_set(casts_set)
    assert m["schema"] == "fp8ref-golden" and m["schema_version"] == 1
    assert m["command"] == "fp8ref golden generate DIR --suite casts"
    text = (casts_set / "manifest.json").read_text()
    assert str(casts_set) not in text and text.endswith("\n")
    entry = next(e for e in m["cases"] if e["id"] == "casts/E4M3/dequantize-f32")
    want = {"role": "input", "dtype": "F8_E4M3", "shape": [256], "format": "E4M3"}
    assert entry["tensors"]["codes"] == want
    fnuz = next(e for e in m["cases"] if e["id"] == "casts/E4M3FNUZ/dequantize-f32")
    assert fnuz["tensors"]["codes"]["dtype"] == "U8" and fnuz["tensors"]["codes"]["format"] == "E4M3FNUZ"
    case = load_case(casts_set, entry)
    assert case.outputs["values"][0x38] == 1.0 and np.isnan(case.outputs["values"][0x7F])


def test_flipped_byte_in_tensor_file(broken: Path) -> None:
    entry = _manifest(broken)["cases"][3]
    p = broken / entry["file"]
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x01
    p.write_bytes(bytes(data))
    rep = verify(broken)
    assert rep.exit_code == 2
    assert [f.case for f in rep.findings] == [entry["id"]] and "SHA-256" in rep.findings[0].reason


def test_flipped_output_with_consistent_hash_is_a_mismatch(broken: Path) -> None:
    m = _manifest(broken)
    entry = next(e for e in m["cases"] if e["op"] == "quantize")
    p = broken / entry["file"]
    tensors, meta = stfile.read(p)
    arrays = {k: t.data for k, t in tensors.items()}
    arrays["codes"] = arrays["codes"].copy()
    arrays["codes"][5] ^= 1
    data = stfile.dumps(arrays, formats={k: t.format for k, t in tensors.items() if t.format},
                        metadata={k: v for k, v in meta.items() if not k.startswith("format.")})
    p.write_bytes(data)
    entry["sha256"] = mf.sha256_hex(data)
    _save(broken, m)
    rep = verify(broken)
    assert rep.exit_code == 1
    assert [f.case for f in rep.findings] == [entry["id"]]
    assert "1 of" in rep.findings[0].reason and "first at (5,)" in rep.findings[0].reason


def test_truncated_file(broken: Path) -> None:
    entry = _manifest(broken)["cases"][0]
    p = broken / entry["file"]
    p.write_bytes(p.read_bytes()[:-10])
    rep = verify(broken)
    assert rep.exit_code == 2 and "truncated" in rep.findings[0].reason


def test_truncated_file_with_matching_manifest_reports_layout(broken: Path) -> None:
    m = _manifest(broken)
    entry = m["cases"][0]
    p = broken / entry["file"]
    data = p.read_bytes()[:-10]
    p.write_bytes(data)
    entry["bytes"], entry["sha256"] = len(data), mf.sha256_hex(data)
    _save(broken, m)
    rep = verify(broken)
    assert rep.exit_code == 2 and "past the data section" in rep.findings[0].reason


def test_missing_file(broken: Path) -> None:
    entry = _manifest(broken)["cases"][1]
    (broken / entry["file"]).unlink()
    rep = verify(broken)
    assert rep.exit_code == 2 and "missing" in rep.findings[0].reason
    assert rep.passed == rep.cases - 1


def test_missing_tensor(broken: Path) -> None:
    m = _manifest(broken)
    entry = m["cases"][0]
    p = broken / entry["file"]
    tensors, _ = stfile.read(p)
    data = stfile.dumps({"codes": tensors["codes"].data, "valuez": tensors["values"].data},
                        formats={"codes": tensors["codes"].format})
    p.write_bytes(data)
    entry["bytes"], entry["sha256"] = len(data), mf.sha256_hex(data)
    _save(broken, m)
    rep = verify(broken)
    assert rep.exit_code == 2 and "missing ['values'], extra ['valuez']" in rep.findings[0].reason


def test_declared_dtype_mismatch(broken: Path) -> None:
    m = _manifest(broken)
    m["cases"][0]["tensors"]["values"]["dtype"] = "I32"
    _save(broken, m)
    rep = verify(broken)
    assert rep.exit_code == 2 and "manifest says I32" in rep.findings[0].reason


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(schema_version=99), "schema_version 99"),
        (lambda m: m.update(schema="other"), "schema is 'other'"),
        (lambda m: m.pop("cases"), "missing key 'cases'"),
        (lambda m: m["cases"][0].update(sha256="xyz"), "sha256"),
        (lambda m: m["cases"][0].update(file="../../etc/passwd.safetensors"), "not a relative path"),
        (lambda m: m["cases"][0].update(file="/etc/x.safetensors"), "relative path"),
        (lambda m: m["cases"][0].update(file="casts/x.pkl"), "relative path"),
        (lambda m: m["cases"][1].update(id=m["cases"][0]["id"]), "unique"),
        (lambda m: m["cases"][0]["tensors"]["values"].update(role="weird"), "role"),
        (lambda m: m["cases"][0].update(suite="nope"), "not listed"),
        (lambda m: m["cases"][0].update(bytes="12"), "bytes"),
    ],
)
def test_schema_violations(broken: Path, edit, match: str) -> None:
    m = _manifest(broken)
    edit(m)
    _save(broken, m)
    rep = verify(broken)
    assert rep.exit_code == 2 and rep.findings[0].case == "<manifest>", rep.findings
    assert match in rep.findings[0].reason


def test_symlink_escape_is_refused(broken: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    entry = _manifest(broken)["cases"][0]
    p = broken / entry["file"]
    shutil.copy(p, outside / p.name)
    p.unlink()
    p.symlink_to(outside / p.name)
    rep = verify(broken)
    assert rep.exit_code == 2 and "outside" in rep.findings[0].reason


def test_not_json_and_missing_manifest(broken: Path, tmp_path: Path) -> None:
    (broken / "manifest.json").write_bytes(b"\xff{")
    assert verify(broken).exit_code == 2
    assert "missing" in verify(tmp_path).findings[0].reason
    assert "not a directory" in verify(tmp_path / "nothing").findings[0].reason


def test_unknown_op_is_invalid(broken: Path) -> None:
    m = _manifest(broken)
    m["cases"][0]["op"] = "frobnicate"
    _save(broken, m)
    rep = verify(broken)
    assert rep.exit_code == 2 and "frobnicate" in rep.findings[0].reason


def test_cli_exit_codes(casts_set: Path, broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["golden", "verify", str(casts_set)]) == 0
    assert "OK:" in capsys.readouterr().out
    entry = _manifest(broken)["cases"][0]
    (broken / entry["file"]).unlink()
    assert main(["golden", "verify", str(broken)]) == 2
    out = capsys.readouterr().out
    assert f"INVALID {entry['id']}: " in out and "missing" in out


def test_generate_refuses_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        generate(tmp_path, ["casts"])
    assert main(["golden", "generate", str(tmp_path), "--suite", "casts"]) == 2
    assert (tmp_path / "precious.txt").exists()


def test_oversized_declaration_is_refused_before_reading(broken: Path) -> None:
    m = _manifest(broken)
    m["cases"][0]["bytes"] = 1 << 40
    _save(broken, m)
    rep = verify(broken)
    assert rep.exit_code == 2 and "bytes must be in" in rep.findings[0].reason


def test_cli_generate_one_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["golden", "generate", str(tmp_path / "s"), "--suite", "casts"]) == 0
    assert "wrote 140 cases" in capsys.readouterr().out
    assert main(["golden", "verify", str(tmp_path / "s"), "--suite", "casts"]) == 0


def test_bad_parameters_are_invalid_not_a_crash(broken: Path) -> None:
    m = _manifest(broken)
    m["cases"][0]["params"]["format"] = 5
    m["cases"][1]["params"]["dtype"] = "complex"
    _save(broken, m)
    rep = verify(broken)
    assert rep.exit_code == 2
    assert [f.case for f in rep.findings] == [m["cases"][0]["id"], m["cases"][1]["id"]]
    assert all("cannot recompute" in f.reason for f in rep.findings)


def test_deeply_nested_manifest_is_invalid_not_a_crash(broken: Path) -> None:
    (broken / "manifest.json").write_text("[" * 100000 + "]" * 100000)
    rep = verify(broken)
    assert rep.exit_code == 2 and rep.findings[0].case == "<manifest>"
