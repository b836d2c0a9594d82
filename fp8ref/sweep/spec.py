"""A sweep specification: its kind, its grid(s) and fixed options, the cells they expand to, TOML in and out.

This module imports no Dask: parsing, validating and listing a sweep (``--dry-run``) stay light.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from fp8ref.sweep.errors import SpecError

__all__ = ["Sweep", "Cell", "SpecError", "KINDS", "cell_name", "dumps_toml", "load_toml"]

#: the kinds of sweep and the single command each cell runs
KINDS: dict[str, str] = {
    "train": "fp8ref train",
    "ptq": "fp8ref infer",
    "golden": "fp8ref golden generate",
    "conform": "fp8ref conform",
}
Scalar = str | int | float | bool
_SAFE = re.compile(r"^[A-Za-z0-9+-][A-Za-z0-9._+-]{0,39}$")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9.+-]+")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    """Option names as the command's argparse destinations: ``n-head`` and ``n_head`` are ``n_head``."""
    return name.strip().replace("-", "_")


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"{where}: {value!r} is not a finite number")
        return value
    raise SpecError(
        f"{where}: values must be strings, integers, floats or booleans, got {type(value).__name__} {value!r}"
    )


def _same(a: Scalar, b: Scalar) -> bool:
    return type(a) is type(b) and a == b


def _value_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _name_part(value: Scalar, path: bool) -> str:
    """A folder-name-safe rendering of one value; values that needed changing get a hash of the original,
    so two values never share a rendering."""
    text = _value_text(value)
    if path:
        base = _UNSAFE_RUN.sub("_", Path(text).name).strip("_.")[:24] or "path"
        return f"{base}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    if _SAFE.match(text):
        return text
    base = _UNSAFE_RUN.sub("_", text).strip("_.")[:24] or "v"
    return f"{base}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def cell_name(params: Mapping[str, Scalar], axes: Sequence[str], path_keys: Sequence[str] = ()) -> str:
    """The folder name of a cell: ``key=value`` for each of its grid axes, sorted by key, joined by
    ``__`` (``bias=-4__formats=ocp__seed=0``). Values outside ``[A-Za-z0-9._+-]`` (or longer than 40
    characters, or paths: their last component) are rewritten and followed by ``~`` and 8 hex digits of
    the SHA-256 of the value. A cell with no axis is ``cell``."""
    if not axes:
        return "cell"
    return "__".join(f"{k}={_name_part(params[k], k in path_keys)}" for k in sorted(axes))


@dataclass(frozen=True)
class Cell:
    """One run of the single command: ``params`` are its options (fixed and grid), ``axes`` the grid keys
    it varies, ``name`` its folder name below ``cells/``."""

    name: str
    params: dict[str, Scalar]
    axes: tuple[str, ...]

    @property
    def dir(self) -> str:
        """The cell's folder, relative to the sweep's folder."""
        return f"cells/{self.name}"


def _grids(grid: Any) -> list[dict[str, list[Scalar]]]:
    if isinstance(grid, Mapping):
        raw = [grid]
    elif isinstance(grid, Sequence) and not isinstance(grid, str):
        raw = list(grid)
        if not raw:
            raise SpecError("grid: an empty list of grids")
    else:
        raise SpecError(f"grid must be a table (or a list of tables), got {type(grid).__name__}")
    out = []
    for i, g in enumerate(raw):
        where = "grid" if len(raw) == 1 else f"grid #{i + 1}"
        if not isinstance(g, Mapping):
            raise SpecError(f"{where} must be a table of option = [values], got {type(g).__name__}")
        norm: dict[str, list[Scalar]] = {}
        for k, values in g.items():
            key = _key(str(k))
            if key in norm:
                raise SpecError(f"{where}: option {k!r} is given twice (as {key} and another spelling)")
            if isinstance(values, str) or not isinstance(values, Sequence):
                raise SpecError(
                    f"{where}.{k}: a grid axis is a list of values (use [fixed] for one value), "
                    f"got {values!r}"
                )
            if not values:
                raise SpecError(f"{where}.{k}: an empty list (a grid axis needs at least one value)")
            vals = [_scalar(v, f"{where}.{k}") for v in values]
            for a, b in itertools.combinations(vals, 2):
                if _same(a, b):
                    raise SpecError(f"{where}.{k}: lists {a!r} twice")
            norm[key] = vals
        out.append(norm)
    return out


def _fixed(fixed: Any) -> dict[str, Scalar]:
    if not isinstance(fixed, Mapping):
        raise SpecError(f"fixed must be a table of option = value, got {type(fixed).__name__}")
    out: dict[str, Scalar] = {}
    for k, v in fixed.items():
        key = _key(str(k))
        if key in out:
            raise SpecError(f"fixed: option {k!r} is given twice (as {key} and another spelling)")
        if isinstance(v, list | tuple):
            raise SpecError(f"fixed.{k}: one value expected (a list of values is a [grid] axis), got {v!r}")
        out[key] = _scalar(v, f"fixed.{k}")
    return out


