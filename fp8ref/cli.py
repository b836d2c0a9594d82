"""The ``fp8ref`` command line.

Each sub-command lives in the module that owns its feature; this dispatcher imports only the module of
the command being run, so ``fp8ref formats`` never pays for Numba or torch.

A command module defines ``register(subparsers) -> None``, which adds its parser(s) and sets
``func=handler`` on them; a handler takes the parsed ``argparse.Namespace`` and returns an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module that registers it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "formats": ("fp8ref.formats_cli", "print the parameter table of every format"),
    "codes": ("fp8ref.formats_cli", "print every code of a format with value, class and bit fields"),
    "train": ("fp8ref.nn.cli", "train the tiny NumPy GPT in fp32 / FP8 recipes and compare"),
    "infer": ("fp8ref.nn.cli", "FP8 post-training-quantised evaluation of a checkpoint (AMAX, CSCALE sweep)"),
    "embed": ("fp8ref.models.cli", "embed sentences with a pretrained model (minilm) in fp32 and FP8"),
    "hwcheck": ("fp8ref.accum.cli", "replay measured tensor-core outputs through the models"),
    "probe": ("fp8ref.accum.cli", "infer block-FMA parameters and promotion interval of a dot product"),
    "golden": ("fp8ref.golden.cli", "generate / verify golden vector sets"),
    "conform": ("fp8ref.conform.cli", "run a golden set through a backend and report deviations"),
    "backends": ("fp8ref.backends.cli", "list the available backends and their capabilities"),
    "sweep": ("fp8ref.sweep.cli", "run train / infer / golden / conform over a grid of options on Dask"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fp8ref",
        description="fp8ref: bit-exact FP8 reference. Commands: "
        + "; ".join(f"{name}: {text}" for name, (_, text) in COMMANDS.items()),
    )
    from fp8ref import __version__

    parser.add_argument("--version", action="version", version=f"fp8ref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMANDS[only][0]] if only in COMMANDS else sorted({m for m, _ in COMMANDS.values()})
    done: set[str] = set()
    for module in modules:
        if module in done:
            continue
        done.add(module)
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # a feature whose optional dependency is missing
            if only is not None:
                raise SystemExit(f"fp8ref {only}: cannot load {module}: {exc}") from exc
            continue
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from fp8ref.outputs import UsageError, describe_os_error

    name = args.command or "fp8ref"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except UsageError as exc:  # includes OutputError: a destination that cannot be written
        print(f"fp8ref {name}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write that failed midway (disk full, folder removed): one line, no traceback
        print(f"fp8ref {name}: {describe_os_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
