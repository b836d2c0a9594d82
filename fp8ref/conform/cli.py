"""``fp8ref conform --backend NAME [--golden DIR] [--suite S ...] [--tolerance ULPS] [--report FILE.json]``
and ``fp8ref conform --trainer --backend NAME``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_DESCRIPTION = ("Run a golden set through a backend: per suite the cases, bit-exact matches, a histogram "
                "of ulp distances, the worst elements with their inputs, and the accumulation model that "
                "explains the backend's scaled_mm. Exit 0 when no case exceeds the tolerance, 1 otherwise, "
                "2 for a bad set or backend.")


def register(subparsers: argparse._SubParsersAction) -> None:
    from fp8ref.conform.isolate import DEFAULT_TIMEOUT
    from fp8ref.golden.ops import ALL_SUITES as SUITES

    p = subparsers.add_parser("conform", help="run a golden set through a backend and report deviations",
                              description=_DESCRIPTION)
    p.add_argument("--backend", required=True, help="backend name (see 'fp8ref backends')")
    p.add_argument("--golden", metavar="DIR", default=None,
                   help="golden set directory (default: $FP8REF_GOLDEN, else the set shipped with fp8ref)")
    p.add_argument("--suite", action="append", choices=SUITES, default=None, help="suite to run (repeatable)")
    p.add_argument("--tolerance", type=float, default=0.0, metavar="ULPS",
                   help="largest accepted distance in ulps of the output type (default 0: bit-exact)")
    p.add_argument("--report", metavar="FILE.json", default=None, help="also write the full report as JSON")
    p.add_argument("--worst", type=int, default=5, help="worst elements shown per suite (default 5)")
    p.add_argument("--no-infer", action="store_true", help="skip the accumulation-model inference")
    p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="run the backend's calls in a separate worker process, so that a backend that exits, "
                        "crashes or hangs fails the case instead of stopping the run (default: isolate every "
                        "backend but fp8ref's built-in ones)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help=f"with isolation: the time one case (with --trainer: the backend's whole training "
                        f"run) may take before the worker is killed and the case fails (default "
                        f"{DEFAULT_TIMEOUT:g})")
    p.add_argument("--trainer", action="store_true",
                   help="instead: train side by side on the backend and the reference and report the first "
                        "step/layer/tensor where they diverge")
    p.add_argument("--steps", type=int, default=None, help="with --trainer: number of steps")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not args.tolerance >= 0:
        print("fp8ref conform: --tolerance must be >= 0", file=sys.stderr)
        return 2
    if args.timeout is not None and not args.timeout > 0:
        print("fp8ref conform: --timeout must be > 0 seconds", file=sys.stderr)
        return 2
    if args.report:  # before any work: OutputError is one line and exit 2 (fp8ref.cli)
        from fp8ref.outputs import check_output_file

        check_output_file(args.report)
    if args.trainer:
        return _trainer(args)
    from fp8ref.backends import BackendUnavailable
    from fp8ref.backends.registry import origin
    from fp8ref.conform.harness import run
    from fp8ref.conform.isolate import DEFAULT_TIMEOUT
    from fp8ref.conform.report import format_table
    from fp8ref.golden import SetError, default_set_dir

    try:
        root = Path(args.golden) if args.golden else default_set_dir()
    except FileNotFoundError as exc:
        print(f"fp8ref conform: {exc}", file=sys.stderr)
        return 2
    try:
        origin(args.backend)
    except ValueError as exc:
        print(f"fp8ref conform: {exc}", file=sys.stderr)
        return 2
    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    try:
        rep = run(args.backend, root, suites=args.suite, tolerance=args.tolerance, keep=args.worst,
                  infer_accumulation=not args.no_infer, isolate=args.isolate, timeout=timeout)
    except SetError as exc:
        print(f"fp8ref conform: invalid golden set: {exc}", file=sys.stderr)
        return 2
    except BackendUnavailable as exc:
        print(f"fp8ref conform: {exc}", file=sys.stderr)
        return 2
    print(format_table(rep, worst=args.worst))
    if args.report:
        Path(args.report).write_text(json.dumps(rep.to_json(), indent=2, sort_keys=True) + "\n")
        print(f"report written to {args.report}")
    return 0 if rep.passed else 1


def _trainer(args: argparse.Namespace) -> int:
    """``--trainer``: fp8ref.conform.trainer.compare_trainer, rendered; exit 0 identical, 1 diverged,
    2 when the backend refused or failed an operation."""
    from fp8ref.backends import BackendUnavailable
    from fp8ref.conform.isolate import DEFAULT_TIMEOUT
    from fp8ref.conform.trainer import compare_trainer

    kw = {} if args.steps is None else {"steps": args.steps}
    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    try:
        result = compare_trainer(args.backend, isolate=args.isolate, timeout=timeout, **kw)
    except (ValueError, KeyError, BackendUnavailable) as exc:
        print(f"fp8ref conform --trainer: {exc}", file=sys.stderr)
        return 2
    print(format_trainer(result))
    if args.report:
        Path(args.report).write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
        print(f"report written to {args.report}")
    if result.get("status") != "ok":
        return 2
    return 0 if result.get("identical") else 1


def format_trainer(r: dict) -> str:
    """The human-readable form of a trainer side-by-side comparison."""
    lines = [f"fp8ref conform --trainer: backend {r.get('backend')} (accumulation "
             f"{r.get('backend_accumulation')!r}{', in a worker process' if r.get('isolated') else ''}) "
             "vs reference "
             f"(accumulate={r.get('reference_accumulate')!r}), "
             f"{r.get('steps_run')} steps"]
    if r.get("status") != "ok":
        lines.append(f"status: {r.get('status')}: {r.get('reason')}")
    for st in r.get("per_step", []):
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in st.items()))
    fd = r.get("first_divergence")
    if fd:
        lines.append("first divergence: " + ", ".join(f"{k}={v}" for k, v in fd.items()))
    else:
        lines.append("identical: every compared tensor is bit-exact" if r.get("identical")
                     else "no divergence recorded")
    return "\n".join(lines)
