"""examples/c/golden_check.c: compiled with the system C compiler and run on a generated set (skipped
where no compiler is installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fp8ref.golden import generate

SRC = Path(__file__).resolve().parents[2] / "examples" / "c" / "golden_check.c"
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CC is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH")
    out = tmp_path_factory.mktemp("cbuild") / "golden_check"
    r = subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(SRC)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def cset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cset") / "set"
    generate(root, ["casts"])
    return root


@pytest.mark.parametrize("case", ["casts/E4M3/quantize-f32-nearest_even-sat",
                                  "casts/E4M3/quantize-f32-nearest_even-nonsat",
                                  "casts/E5M2/quantize-f32-nearest_even-sat",
                                  "casts/E5M2/quantize-f32-nearest_even-nonsat"])
def test_c_reader_reproduces_case(prog: Path, cset: Path, case: str) -> None:
    r = subprocess.run([str(prog), str(cset), case], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and "sha256 ok" in r.stdout


def test_c_reader_detects_corruption(prog: Path, cset: Path, tmp_path: Path) -> None:
    case = "casts/E4M3/quantize-f32-nearest_even-sat"
    root = tmp_path / "bad"
    shutil.copytree(cset, root)
    entry = next(e for e in json.loads((root / "manifest.json").read_text())["cases"] if e["id"] == case)
    p = root / entry["file"]
    data = bytearray(p.read_bytes())
    data[-1] ^= 1
    p.write_bytes(bytes(data))
    r = subprocess.run([str(prog), str(root), case], capture_output=True, text=True)
    assert r.returncode == 1 and "SHA-256" in r.stderr


def test_c_reader_refuses_other_ops(prog: Path, cset: Path) -> None:
    r = subprocess.run([str(prog), str(cset), "casts/E4M3/dequantize-f32"], capture_output=True, text=True)
    assert r.returncode == 2 and "checks only" in r.stderr


@pytest.fixture(scope="module")
def bset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bset") / "set"
    generate(root, ["mx", "nvfp4"])
    return root


def _block_ids(root: Path) -> list[str]:
    return [e["id"] for e in json.loads((root / "manifest.json").read_text())["cases"]]


def test_c_reader_checks_every_block_scaled_case(prog: Path, bset: Path) -> None:
    """Packed E2M1 codes, E8M0 / E4M3 scales in both layouts and the global scale, read in C: the
    swizzled scales sit at cuBLAS's offsets and codes x scale x global scale give ``dequantized``."""
    ids = _block_ids(bset)
    assert any(i.startswith("mx/") for i in ids) and any(i.startswith("nvfp4/") for i in ids)
    for case in ids:
        r = subprocess.run([str(prog), str(bset), case], capture_output=True, text=True)
        assert r.returncode == 0 and "PASS" in r.stdout, case + r.stdout + r.stderr


@pytest.mark.parametrize("tensor_name", ["scale_codes_swizzled", "codes_packed"])
def test_c_reader_detects_a_wrong_block_scaled_tensor(prog: Path, bset: Path, tmp_path: Path,
                                                      tensor_name: str) -> None:
    from fp8ref.golden import manifest as mf

    case = "nvfp4/te-1x16"
    root = tmp_path / "bad"
    shutil.copytree(bset, root)
    man = json.loads((root / "manifest.json").read_text())
    entry = next(e for e in man["cases"] if e["id"] == case)
    p = root / entry["file"]
    data = bytearray(p.read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    lo = 8 + n + header[tensor_name]["data_offsets"][0]
    data[lo + (1 if tensor_name == "scale_codes_swizzled" else 40)] ^= 0x11  # row 0's scale / row 1's codes
    p.write_bytes(bytes(data))
    entry["sha256"] = mf.sha256_hex(bytes(data))
    (root / "manifest.json").write_text(json.dumps(man))
    r = subprocess.run([str(prog), str(root), case], capture_output=True, text=True)
    assert r.returncode == 1 and "MISMATCH" in r.stdout, r.stdout + r.stderr
