"""``fp8ref hwcheck DIR`` and ``fp8ref probe`` (registered by fp8ref/cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("hwcheck", help="replay measured tensor-core outputs through the models",
                       description="Replay every line of a measurement folder (layout of "
                       "shared/hwdata/tensor-core-validation: <GPU>/<fmt>/{a,b,c,d}_*.txt) through "
                       "fp8ref.accum.tensor_core(GPU, fmt, out) and print lines matched per set. Every "
                       "model of the table is confirmed: all 48 sets of tensor-core-validation (V100 to "
                       "B200, FP8 inputs with fp16 output on Hopper and B200 included) reproduce 100 %. "
                       "Exit status 0 when every set with a confirmed model matches 100 %, 1 when one does "
                       "not; a set whose model is marked unconfirmed (no model of the table is) is "
                       "reported as UNEXPLAINED and does not fail.")
    p.add_argument("dir", type=Path, help="measurement folder")
    p.add_argument("--limit", type=int, default=None, help="replay only the first N lines of each set")
    p.add_argument("--mismatches", type=int, default=3, help="mismatching lines to print per set (default 3)")
    p.set_defaults(func=_hwcheck)

    q = sub.add_parser("probe", help="infer block-FMA parameters and promotion interval of a dot product",
                       usage="fp8ref probe --model MODEL [--in-format IN_FORMAT] [--no-c] [--max-k MAX_K] "
                       "[--promotion-k PROMOTION_K]\n       fp8ref probe --list [--model MODEL]",
                       description="Infer the block-FMA parameters (NFMA, F, output bits, final rounding, "
                       "e_floor, c_mode) and the promotion interval of a dot product from designed probe "
                       "vectors, or list the published diagnostic probes with the model's outputs.")
    q.add_argument("--model", help="required unless --list: a preset name (fp8ref.accum.PRESETS) or "
                   "GPU:FORMAT[:OUT], e.g. h100-fp8, H100:E4M3:fp32 (with --list: only the probes of its "
                   "formats, with its outputs)")
    q.add_argument("--in-format", default=None, help="input format for presets (default: the model's)")
    q.add_argument("--no-c", action="store_true",
                   help="infer from products only (the dot product takes no c)")
    q.add_argument("--max-k", type=int, default=256, help="longest vector for the block parameters")
    q.add_argument("--promotion-k", type=int, default=1024, help="vector length of the promotion probe")
    q.add_argument("--list", action="store_true", help="list the published probes (with --model: the "
                   "model's output on each probe of its input/output formats)")
    q.set_defaults(func=_probe)


def _hwcheck(args: argparse.Namespace) -> int:
    from fp8ref.accum import hwcheck

    if not args.dir.is_dir():
        print(f"fp8ref hwcheck: {args.dir} is not a directory", file=sys.stderr)
        return 2
    sets = hwcheck.discover(args.dir)
    if not sets:
        print(f"fp8ref hwcheck: no measurement sets found under {args.dir}", file=sys.stderr)
        return 2
    results = hwcheck.run(args.dir, limit=args.limit, max_mismatches=args.mismatches)
    print(hwcheck.report(results))
    return 0 if all(r.ok for r in results if r.confirmed) else 1


def model_from_name(name: str):
    """A preset name, or ``GPU:FORMAT[:OUT[:INSTRUCTION]]`` for ``tensor_core``."""
    from fp8ref import accum

    if ":" in name:
        parts = name.split(":")
        if len(parts) not in (2, 3, 4):
            raise ValueError(f"model {name!r}: expected GPU:FORMAT[:OUT[:INSTRUCTION]]")
        ins = parts[3] if len(parts) == 4 else None
        return accum.tensor_core(*parts[:3], instruction=ins)
    return accum.get(name)


def _probe(args: argparse.Namespace) -> int:
    from fp8ref import accum
    from fp8ref.accum import probes

    if args.list:
        model = model_from_name(args.model) if args.model else None
        for pr in probes.PROBES:
            line = f"{pr.id:8} {pr.in_format:5} -> {pr.out_format:5} {pr.decides}  [{pr.source}]"
            if model is not None:
                fin = getattr(model, "in_format", None)
                if fin is None or fin.name.lower() != pr.in_format.lower() or \
                        model.out_format.name.lower() != pr.out_format.lower():
                    continue
                a, b = pr.vectors()
                line += f"\n         model: {model.dot(a, b, pr.c)!r}"
                if model.name in pr.expected:
                    line += f"   expected: {pr.expected[model.name]!r}"
            print(line)
        return 0
    if not args.model:
        print("fp8ref probe: --model MODEL is required (or --list, to list the published probes)",
              file=sys.stderr)
        return 2
    try:
        model = model_from_name(args.model)
        if args.in_format:
            model = model.for_inputs(args.in_format)
    except ValueError as exc:
        print(f"fp8ref probe: {exc}", file=sys.stderr)
        return 2
    if isinstance(model, accum.BlockScaled):
        from fp8ref.accum import scaledprobes

        sinf = scaledprobes.infer_scaled(scaledprobes.dot_fn_of(model), model.in_format, model.block_size,
                                         model.scale_format)
        print(f"model: {model.describe()}")
        print(sinf.summary())
        return 0
    inf = probes.infer(probes.dot_fn_of(model), model.in_format, model.out_format,
                       in_format_b=model.format_b, accepts_c=not args.no_c, max_k=args.max_k,
                       promotion_k=args.promotion_k)
    print(f"model: {model.describe()}")
    print(inf.summary())
    print(f"inferred model: {inf.model().describe()}")
    return 0
