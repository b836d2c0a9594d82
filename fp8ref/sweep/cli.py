"""``fp8ref sweep SPEC.toml [--out DIR] [--scheduler ADDR | --workers N] [--dry-run] [--retries N]``,
``fp8ref sweep --resume DIR`` and ``fp8ref sweep --report DIR`` (docs/sweep.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

_DESCRIPTION = (
    "Run one fp8ref command over a grid of options on Dask distributed: every cell is the single command "
    "(fp8ref train / infer / golden generate / conform) with its own folder under DIR/cells/, byte-identical "
    "to running that cell alone (per-step timings aside). Exit 0 when every cell is ok (and, for conform, "
    "passes), 1 otherwise, 2 for a spec or folder that cannot be used, 130 when interrupted "
    "(fp8ref sweep --resume DIR goes on)."
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a command over a grid of options on Dask (train, ptq, golden, conform)",
        description=_DESCRIPTION,
    )
    p.add_argument(
        "spec",
        nargs="?",
        metavar="SPEC.toml",
        help="the sweep: kind = train|ptq|golden|conform, [grid] option = [values], [fixed]",
    )
    p.add_argument("--out", metavar="DIR", help="sweep folder (default: a new folder under ./sweeps/)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="run on the Dask scheduler at ADDR (tcp://HOST:8786) instead of a local cluster",
    )
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local cluster of N worker processes, one thread each (default: one per CPU)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the spec, list the cells and their commands, run nothing",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="times a cell is rescheduled when its worker dies (on the local cluster; a --scheduler "
        "keeps its own allowed-failures) or retried when its task raises (default 3)",
    )
    p.add_argument("--resume", metavar="DIR", help="continue the sweep in DIR: run only its missing cells")
    p.add_argument(
        "--rerun-failed", action="store_true", help="with --resume: also run the failed cells again"
    )
    p.add_argument(
        "--report",
        metavar="DIR",
        help="write DIR/report/ (summary.csv, summary.md, figures) from the results in DIR; computes nothing",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=sweep_main)


def sweep_main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fp8ref.outputs import UsageError
    from fp8ref.sweep import results as rs
    from fp8ref.sweep.spec import Sweep

    modes = [
        m
        for m, v in (("SPEC.toml", args.spec), ("--resume", args.resume), ("--report", args.report))
        if v is not None
    ]
    if len(modes) != 1:
        raise UsageError(
            "give one of SPEC.toml, --resume DIR or --report DIR"
            if not modes
            else f"{' and '.join(modes)} cannot be combined"
        )
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.report is not None:
        given = [
            o
            for o, v in (("--out", args.out), ("--scheduler", args.scheduler), ("--workers", args.workers))
            if v is not None
        ] + (["--dry-run"] if args.dry_run else [])
        if given:
            raise UsageError(f"--report computes nothing; {', '.join(given)} do not apply")
        from fp8ref.sweep.report import write_report

        for f in write_report(args.report):
            print(f)
        return 0
    if args.resume is not None:
        if args.out is not None:
            raise UsageError("--resume continues the sweep in its own folder; --out does not apply")
        folder = Path(args.resume)
        if not rs.is_sweep_folder(folder):
            raise UsageError(f"--resume {folder}: not a sweep folder (no {rs.SPEC} and {rs.STATE}/)")
        sweep = Sweep.from_toml(folder / rs.SPEC)
        out: Path | None = folder
    else:
        if args.rerun_failed:
            raise UsageError("--rerun-failed goes with --resume DIR")
        sweep = Sweep.from_toml(args.spec)
        out = Path(args.out) if args.out else None
    if args.dry_run:
        return _dry_run(sweep, out, resume=args.resume is not None)
    from fp8ref.sweep.runner import run

    try:
        records = run(
            sweep,
            out,
            scheduler=args.scheduler,
            workers=args.workers,
            retries=args.retries,
            progress=not args.quiet,
            resume=args.resume is not None,
            rerun_failed=args.rerun_failed,
        )
    except KeyboardInterrupt:
        return 130
    bad = [r for r in records if r.get("status") != "ok" or r.get("passed") is False]
    return 1 if bad or len(records) < len(sweep.cells) else 0


def _dry_run(sweep: Any, out: Any, resume: bool) -> int:
    from fp8ref.sweep import results as rs
    from fp8ref.sweep.kinds import kind_of

    cells = sweep.cells
    done = rs.read_done(out, [c.name for c in cells]) if resume else {}
    kind = kind_of(sweep.kind)
    root = str(out) if out is not None else "DIR"
    for c in cells:
        state = f"  [{done[c.name].get('status')}]" if c.name in done else ""
        print(f"{c.name}{state}\n    fp8ref {' '.join(kind.argv(c.params, f'{root}/{c.dir}'))}")
    todo = len(cells) - len(done)
    print(
        f"{len(cells)} cells ({sweep.kind}); {todo} to run" + (f", {len(done)} complete" if done else ""),
        file=sys.stdout,
    )
    return 0
