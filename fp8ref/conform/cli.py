"""``fp8ref conform --backend NAME [--golden DIR] [--suite S ...] [--tolerance ULPS] [--report FILE.json]``
and ``fp8ref conform --trainer --backend NAME``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from fp8ref.golden.ops import SUITES

    p = subparsers.add_parser("conform", help="run a golden set through a backend and report deviations",
                              description="Run a golden set through a backend: per suite the cases, "
                              "bit-exact matches, a histogram of ulp distances, the worst elements with their "
                              "inputs, and the accumulation model that explains the backend's scaled_mm. Exit 0 when no "
                              "case exceeds the tolerance, 1 otherwise, 2 for a bad set or backend.")
    p.add_argument("--backend", required=True, help="backend name (see 'fp8ref backends')")
    p.add_argument("--golden", metavar="DIR", default=None,
                   help="golden set directory (default: $FP8REF_GOLDEN, else the set shipped with fp8ref)")
    p.add_argument("--suite", action="append", choices=SUITES, default=None, help="suite to run (repeatable)")
    p.add_argument("--tolerance", type=float, default=0.0, metavar="ULPS",
                   help="largest accepted distance in ulps of the output type (default 0: bit-exact)")
    p.add_argument("--report", metavar="FILE.json", default=None, help="also write the full report as JSON")
    p.add_argument("--worst", type=int, default=5, help="worst elements shown per suite (default 5)")
    p.add_argument("--no-infer", action="store_true", help="skip the accumulation-model inference")
    p.add_argument("--trainer", action="store_true",
                   help="instead: train side by side on the backend and the reference and report the first "
                        "step/layer/tensor where they diverge")
    p.add_argument("--steps", type=int, default=None, help="with --trainer: number of steps")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.tolerance < 0:
        print("fp8ref conform: --tolerance must be >= 0", file=sys.stderr)
        return 2
    if args.trainer:
        return _trainer(args)
    from fp8ref.backends import BackendUnavailable, get
    from fp8ref.conform.harness import run
    from fp8ref.conform.report import format_table
    from fp8ref.golden import SetError, default_set_dir

    try:
        root = Path(args.golden) if args.golden else default_set_dir()
    except FileNotFoundError as exc:
        print(f"fp8ref conform: {exc}", file=sys.stderr)
        return 2
    try:
        backend = get(args.backend)
    except (ValueError, KeyError, BackendUnavailable) as exc:
        print(f"fp8ref conform: {exc}", file=sys.stderr)
        return 2
    try:
        rep = run(backend, root, suites=args.suite, tolerance=args.tolerance, keep=args.worst,
                  infer_accumulation=not args.no_infer)
    except SetError as exc:
        print(f"fp8ref conform: invalid golden set: {exc}", file=sys.stderr)
        return 2
    print(format_table(rep, worst=args.worst))
    if args.report:
        Path(args.report).write_text(json.dumps(rep.to_json(), indent=2, sort_keys=True) + "\n")
        print(f"report written to {args.report}")
    return 0 if rep.passed else 1


def _trainer(args: argparse.Namespace) -> int:
    try:
        from fp8ref.backends.trainer_compare import compare_trainer
    except ImportError as exc:
        print(f"fp8ref conform --trainer: {exc}", file=sys.stderr)
        return 2
    kw = {} if args.steps is None else {"steps": args.steps}
    result = compare_trainer(args.backend, **kw)
    text = result.format() if hasattr(result, "format") else str(result)
    print(text)
    if args.report:
        data = result.to_dict() if hasattr(result, "to_dict") else {"result": text}
        Path(args.report).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    diverged = getattr(result, "diverged", None)
    if diverged is None and isinstance(result, dict):
        diverged = result.get("diverged")
    return 1 if diverged else 0
