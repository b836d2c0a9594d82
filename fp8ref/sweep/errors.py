"""The error of a sweep specification (its own module: the spec, the kinds and the runner all raise it)."""

from __future__ import annotations

from fp8ref.outputs import UsageError

__all__ = ["SpecError"]


class SpecError(UsageError):
    """A sweep specification that cannot run: the message names the key, the axis or the cell."""
