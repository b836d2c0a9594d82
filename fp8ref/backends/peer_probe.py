"""What a peer library's FP8 casts do, measured on the installed version against the exact reference.

Peers change between releases (ml_dtypes 0.6 rounded float64 input to float32 before the FP8 cast, 0.7
rounds once), so a wrapping backend never states its peer's behaviour: it runs the peer's own conversion on
a few decisive inputs per format, once per process, and classifies every result by comparing it with
fp8ref's exact oracle (:mod:`fp8ref.cast.oracle`, Python integers and ``Fraction``; no Numba). The oracle
is classified by the same functions, so the reference's entry of each property is measured too, and a
*deviation* is a property whose measured value differs from the reference's.

Properties, per format (:class:`FormatBehaviour`):

1. ``float64``: every finite float64 neighbour of a rounding midpoint (the midpoints of adjacent values
   from 0 to ``max``) whose single rounding differs from its rounding through float32 (float32 rounds it
   onto the midpoint, which then ties to even). ``"once"``: every such input gave the single rounding;
   ``"via_float32"``: every one gave the rounding of ``float32(x)``; otherwise ``"mixed"``.
2. ``nan_codes``: the codes of NaN inputs (quiet, with payload, signalling; float16, bfloat16, float32,
   float64) of each sign, ``(positive, negative)``; ``None`` when one sign gives several codes.
3. ``overflow`` / ``infinity``: the conversion without saturation (``saturate=False``) of finite values
   beyond the rounding boundary above ``max`` (``2*max`` and the float32 value just above the boundary,
   both signs) and of +-Inf: ``"nan"``, ``"inf"``, ``"max"`` (the peer saturates), ``"other"`` or
   ``"mixed"``.
4. ``decode``: every code decoded to float32 and float64. ``decode_nan_bits`` are the bit patterns of the
   NaN codes, ``decode_mismatches`` the number of (code, dtype) pairs of the other codes whose bits differ
   from the reference's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import numpy as np

from fp8ref.cast.oracle import decode_exact, round_exact
from fp8ref.formats import Format
from fp8ref.formats import format as get_format

__all__ = ["FormatBehaviour", "Observation", "PeerProbe", "probe_format", "reference_behaviour",
           "probe_peer", "decisive_float64"]

#: the peer's conversion without saturation: (x array of any float dtype, format) -> uint8 codes
QuantizeFn = Callable[[np.ndarray, Format], np.ndarray]
#: the peer's decode: (uint8 codes, format, np.float32 | np.float64) -> values
DequantizeFn = Callable[[np.ndarray, Format, Any], np.ndarray]

_DECODE_DTYPES = ("float32", "float64")
_UINT = {"float32": np.uint32, "float64": np.uint64}


@dataclass(frozen=True)
class FormatBehaviour:
    """The measured behaviour of one conversion (a peer's, or the reference's) in one format."""

    format: str
    float64: str
    nan_codes: tuple[int, int] | None
    overflow: str
    infinity: str
    decode_nan_bits: tuple[tuple[str, int, int], ...]
    decode_mismatches: int
    float64_example: tuple[float, int] | None = None  # a decisive float64 input and the peer's code for it
    float64_counts: tuple[int, int, int] = (0, 0, 0)  # decisive inputs rounded once, via float32, otherwise

    def nan_bits(self, dtype: str) -> dict[int, int]:
        """NaN code -> the bit pattern it decodes to in ``dtype`` (``"float32"`` / ``"float64"``)."""
        return {c: b for d, c, b in self.decode_nan_bits if d == dtype}

    def predict(self, x: Any, saturate: bool) -> np.ndarray:
        """The codes a wrapping backend with this behaviour returns for ``quantize(x, saturate=saturate)``,
        written with the reference (``saturate=True`` is a clamp to +-max before the peer's conversion):

        1. float64 input is first rounded to float32 when ``float64 == "via_float32"``;
        2. ``fp8ref.quantize`` of that, saturating when asked or where the peer saturates by itself
           (``overflow`` / ``infinity`` ``"max"``);
        3. NaN inputs get the measured ``nan_codes``.

        ``ValueError`` for a behaviour these rules cannot express (``"mixed"`` / ``"other"``, a NaN code that
        depends on the input, non-saturating overflow to something other than the reference's result)."""
        import fp8ref

        fmt = get_format(self.format)
        ref = reference_behaviour(fmt)
        arr = np.asarray(x)
        if self.float64 not in ("once", "via_float32"):
            raise ValueError(f"{self.format}: float64 rounding {self.float64!r} has no rule")
        with np.errstate(over="ignore", invalid="ignore"):
            src = arr.astype(np.float32) if arr.dtype == np.float64 and self.float64 == "via_float32" else arr
            wide = src.astype(np.float64)
        inf = np.isinf(wide)
        sat = np.zeros(arr.shape, bool) | saturate
        for kind, where in ((self.overflow, ~inf), (self.infinity, inf)):
            reference_kind = ref.overflow if where is not inf else ref.infinity
            if kind == "max":
                sat = sat | where
            elif kind != reference_kind:
                raise ValueError(f"{self.format}: non-saturating overflow to {kind!r} has no rule")
        codes = np.where(sat, fp8ref.quantize(src, fmt, saturate=True),
                         fp8ref.quantize(src, fmt, saturate=False))
        nan = np.isnan(wide)
        if nan.any():
            if self.nan_codes is None:
                raise ValueError(f"{self.format}: the NaN code depends on the input")
            codes = np.where(nan, np.where(np.signbit(wide), self.nan_codes[1], self.nan_codes[0]), codes)
        return codes.astype(np.uint8)

    def predict_dequantize(self, codes: Any, dtype: str) -> np.ndarray:
        """What the peer's decode returns for ``codes`` as unsigned bit patterns of ``dtype``: the reference's
        values, and the measured NaN patterns. ``ValueError`` if non-NaN codes decode differently."""
        import fp8ref

        if self.decode_mismatches:
            raise ValueError(f"{self.format}: {self.decode_mismatches} non-NaN decodes differ; no rule")
        c = np.asarray(codes, np.uint8)
        bits = fp8ref.dequantize(c, self.format, dtype=dtype).view(_UINT[dtype])
        table = self.nan_bits(dtype)
        for code, pattern in table.items():
            bits = np.where(c == code, _UINT[dtype](pattern), bits)
        return bits


@dataclass(frozen=True)
class Observation:
    """A further measured property (e.g. how a scaled matmul applies its scales): the peer's value, the
    reference's, and the sentence that describes the difference (``None`` when they agree)."""

    name: str
    measured: str
    reference: str
    deviation: str | None = None


@dataclass(frozen=True)
class PeerProbe:
    """Everything measured about one peer (``library``: name, version, device) in one process."""

    library: str
    formats: tuple[FormatBehaviour, ...]
    reference: tuple[FormatBehaviour, ...]
    observations: tuple[Observation, ...] = ()
    error: str | None = None  # the probe itself failed (the peer raised): what it raised

    def behaviour(self, fmt: Any) -> FormatBehaviour:
        """The peer's measured behaviour in ``fmt`` (a name or a Format)."""
        return _by_name(self.formats, fmt)

    def reference_of(self, fmt: Any) -> FormatBehaviour:
        """The reference's behaviour in ``fmt``, measured by the same functions."""
        return _by_name(self.reference, fmt)

    def deviations(self) -> tuple[str, ...]:
        """One sentence per measured property in which the peer differs from the reference."""
        if self.error is not None:
            return (f"{self.library}: its behaviour could not be measured ({self.error})",)
        out: list[str] = []
        lib = self.library
        for field_name, describe in _DESCRIBE.items():
            for names, peer, ref in _groups(self.formats, self.reference, field_name):
                if peer != ref:
                    out.append(describe(names, peer, ref, lib, self))
        out += [o.deviation for o in self.observations if o.deviation is not None]
        return tuple(out)

    def summary(self) -> tuple[str, ...]:
        """One line per measured property and group of formats that read the same: the value, and the
        reference's where it differs."""
        if self.error is not None:
            return (f"not measured: {self.error}",)
        lines = []
        for field_name, label in _LABELS.items():
            for names, peer, ref in _groups(self.formats, self.reference, field_name):
                shown = _show(field_name, peer)
                if peer != ref:
                    shown += f" (reference: {_show(field_name, ref)})"
                lines.append(f"{label} [{', '.join(names)}]: {shown}")
        lines += [f"{o.name}: {o.measured}" + ("" if o.deviation is None else f" (reference: {o.reference})")
                  for o in self.observations]
        return tuple(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: the library, per-format peer and reference values, observations, deviations,
        and the summary lines."""
        return {
            "library": self.library,
            "error": self.error,
            "formats": {b.format: _behaviour_dict(b) for b in self.formats},
            "reference": {b.format: _behaviour_dict(b) for b in self.reference},
            "observations": [asdict(o) for o in self.observations],
            "deviations": list(self.deviations()),
            "summary": list(self.summary()),
        }


def _by_name(items: tuple[FormatBehaviour, ...], fmt: Any) -> FormatBehaviour:
    name = get_format(fmt).name
    for b in items:
        if b.format == name:
            return b
    raise KeyError(f"{name} was not probed (probed: {[b.format for b in items]})")


def _behaviour_dict(b: FormatBehaviour) -> dict[str, Any]:
    d = asdict(b)
    d["nan_codes"] = None if b.nan_codes is None else [f"0x{c:02x}" for c in b.nan_codes]
    d["decode_nan_bits"] = {dt: {f"0x{c:02x}": f"0x{v:0{2 * np.dtype(dt).itemsize}x}"
                                 for c, v in b.nan_bits(dt).items()} for dt in _DECODE_DTYPES}
    d["float64_example"] = None if b.float64_example is None else [
        repr(b.float64_example[0]), f"0x{b.float64_example[1]:02x}"]
    d["float64_counts"] = dict(zip(("once", "via_float32", "other"), b.float64_counts, strict=True))
    return d


# ---- comparing and describing -----------------------------------------------------------------------
def _value(b: FormatBehaviour, field_name: str) -> Any:
    if field_name == "decode_nan_bits":
        return b.decode_nan_bits
    return getattr(b, field_name)


def _groups(peer: tuple[FormatBehaviour, ...], ref: tuple[FormatBehaviour, ...],
            field_name: str) -> list[tuple[list[str], Any, Any]]:
    """Formats grouped by how one property reads (peer, reference, whether they agree), in probe order; each
    group with the values of its first format."""
    groups: dict[tuple[str, str, bool], tuple[list[str], Any, Any]] = {}
    for p in peer:
        pv, rv = _value(p, field_name), _value(_by_name(ref, p.format), field_name)
        key = (_show(field_name, pv), _show(field_name, rv), pv == rv)
        groups.setdefault(key, ([], pv, rv))[0].append(p.format)
    return list(groups.values())


def _codes(pair: tuple[int, int] | None) -> str:
    return "depends on the NaN input" if pair is None else f"0x{pair[0]:02x} / 0x{pair[1]:02x}"


def _bits(bits: tuple[tuple[str, int, int], ...]) -> str:
    per = []
    for dt in _DECODE_DTYPES:
        pats = sorted({v for d, _, v in bits if d == dt})
        width = 2 * np.dtype(dt).itemsize
        per.append(f"{dt} " + ", ".join(f"0x{v:0{width}x}" for v in pats))
    return "; ".join(per)


_OVERFLOW_WORDS = {"nan": "NaN", "inf": "+-Inf", "max": "+-max (saturates)", "other": "other codes",
                   "mixed": "different results for different inputs"}
_FLOAT64_WORDS = {"once": "rounded once", "via_float32": "rounded to float32 first, then to FP8 (double "
                  "rounding)", "mixed": "neither rounded once nor through float32 throughout"}


def _show(field_name: str, v: Any) -> str:
    if field_name == "float64":
        return _FLOAT64_WORDS.get(v, v)
    if field_name == "nan_codes":
        return _codes(v)
    if field_name in ("overflow", "infinity"):
        return _OVERFLOW_WORDS.get(v, v)
    if field_name == "decode_nan_bits":
        return _bits(v)
    return str(v)


def _describe_float64(names: list[str], peer: str, ref: str, lib: str, probe: PeerProbe) -> str:
    s = (f"{lib}: float64 input to {', '.join(names)} is {_show('float64', peer)} where the reference "
         "rounds once")
    b = probe.behaviour(names[0])
    if b.float64_example is not None:
        x, code = b.float64_example
        ref_code = round_exact(x, get_format(names[0]), saturate=False)
        s += f" (e.g. {names[0]}: {x!r} -> 0x{code:02x}, reference 0x{ref_code:02x})"
    return s


def _describe_nan(names: list[str], peer: Any, ref: Any, lib: str, probe: PeerProbe) -> str:
    return f"{lib}: NaN input to {', '.join(names)} is encoded {_codes(peer)} (reference: {_codes(ref)})"


def _describe_overflow(what: str) -> Callable[..., str]:
    def describe(names: list[str], peer: str, ref: str, lib: str, probe: PeerProbe) -> str:
        return (f"{lib}: with saturate=False, {what} in {', '.join(names)} gives {_OVERFLOW_WORDS[peer]} "
                f"where the reference gives {_OVERFLOW_WORDS[ref]}")
    return describe


def _describe_decode(names: list[str], peer: Any, ref: Any, lib: str, probe: PeerProbe) -> str:
    return (f"{lib}: NaN codes of {', '.join(names)} decode to {_bits(peer)} (reference: the quiet NaN with "
            f"the code's sign, {_bits(ref)})")


def _describe_mismatch(names: list[str], peer: int, ref: int, lib: str, probe: PeerProbe) -> str:
    return (f"{lib}: {peer} decoded non-NaN (code, dtype) pairs of {', '.join(names)} differ from the "
            "reference")


_DESCRIBE: dict[str, Callable[..., str]] = {
    "float64": _describe_float64,
    "overflow": _describe_overflow("finite overflow"),
    "infinity": _describe_overflow("+-Inf input"),
    "nan_codes": _describe_nan,
    "decode_nan_bits": _describe_decode,
    "decode_mismatches": _describe_mismatch,
}
_LABELS = {
    "float64": "float64 input",
    "overflow": "finite overflow (saturate=False)",
    "infinity": "+-Inf input (saturate=False)",
    "nan_codes": "NaN input -> codes +NaN / -NaN",
    "decode_nan_bits": "NaN codes decode to",
    "decode_mismatches": "other codes decoding differently",
}


# ---- the decisive inputs and the classification ---------------------------------------------------------
@cache
def decisive_float64(fmt: Format) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, once, via_float32)``: float64 inputs whose single rounding to ``fmt`` (``once``, codes) differs
    from their rounding through float32 (``via_float32``): the float64 neighbours of the midpoints of
    adjacent values of ``fmt`` from 0 to ``max``, both signs (exact oracle, round to nearest even)."""
    v = fmt.values()
    v = np.unique(v[np.isfinite(v) & (v >= 0)])
    mids = (v[:-1] + v[1:]) / 2  # exact in float64
    x = np.concatenate([np.nextafter(mids, 0.0), np.nextafter(mids, np.inf)])
    x = np.concatenate([x, -x])
    once = np.array([round_exact(float(t), fmt, saturate=False) for t in x], np.int64)
    via = np.array([round_exact(float(np.float32(t)), fmt, saturate=False) for t in x], np.int64)
    keep = once != via
    return x[keep], once[keep], via[keep]


def _nan_inputs() -> list[np.ndarray]:
    """NaNs of each input dtype (quiet, with a payload, signalling), positive then negative, one array per
    dtype: the first half of each array is positive."""
    import ml_dtypes

    pos = {
        np.float16: [0x7E00, 0x7E01, 0x7C01],
        ml_dtypes.bfloat16: [0x7FC0, 0x7FC1, 0x7F81],
        np.float32: [0x7FC00000, 0x7FC00001, 0x7F800001],
        np.float64: [0x7FF8000000000000, 0x7FF8000000000001, 0x7FF0000000000001],
    }
    out = []
    for dt, bits in pos.items():
        size = np.dtype(dt).itemsize
        u = np.array(bits, f"u{size}")
        sign = np.array(1 << (8 * size - 1), f"u{size}")
        out.append(np.concatenate([u, u | sign]).view(dt))
    return out


def _overflow_inputs(fmt: Format) -> np.ndarray:
    """float32 finite values beyond the rounding boundary above ``max``, both signs."""
    top = fmt.max + 2.0 ** (math.floor(math.log2(fmt.max)) - fmt.mbits - 1)  # the midpoint above max
    x = np.array([np.nextafter(np.float32(top), np.float32(np.inf)), 2 * fmt.max], np.float32)
    return np.concatenate([x, -x])


def _overflow_kind(fmt: Format, codes: np.ndarray, x: np.ndarray) -> str:
    kinds = set()
    for c, t in zip(codes.tolist(), x.tolist(), strict=True):
        sign = fmt.sign_mask if t < 0 else 0
        v = fmt.decode(int(c))
        if math.isnan(v):
            kinds.add("nan")
        elif math.isinf(v) and (v < 0) == (t < 0):
            kinds.add("inf")
        elif int(c) == fmt.max_code | sign:
            kinds.add("max")
        else:
            kinds.add("other")
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _decode_bits(values: np.ndarray, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=dtype).view(_UINT[dtype])


def probe_format(fmt: Format, quantize: QuantizeFn, dequantize: DequantizeFn) -> FormatBehaviour:
    """Measure one conversion (``quantize`` without saturation, ``dequantize``) in ``fmt``."""
    # 1. float64 input
    x, once, via = decisive_float64(fmt)
    got = np.asarray(quantize(x, fmt)).astype(np.int64)
    n_once, n_via = int((got == once).sum()), int((got == via).sum())
    n_other = x.size - n_once - n_via
    kind = "once" if n_once == x.size else "via_float32" if n_via == x.size else "mixed"
    example = None
    off = np.flatnonzero(got != once)
    if off.size:  # the largest such input, negative first (for E4M3: -431.99999999999994, ml_dtypes #401)
        i = int(off[np.lexsort((x[off] > 0, -np.abs(x[off])))[0]])
        example = (float(x[i]), int(got[i]))
    # 2. NaN input
    pos, neg = set(), set()
    for arr in _nan_inputs():
        codes = np.asarray(quantize(arr, fmt)).tolist()
        half = len(codes) // 2
        pos.update(codes[:half])
        neg.update(codes[half:])
    nan_codes = (pos.pop(), neg.pop()) if len(pos) == len(neg) == 1 else None
    # 3. overflow without saturation
    xo = _overflow_inputs(fmt)
    overflow = _overflow_kind(fmt, np.asarray(quantize(xo, fmt)), xo)
    xi = np.array([np.inf, -np.inf], np.float32)
    infinity = _overflow_kind(fmt, np.asarray(quantize(xi, fmt)), xi)
    # 4. decode
    codes = np.arange(fmt.n_codes, dtype=np.uint8)
    ref_vals = [decode_exact(int(c), fmt) for c in codes]
    nan_bits: list[tuple[str, int, int]] = []
    mismatches = 0
    for dt in _DECODE_DTYPES:
        got_bits = _decode_bits(dequantize(codes, fmt, np.dtype(dt)), dt)
        ref_bits = _decode_bits(np.array(ref_vals, dt), dt)
        for c, v, gb, rb in zip(codes.tolist(), ref_vals, got_bits.tolist(), ref_bits.tolist(), strict=True):
            if math.isnan(v):
                nan_bits.append((dt, c, int(gb)))
            elif gb != rb:
                mismatches += 1
    return FormatBehaviour(fmt.name, kind, nan_codes, overflow, infinity, tuple(nan_bits), mismatches,
                           example, (n_once, n_via, n_other))


def _oracle_quantize(x: np.ndarray, fmt: Format) -> np.ndarray:
    return np.array([round_exact(float(t), fmt, saturate=False) for t in np.asarray(x).reshape(-1)],
                    np.uint8)


def _oracle_dequantize(codes: np.ndarray, fmt: Format, dtype: Any) -> np.ndarray:
    return np.array([decode_exact(int(c), fmt) for c in codes], dtype)


@cache
def reference_behaviour(fmt: Format) -> FormatBehaviour:
    """The reference measured by :func:`probe_format` (the exact oracle in place of the peer)."""
    return probe_format(fmt, _oracle_quantize, _oracle_dequantize)


def probe_peer(library: str, formats: tuple[Format, ...], quantize: QuantizeFn, dequantize: DequantizeFn,
               observations: Callable[[], tuple[Observation, ...]] | None = None) -> PeerProbe:
    """Measure a peer in every format of ``formats`` (and run ``observations`` for further properties). An
    exception raised by the peer is recorded in ``error`` instead of propagating: a backend whose peer
    cannot even be probed still lists, and says why its behaviour is unknown."""
    ref = tuple(reference_behaviour(f) for f in formats)
    try:
        got = tuple(probe_format(f, quantize, dequantize) for f in formats)
        obs = observations() if observations is not None else ()
    except Exception as exc:  # noqa: BLE001 - a hostile or broken peer: report it, do not crash the listing
        return PeerProbe(library, (), ref, (), f"{type(exc).__name__}: {exc}")
    return PeerProbe(library, got, ref, obs)

