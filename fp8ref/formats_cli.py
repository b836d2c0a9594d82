"""``fp8ref formats`` and ``fp8ref codes FORMAT``: the format tables, for reading and teaching."""

from __future__ import annotations

import argparse

from fp8ref.formats import Format, format, formats


def _fmt_value(v: float) -> str:
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    return repr(v)


def format_table() -> str:
    head = ("name", "bits", "e", "m", "bias", "max", "min_normal", "min_subnormal", "eps", "inf", "nan",
            "-0", "nan_code")
    rows = [head]
    for f in formats():
        rows.append((
            f.name, str(f.bits), str(f.ebits), str(f.mbits), str(f.bias), f"{f.max:.10g}",
            f"2^{f.emin}", f"{f.min_subnormal:.6g}", f"2^-{f.mbits}", "yes" if f.has_inf else "no", f.nan,
            "yes" if f.has_negative_zero else "no",
            "-" if f.nan_code is None else f"0x{f.nan_code:0{(f.bits + 3) // 4}x}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def code_table(fmt: Format) -> str:
    if fmt.bits > 8:
        raise ValueError(f"codes lists formats of at most 8 bits; {fmt.name} has {fmt.bits}")
    width = (fmt.bits + 3) // 4
    lines = [f"{fmt.name}: {fmt.description or fmt.name}",
             f"{'code':<6} {'bits':<{fmt.bits + 2}} {'class':<10} value"]
    for code in range(fmt.n_codes):
        b = format_bits(fmt, code)
        v = fmt.decode(code)
        lines.append(f"0x{code:0{width}x}   {b:<{fmt.bits + 2}} {fmt.classify(code):<10} {_fmt_value(v)}")
    return "\n".join(lines)


def format_bits(fmt: Format, code: int) -> str:
    s = format_int(code, fmt.bits)
    parts = []
    i = 0
    if fmt.signed:
        parts.append(s[0])
        i = 1
    parts.append(s[i:i + fmt.ebits])
    if fmt.mbits:
        parts.append(s[i + fmt.ebits:])
    return ".".join(parts)


def format_int(code: int, bits: int) -> str:
    return bin(code)[2:].zfill(bits)


def _cmd_formats(args: argparse.Namespace) -> int:
    print(format_table())
    return 0


def _cmd_codes(args: argparse.Namespace) -> int:
    try:
        fmt = format(args.format)
        print(code_table(fmt))
    except ValueError as exc:
        print(f"fp8ref codes: {exc}")
        return 2
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("formats", help="print the parameter table of every format")
    p.set_defaults(func=_cmd_formats)
    p = sub.add_parser("codes", help="print all codes of a format (value, class, bit fields)")
    p.add_argument("format", help="format name, e.g. E4M3, e5m2, float8_e4m3fnuz")
    p.set_defaults(func=_cmd_codes)