@dataclass(frozen=True)
class Sweep:
    """A sweep: ``kind`` (``train``, ``ptq``, ``golden``, ``conform``), ``grid`` (a mapping option ->
    list of values, whose product are the cells; or a list of such mappings, whose union, without
    duplicates, are the cells) and ``fixed`` (option -> value, shared by every cell).

    Option names are those of the single command (``bias``, ``n-head`` or ``n_head``, ...). Relative
    paths among the values of path options (train ``data``, ptq ``checkpoint``, conform ``golden``) are
    made absolute against ``base`` (default: the current folder; for :meth:`from_toml`, the spec's
    folder). Construction checks the structure; :attr:`cells` checks every cell against the command.
    """

    kind: str
    grid: Any = field(default_factory=dict)
    fixed: Any = field(default_factory=dict)
    base: str | Path | None = None

    def __post_init__(self) -> None:
        from fp8ref.sweep.kinds import kind_of

        if self.kind not in KINDS:
            raise SpecError(f"kind: {self.kind!r} is not a sweep kind; valid: {', '.join(KINDS)}")
        grids, fixed = _grids(self.grid), _fixed(self.fixed)
        for i, g in enumerate(grids):
            both = sorted(set(g) & set(fixed))
            if both:
                where = "grid" if len(grids) == 1 else f"grid #{i + 1}"
                raise SpecError(
                    f"{where} and fixed both set {', '.join(both)}: give each option in one place"
                )
        base = Path(self.base) if self.base is not None else Path.cwd()
        spec_kind = kind_of(self.kind)
        grids = [{k: [spec_kind.absolute(k, v, base) for v in vs] for k, vs in g.items()} for g in grids]
        fixed = {k: spec_kind.absolute(k, v, base) for k, v in fixed.items()}
        object.__setattr__(self, "grid", grids)
        object.__setattr__(self, "fixed", fixed)
        object.__setattr__(self, "base", base)

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path) -> Sweep:
        """Read a spec file (TOML: ``kind``, ``[grid]`` or ``[[grid]]``, ``[fixed]``)."""
        p = Path(path)
        doc = load_toml(p)
        return cls.from_dict(doc, base=p.resolve().parent, source=str(p))

    @classmethod
    def from_dict(
        cls, doc: Mapping[str, Any], *, base: str | Path | None = None, source: str = "spec"
    ) -> Sweep:
        unknown = sorted(set(doc) - {"kind", "grid", "fixed"})
        if unknown:
            raise SpecError(
                f"{source}: unknown top-level key(s) {', '.join(unknown)}; a spec has kind, "
                "[grid] (or [[grid]]) and [fixed]"
            )
        if "kind" not in doc:
            raise SpecError(f'{source}: missing kind = "..." (one of {", ".join(KINDS)})')
        try:
            return cls(kind=doc["kind"], grid=doc.get("grid", {}), fixed=doc.get("fixed", {}), base=base)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None

    # ---- the cells ----------------------------------------------------------------------------------------
    @cached_property
    def cells(self) -> list[Cell]:
        """Every cell (:meth:`expand`), each one checked by the command's own parser and configuration
        checks. Raises :class:`SpecError` naming the axis (or option) and the valid choices."""
        from fp8ref.sweep.kinds import kind_of

        cells = self.expand()
        kind_of(self.kind).validate(self, cells)
        return cells

    def expand(self) -> list[Cell]:
        """Every cell, unchecked, in spec order: grids in order, the first axis outermost; a cell that an
        earlier grid already gave is dropped. Raises :class:`SpecError` when two different cells would get
        the same folder name."""
        from fp8ref.sweep.kinds import kind_of

        path_options = kind_of(self.kind).path_options
        seen: dict[str, Cell] = {}
        for g in self.grid:
            keys = list(g)
            for combo in itertools.product(*(g[k] for k in keys)):
                params = dict(self.fixed)
                params.update(zip(keys, combo, strict=True))
                name = cell_name(params, keys, path_options)
                prev = seen.get(name)
                if prev is not None:
                    if prev.params.keys() == params.keys() and all(
                        _same(prev.params[k], params[k]) for k in params
                    ):
                        continue
                    raise SpecError(
                        f"two different cells get the folder name {name!r} ({prev.params} and "
                        f"{params}); give values that differ in text"
                    )
                seen[name] = Cell(name, params, tuple(keys))
        return list(seen.values())

    @property
    def axes(self) -> list[str]:
        """Every grid key, in order of first appearance."""
        return list(dict.fromkeys(k for g in self.grid for k in g))

    def to_toml(self) -> str:
        return dumps_toml(self)

    def run(
        self,
        out: str | Path | None = None,
        client: Any = None,
        *,
        workers: int | None = None,
        retries: int = 3,
        progress: bool = True,
        resume: bool = False,
        rerun_failed: bool = False,
    ) -> list[dict[str, Any]]:
        """Run every cell not yet complete in ``out`` on Dask and return the records of ``results.jsonl``.

        ``client``: a ``distributed.Client`` (any cluster); ``None``: a ``LocalCluster`` of ``workers``
        worker processes (default: one per CPU), one thread each, closed at the end. See
        :func:`fp8ref.sweep.runner.run`."""
        from fp8ref.sweep.runner import run

        return run(
            self,
            out,
            client=client,
            workers=workers,
            retries=retries,
            progress=progress,
            resume=resume,
            rerun_failed=rerun_failed,
        )


# ---- TOML -------------------------------------------------------------------------------------------------
def load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None


def _toml_value(v: Scalar) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def dumps_toml(sweep: Sweep) -> str:
    """The spec as TOML (what ``spec.toml`` of a sweep folder holds; :meth:`Sweep.from_toml` reads it
    back to the same sweep). Paths are absolute."""
    lines = ["# fp8ref sweep specification", f"kind = {_toml_value(sweep.kind)}", "", "[fixed]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in sweep.fixed.items()]
    many = len(sweep.grid) > 1
    for g in sweep.grid:
        lines += ["", "[[grid]]" if many else "[grid]"]
        lines += [f"{_toml_key(k)} = [{', '.join(_toml_value(v) for v in vs)}]" for k, vs in g.items()]
    return "\n".join(lines) + "\n"
