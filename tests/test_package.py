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


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """README: exactly two set-up commands (the main job and the tests); ``.ci/run`` runs the second one."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", setup, re.S)
    commands = [b.strip() for b in blocks[:2]]
    assert commands[0].endswith("fp8ref train"), commands[0]
    assert commands[1].startswith("python3 -m venv .venv") and commands[1].endswith("python -m pytest")
    assert "-c constraints.txt" in commands[1]
    lines = (root / ".ci" / "run").read_text().splitlines()
    ci = [ln for ln in lines if ln and not ln.startswith(("#", "set ", "cd "))]
    assert ci == [commands[1]]
