"""Shared pytest configuration for fp8ref."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
HWDATA = SHARED / "hwdata" / "tensor-core-validation"


@pytest.fixture(scope="session")
def hwdata_dir() -> Path:
    """The measured tensor-core data (../shared/hwdata/tensor-core-validation), or skip."""
    env = os.environ.get("FP8REF_HWDATA")
    path = Path(env) if env else HWDATA
    if not path.is_dir():
        pytest.skip(f"tensor-core measurement data not found at {path} (set FP8REF_HWDATA to its folder)")
    return path
