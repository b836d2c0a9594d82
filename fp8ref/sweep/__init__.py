"""Sweeps of fp8ref's commands over grids of options, on Dask distributed (``fp8ref sweep``, docs/sweep.md).

>>> from fp8ref.sweep import Sweep
>>> s = Sweep(kind="train", grid={"bias": [0, 4], "seed": [0, 1]}, fixed={"recipe": "fp8-cscale", "steps": 4})
>>> [c.name for c in s.cells]
['bias=0__seed=0', 'bias=0__seed=1', 'bias=4__seed=0', 'bias=4__seed=1']

``Sweep.run(out=..., client=None)`` runs the cells (each one the single command, e.g. ``fp8ref train
--bias 4 --seed 1 ... --out <cell folder>``) on a ``distributed`` cluster; :func:`report` writes the
summary table and figures of a sweep folder. Importing this package does not import Dask (the optional
extra ``fp8ref[sweep]``); running does.
"""

from __future__ import annotations

from typing import Any

from fp8ref.sweep.spec import KINDS, Cell, SpecError, Sweep

__all__ = ["Sweep", "Cell", "SpecError", "KINDS", "report", "resume"]


def report(out: Any) -> list[Any]:
    """Write ``out/report/``: ``summary.csv``, ``summary.md`` and the figures; returns the files written."""
    from fp8ref.sweep.report import write_report

    return write_report(out)


def resume(out: Any, client: Any = None, **kw: Any) -> list[dict[str, Any]]:
    """Continue the sweep folder ``out`` (its ``spec.toml``): run only the cells not complete there."""
    from pathlib import Path

    from fp8ref.sweep import results as rs

    spec = Path(out) / rs.SPEC
    if not spec.is_file():
        raise SpecError(f"{out}: not a sweep folder (no {rs.SPEC})")
    return Sweep.from_toml(spec).run(out, client, resume=True, **kw)
