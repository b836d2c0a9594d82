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
