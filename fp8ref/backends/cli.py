"""``fp8ref backends``: list every registered backend, whether it runs here, and its capabilities."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "run", "report"]

_DESCRIPTION = ("List every registered fp8ref backend (built-in and from the 'fp8ref.backends' entry "
                "points): whether it runs here (else why not), its operations, formats, rounding modes, "
                "saturation, scaled_mm format pairs, scale granularities, output types, the accumulation "
                "it claims, and its deviations from the reference. For a wrapped peer library "
                "(ml_dtypes, torch) the deviations are measured on the installed version, against the "
                "exact reference, and the measurement is shown.")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("backends", help="list the available backends and their capabilities",
                              description=_DESCRIPTION)
    p.add_argument("names", nargs="*", metavar="NAME", help="only these backends (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--available", action="store_true", help="only the backends that run here")
    p.set_defaults(func=run)


def report(names: list[str] | None = None, *, only_available: bool = False) -> list[dict[str, Any]]:
    """One JSON-serialisable dict per backend: name, origin, available, reason, capabilities, and
    ``measured``: what was measured of a wrapped peer library (``PeerProbe.to_dict()``), else None."""
    from fp8ref.backends import registry

    infos = registry.describe()
    known = {i.name for i in infos}
    for n in names or []:
        if n not in known:
            raise ValueError(f"unknown backend {n!r}; registered backends: {', '.join(sorted(known))}")
    out = []
    for info in infos:
        if names and info.name not in names:
            continue
        if only_available and not info.available:
            continue
        out.append({
            "name": info.name,
            "origin": info.origin,
            "available": info.available,
            "reason": info.reason,
            "capabilities": info.backend.capabilities.to_dict() if info.backend is not None else None,
            "measured": _measured(info.backend),
        })
    return out


def _measured(backend: Any) -> dict[str, Any] | None:
    from fp8ref.backends.peer_probe import PeerProbe

    probe = getattr(backend, "measured", None)
    return probe.to_dict() if isinstance(probe, PeerProbe) else None


def _pairs(pairs: list[list[str]]) -> str:
    """``a x b, ...``, or ``any of [A] x any of [B]`` when the pairs are a full product."""
    if not pairs:
        return "-"
    firsts = list(dict.fromkeys(a for a, _ in pairs))
    seconds = list(dict.fromkeys(b for _, b in pairs))
    if len(pairs) > 4 and {(a, b) for a, b in pairs} == {(a, b) for a in firsts for b in seconds}:
        return f"any of {', '.join(firsts)} x any of {', '.join(seconds)}"
    return ", ".join(f"{a} x {b}" for a, b in pairs)


def _fmt_caps(caps: dict[str, Any]) -> list[str]:
    pairs = _pairs(caps["mm_formats"])
    lines = [
        f"  ops:            {', '.join(caps['ops']) or '-'}",
        f"  formats:        {', '.join(caps['formats']) or '-'}",
        f"  rounding:       {', '.join(caps['rounding']) or '-'}",
        f"  saturate:       {', '.join(str(s) for s in caps['saturate']) or '-'}",
    ]
    if "scaled_mm" in caps["ops"]:
        acc = caps["accumulation"] or "no claim"
        if caps["accumulation_selectable"]:
            acc += " (any model via accumulate=)"
        lines += [
            f"  scaled_mm:      {pairs}",
            f"  granularities:  {_pairs(caps['granularities'])}",
            f"  out dtypes:     {', '.join(caps['out_dtypes'])}",
            f"  accumulation:   {acc}",
        ]
    lines.append(f"  device:         {caps['device']}")
    for d in caps["deviations"]:
        lines.append(f"  deviation:      {d}")
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        rows = report(args.names, only_available=args.available)
    except ValueError as exc:
        print(f"fp8ref backends: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = "available" if row["available"] else "unavailable"
        print(f"{row['name']}  [{state}; {row['origin']}]")
        if row["available"]:
            print("\n".join(_fmt_caps(row["capabilities"])))
            if row["measured"] is not None:
                print(f"  measured:       {row['measured']['library']}, against the exact reference")
                print("\n".join(f"    {line}" for line in row["measured"]["summary"]))
        else:
            print(f"  reason:         {row['reason']}")
    from fp8ref.backends.registry import shadowed

    for s in shadowed():
        print(f"note: entry point {s}")
    return 0
