"""``fp8ref golden generate DIR [--suite S ...]`` and ``fp8ref golden verify DIR [--suite S ...]``."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    from fp8ref.golden.ops import ALL_SUITES, SUITES

    p = subparsers.add_parser("golden", help="generate / verify golden vector sets",
                              description="Golden vector sets: safetensors tensor files plus manifest.json "
                              "(layout: docs/golden-format.md).")
    sub = p.add_subparsers(dest="golden_command", metavar="{generate,verify}")
    g = sub.add_parser("generate", help="write a golden set to DIR (byte-for-byte reproducible)")
    g.add_argument("dir", metavar="DIR", help="output directory (created; an fp8ref golden set there is "
                   "replaced, a folder holding anything else is refused)")
    g.add_argument("--suite", action="append", choices=ALL_SUITES, default=None,
                   help=f"suite to include (repeatable; default: all of {', '.join(SUITES)}; "
                   "minilm needs fp8ref[models])")
    g.add_argument("--case", action="append", default=None, metavar="GLOB",
                   help="keep only the cases whose id matches GLOB, e.g. 'matmul/models/*' (repeatable: any)")
    g.add_argument("--where", action="append", default=None, metavar="KEY=VALUE", type=_where,
                   help="keep only the cases whose parameter KEY equals VALUE, e.g. accumulate=h100-fp8 "
                        "(repeatable: all); a shard of a set, joined to others by fp8ref.golden.merge")
    g.set_defaults(func=_generate)
    v = sub.add_parser("verify", help="validate DIR and recompute every case bit for bit "
                                      "(exit 0 ok, 1 mismatch, 2 invalid or corrupt set)")
    v.add_argument("dir", metavar="DIR")
    v.add_argument("--suite", action="append", choices=ALL_SUITES, default=None,
                   help="verify only these suites (repeatable)")
    v.add_argument("-q", "--quiet", action="store_true", help="print only problems and the summary")
    v.set_defaults(func=_verify)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _where(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _generate(args: argparse.Namespace) -> int:
    from fp8ref.golden.generate import generate, where_value

    where = {k: where_value(v) for k, v in args.where or ()}
    t0 = time.perf_counter()
    try:
        m = generate(args.dir, args.suite, log=lambda s: print(s, flush=True), cases=args.case, where=where)
    except ValueError as exc:
        print(f"fp8ref golden generate: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(m['cases'])} cases to {args.dir} in {time.perf_counter() - t0:.1f} s")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from fp8ref.golden.verify import verify

    t0 = time.perf_counter()
    rep = verify(args.dir, suites=args.suite)
    for f in rep.findings:
        print(f"{f.status.upper()} {f.case}: {f.reason}")
    status = {0: "OK", 1: "MISMATCH", 2: "INVALID"}[rep.exit_code]
    print(f"{status}: {rep.passed} of {rep.cases} cases reproduce bit for bit "
          f"({time.perf_counter() - t0:.1f} s)")
    return rep.exit_code
