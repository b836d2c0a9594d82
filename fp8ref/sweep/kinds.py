"""What each kind of sweep runs: the single command of a cell, its checks, and what its files report.

=========  ===========================================================  ==========================
kind       command of one cell                                          metrics in results.jsonl
=========  ===========================================================  ==========================
train      ``fp8ref train OPTIONS --quiet --out CELL``                  ``summary.json``
ptq        ``fp8ref infer CHECKPOINT OPTIONS --out CELL``               ``ptq.json``
golden     ``fp8ref golden generate CELL --suite S [--case G]           the shard's manifest
           [--where KEY=VALUE ...]``
conform    ``fp8ref conform OPTIONS --report CELL/report.json``         ``report.json``
=========  ===========================================================  ==========================

Options are checked by the command's own parser (built here from its ``register`` function, so a new option
of a command is a new axis of its sweeps) and by the command's configuration checks, before anything runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from fp8ref.outputs import UsageError

__all__ = ["Kind", "kind_of", "command_parser", "validate_train_argv", "value_text"]


class _Refusing(argparse.ArgumentParser):
    """A parser whose errors raise :class:`UsageError` (argparse's message) instead of exiting."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(message)


@cache
def command_parser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    """The parser of ``fp8ref <path...>`` (e.g. ``("golden", "generate")``), built by the command's own
    ``register`` function, raising :class:`UsageError` instead of exiting."""
    from fp8ref.cli import COMMANDS

    module = importlib.import_module(COMMANDS[path[0]][0])
    top = _Refusing(prog="fp8ref")
    module.register(top.add_subparsers(dest="command", parser_class=_Refusing))
    parser: argparse.ArgumentParser = top
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _options(path: tuple[str, ...]) -> dict[str, argparse.Action]:
    return {
        a.dest: a
        for a in command_parser(path)._actions
        if a.dest not in ("help", argparse.SUPPRESS) and not isinstance(a, argparse._SubParsersAction)
    }


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _flag(action: argparse.Action) -> bool:
    return action.nargs == 0


def validate_train_argv(argv: list[str]) -> None:
    """Check the options of one ``fp8ref train`` run (``argv`` without ``train``) as the command does
    before it starts, creating nothing; raises :class:`UsageError` with the command's message.

    The only place a sweep checks a train cell: ``fp8ref.nn.cli.validate_train_argv``, the train command's
    own check (its parser, every ``TrainConfig`` rule, the recipe, the model shape and memory estimate, the
    accumulation model, the backend, the destination)."""
    from fp8ref.nn.cli import validate_train_argv as check

    check(list(argv))


class Kind:
    """One kind of sweep. Subclasses set the command and say how a cell's argv is built, checked and read."""

    name = ""
    path: tuple[str, ...] = ()
    path_options: tuple[str, ...] = ()
    #: options the sweep sets itself (or that do not make a cell), with the reason
    reserved: dict[str, str] = {}
    required: tuple[str, ...] = ()
    free_keys = False  # golden: any other key selects cases by parameter

    @property
    def command(self) -> str:
        return "fp8ref " + " ".join(self.path)

    def options(self) -> dict[str, argparse.Action]:
        return _options(self.path)

    def absolute(self, key: str, value: Any, base: Path) -> Any:
        """A path option's value made absolute against ``base`` (cells run in other folders)."""
        if key in self.path_options and isinstance(value, str) and value:
            return str((base / Path(value).expanduser()).resolve())
        return value

    # ---- argv -------------------------------------------------------------------------------------------
    def _option_args(self, params: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
        opts = self.options()
        argv: list[str] = []
        for key, value in params.items():
            if key in skip:
                continue
            action = opts.get(key)
            if action is None:
                argv.extend(self._extra_args(key, value))
                continue
            long = max(action.option_strings, key=len)
            if isinstance(action, argparse.BooleanOptionalAction):  # --isolate / --no-isolate
                if not isinstance(value, bool):
                    raise UsageError(f"option {key} is a flag: give true or false, got {value!r}")
                argv.append(min(action.option_strings, key=len) if value else long)
                continue
            if _flag(action):
                if not isinstance(value, bool):
                    raise UsageError(f"option {key} is a flag: give true or false, got {value!r}")
                if value:
                    argv.append(long)
                continue
            if isinstance(value, bool):
                raise UsageError(f"option {key} takes a value, got {value_text(value)}")
            argv.append(f"{long}={value_text(value)}")
        return argv

    def _extra_args(self, key: str, value: Any) -> list[str]:
        raise UsageError(f"unknown option {key}")

    def argv(self, params: dict[str, Any], cell_dir: str | None) -> list[str]:
        """The command's argv (``fp8ref.cli.main`` form) for a cell; ``cell_dir`` None: the options only,
        as the checks see them."""
        raise NotImplementedError

    # ---- checks -----------------------------------------------------------------------------------------
    def check(self, params: dict[str, Any]) -> None:
        """Refuse (:class:`UsageError`) a cell the command would refuse."""
        raise NotImplementedError

    def validate(self, sweep: Any, cells: list[Any]) -> None:
        from fp8ref.sweep.errors import SpecError

        opts = self.options()
        keys = list(sweep.fixed) + [k for g in sweep.grid for k in g]
        for key in dict.fromkeys(keys):
            where = "fixed" if key in sweep.fixed else "grid axis"
            if key in self.reserved:
                raise SpecError(f"{where} {key}: {self.reserved[key]}")
            if key not in opts and not self.free_keys:
                valid = ", ".join(sorted(k for k in opts if k not in self.reserved))
                raise SpecError(
                    f"{where} {key}: {self.command} has no option {key!r}; valid options: {valid}"
                )
        for cell in cells:
            missing = [k for k in self.required if k not in cell.params]
            if missing:
                raise SpecError(
                    f"cell {cell.name}: a {self.name} sweep needs {' and '.join(missing)} "
                    "(in [grid] or [fixed])"
                )
            try:
                self.check(cell.params)
            except UsageError as exc:
                raise SpecError(_blame(sweep, cell, self.command, str(exc))) from None

    # ---- a cell's run -----------------------------------------------------------------------------------
    def prepare(self, cell_dir: Path) -> None:
        """Anything the cell's folder needs before the command runs (the command creates it otherwise)."""

    def outcome(self, rc: int, cell_dir: Path) -> tuple[str, dict[str, Any]]:
        """``("ok" | "failed", metrics)`` from the command's exit status and the files it wrote."""
        raise NotImplementedError

    def finish(
        self, out: Path, cells: list[Any], records: dict[str, dict[str, Any]], log: Any = print
    ) -> None:
        """Work on the whole sweep once its cells are done (golden: the merged set)."""


def _blame(sweep: Any, cell: Any, command: str, message: str) -> str:
    """The refusal of a cell, naming the grid axis (or fixed option) the command's message points at:
    the option named in it (``--n-head``, ``n_head``) or the option whose value it quotes."""

    def named(k: str) -> bool:
        dashed = k.replace("_", "-")
        return bool(
            re.search(
                rf"(?<![\w-])(--{re.escape(dashed)}|{re.escape(k)}|{re.escape(dashed)})(?![\w-])", message
            )
        )

    def quoted(k: str) -> bool:
        t = value_text(cell.params[k])
        return f"'{t}'" in message or f'"{t}"' in message or f" {t}:" in message or f"--{k}={t}" in message

    axes = [k for k in cell.params if k in cell.axes]
    fixed = [k for k in cell.params if k not in cell.axes]
    for pool in (axes, fixed):
        # the value quoted beats the name mentioned; both beat either
        score = {k: 2 * quoted(k) + named(k) for k in pool}
        best = max(score.values(), default=0)
        if best:
            k = next(k for k in pool if score[k] == best)
            if k in cell.axes:
                return (
                    f"grid axis {k} = {cell.params[k]!r} (cell {cell.name}): {command} refuses it: {message}"
                )
            return f"fixed {k} = {cell.params[k]!r}: {command} refuses it: {message}"
    return f"cell {cell.name} ({cell.params}): {command} refuses it: {message}"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class Train(Kind):
    name = "train"
    path = ("train",)
    path_options = ("data",)
    reserved = {
        "out": "the sweep gives each cell its own folder (cells/<name>)",
        "resume": "a sweep resumes with fp8ref sweep --resume DIR",
        "compare": 'give the recipes as a grid axis: recipe = ["fp32", "fp8-amax", ...]',
        "quiet": "cells always run quietly (their output goes to logs/<name>.log)",
    }
    required = ("recipe",)

    def argv(self, params: dict[str, Any], cell_dir: str | None) -> list[str]:
        opts = self._option_args(params)
        if cell_dir is None:
            return opts
        return ["train", *opts, "--quiet", f"--out={cell_dir}"]

    def check(self, params: dict[str, Any]) -> None:
        # a folder that does not exist, under a writable one: the check of the destination passes whatever
        # the current folder is (each cell's own folder is the sweep's business); nothing is created
        import tempfile

        probe = Path(tempfile.gettempdir()) / "fp8ref-sweep-check-absent"
        validate_train_argv([*self.argv(params, None), f"--out={probe}"])

    def outcome(self, rc: int, cell_dir: Path) -> tuple[str, dict[str, Any]]:
        s = _read_json(cell_dir / "summary.json") or {}
        m: dict[str, Any] = {"label": s.get("recipe"), "steps_run": s.get("steps")}
        m.update({k: s.get(k) for k in ("final_val_loss", "final_train_loss", "best_loss")})
        m["run_status"] = s.get("status")
        if s.get("status") == "diverged":
            m["diverged_step"] = s.get("step")
        return ("ok" if rc == 0 else "failed"), m


class Ptq(Kind):
    name = "ptq"
    path = ("infer",)
    path_options = ("checkpoint",)
    reserved = {
        "out": "the sweep gives each cell its own folder (cells/<name>)",
        "model": "a ptq sweep evaluates trained checkpoints (checkpoint = [...]); fp8ref infer --model is "
        "not one of its options",
    }
    required = ("checkpoint",)

    def argv(self, params: dict[str, Any], cell_dir: str | None) -> list[str]:
        opts = self._option_args(params, skip=("checkpoint",))
        argv = [str(params["checkpoint"]), *opts]
        return argv if cell_dir is None else ["infer", *argv, f"--out={cell_dir}"]

    def check(self, params: dict[str, Any]) -> None:
        args = command_parser(self.path).parse_args(self.argv(params, None))
        from fp8ref.nn.checkpoint import CheckpointError
        from fp8ref.nn.infer import resolve_checkpoint

        try:
            resolve_checkpoint(args.checkpoint)
            if not 0 <= args.tolerance < 1:
                raise ValueError(f"--tolerance must lie in [0, 1), got {args.tolerance}")
            if not args.biases:
                raise ValueError("--biases must hold at least one bias")
            if args.backend is None and args.accumulate not in (None, "none", "fp16", "bf16"):
                from fp8ref.accum import resolve

                resolve(args.accumulate)
        except (ValueError, CheckpointError) as exc:
            raise UsageError(str(exc)) from None

    def outcome(self, rc: int, cell_dir: Path) -> tuple[str, dict[str, Any]]:
        r = _read_json(cell_dir / "ptq.json") or {}
        m = {k: r.get(k) for k in ("formats", "fp32", "amax", "cscale", "window", "plateau")}
        return ("ok" if rc == 0 else "failed"), m


class Golden(Kind):
    name = "golden"
    path = ("golden", "generate")
    reserved = {
        "dir": "the sweep gives each cell its own folder (cells/<name>)",
        "where": 'give each case parameter as its own key (accumulate = ["exact", ...])',
    }
    free_keys = True

    def _extra_args(self, key: str, value: Any) -> list[str]:
        return [f"--where={key}={value_text(value)}"]

    def argv(self, params: dict[str, Any], cell_dir: str | None) -> list[str]:
        opts = self._option_args(params)
        return ["golden", "generate", cell_dir or "DIR", *opts]

    def check(self, params: dict[str, Any]) -> None:
        from fp8ref.golden.generate import select, where_value
        from fp8ref.golden.ops import ALL_SUITES, SUITES

        args = command_parser(self.path).parse_args(self.argv(params, None)[2:])
        suites = [s for s in ALL_SUITES if s in (args.suite or SUITES)]
        where = {k: where_value(v) for k, v in args.where or ()}
        built = {s: _suite_cases(s) for s in suites}
        for key, want in where.items():
            values = {
                json.dumps(c.params[key], sort_keys=True) for s in suites for c in built[s] if key in c.params
            }
            if not values:
                keys = sorted({k for s in suites for c in built[s] for k in c.params})
                raise UsageError(
                    f"no case of suite(s) {', '.join(suites)} has a parameter {key}; their "
                    f"parameters: {', '.join(keys)}"
                )
            if json.dumps(want, sort_keys=True) not in values:
                raise UsageError(
                    f"no case of suite(s) {', '.join(suites)} has {key} = {want!r}; values of "
                    f"{key}: {', '.join(sorted(values))}"
                )
        if not any(select(built[s], args.case, where) for s in suites):
            raise UsageError(
                f"the selection (suite {', '.join(suites)}, case {args.case}, {where}) keeps no case"
            )

    def outcome(self, rc: int, cell_dir: Path) -> tuple[str, dict[str, Any]]:
        m = _read_json(cell_dir / "manifest.json") or {}
        cases = m.get("cases") or []
        return ("ok" if rc == 0 else "failed"), {
            "suites": m.get("suites"),
            "cases": len(cases),
            "bytes": sum(int(c.get("bytes", 0)) for c in cases if isinstance(c, dict)),
        }

    def finish(
        self, out: Path, cells: list[Any], records: dict[str, dict[str, Any]], log: Any = print
    ) -> None:
        """Merge the shards of the ok cells, in spec order, into ``out/golden`` (replacing a set an earlier
        run of this sweep merged there, never anything else)."""
        import shutil

        from fp8ref.golden import merge

        shards = [out / c.dir for c in cells if records.get(c.name, {}).get("status") == "ok"]
        if not shards:
            return
        dest = out / "golden"
        command = f"fp8ref sweep (golden shards merged in spec order: {len(shards)} of {len(cells)} cells)"
        if dest.exists():
            old = _read_json(dest / "manifest.json")
            if old is None or not str(old.get("command", "")).startswith("fp8ref sweep"):
                log(f"golden: {dest} exists and was not merged by fp8ref sweep; not replaced")
                return
        tmp = out / ".sweep" / "golden.merging"
        if tmp.exists():
            shutil.rmtree(tmp)
        merge(tmp, shards, command=command)
        if dest.exists():
            trash = out / ".sweep" / "golden.previous"
            if trash.exists():
                shutil.rmtree(trash)
            dest.rename(trash)
            tmp.rename(dest)
            shutil.rmtree(trash)
        else:
            tmp.rename(dest)
        missing = len(cells) - len(shards)
        log(
            f"golden: merged {len(shards)} shard(s) into {dest}"
            + (f" ({missing} cell(s) not ok: left out)" if missing else "")
            + f"; check: fp8ref golden verify {dest}"
        )


@cache
def _suite_cases(suite: str) -> list[Any]:
    from fp8ref.golden.ops import suite_module

    return suite_module(suite).build()


class Conform(Kind):
    name = "conform"
    path = ("conform",)
    path_options = ("golden",)
    reserved = {
        "report": "each cell writes cells/<name>/report.json",
        "trainer": "a conform sweep runs golden sets (fp8ref conform --trainer is not a sweep kind)",
        "steps": "only for fp8ref conform --trainer",
    }
    required = ("backend",)

    def argv(self, params: dict[str, Any], cell_dir: str | None) -> list[str]:
        opts = self._option_args(params)
        return opts if cell_dir is None else ["conform", *opts, f"--report={cell_dir}/report.json"]

    def check(self, params: dict[str, Any]) -> None:
        args = command_parser(self.path).parse_args(self.argv(params, None))
        from fp8ref.backends import names
        from fp8ref.golden import SetError, default_set_dir, load_set

        if args.backend not in names():
            raise UsageError(f"unknown backend {args.backend!r}; valid: {', '.join(names())}")
        if args.tolerance < 0:
            raise UsageError("--tolerance must be >= 0")
        try:
            load_set(args.golden if args.golden else default_set_dir())
        except (SetError, FileNotFoundError) as exc:
            raise UsageError(f"--golden: {exc}") from None

    def prepare(self, cell_dir: Path) -> None:
        cell_dir.mkdir(parents=True, exist_ok=True)

    def outcome(self, rc: int, cell_dir: Path) -> tuple[str, dict[str, Any]]:
        r = _read_json(cell_dir / "report.json") or {}
        suites = r.get("suites") or {}
        tot = {
            k: sum(int(s.get(k, 0)) for s in suites.values() if isinstance(s, dict))
            for k in ("cases", "exact", "within", "failed", "skipped", "errors")
        }
        m: dict[str, Any] = {"passed": r.get("passed") if rc in (0, 1) else None, **tot}
        return ("ok" if rc in (0, 1) else "failed"), m


_KINDS: dict[str, Kind] = {k.name: k for k in (Train(), Ptq(), Golden(), Conform())}


def kind_of(name: str) -> Kind:
    return _KINDS[name]
