"""The package contract: a light import, lazy public names, the console script."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fp8ref


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_import_is_light() -> None:
    out = _run("import sys, fp8ref; print(sorted(m for m in ('numba', 'torch', 'matplotlib', 'scipy') "
               "if m in sys.modules))")
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", sorted(fp8ref._LAZY))
def test_lazy_names_resolve(name: str) -> None:
    assert getattr(fp8ref, name) is not None


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fp8ref.nope  # noqa: B018


def test_console_script_help() -> None:
    out = subprocess.run([sys.executable, "-m", "fp8ref", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("formats", "codes", "train", "golden", "conform", "hwcheck"):
        assert cmd in out.stdout
