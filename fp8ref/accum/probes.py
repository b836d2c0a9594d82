"""Diagnostic dot-product vectors and black-box inference of block-FMA parameters.

``PROBES`` holds the published diagnostic vectors (docs/accumulation.md §7) as data: Fasi, Higham, Mikaitis
& Pranesh (PeerJ CS 2021, ``tc_test_numerics-*.cu``), Khattak & Mikaitis (HPEC 2025, ``nvidia-tests.cu``),
their FP8 adaptations for K=32 MMAs, the E_floor discriminators and the promotion-interval probe, each with
the outputs the source (or the model tables) expect on named GPUs.

:func:`infer` determines, from any black-box ``dot_fn(a, b[, c])`` returning one float, the parameters of
the block-FMA model that reproduces it: ``min(F, out bits)``, NFMA, F, output fraction bits, final rounding,
the ``e_floor`` values consistent with it, how ``c`` enters (aligned / separate), and the promotion interval.
Each stage uses vectors designed so that its answer does not depend on parameters not yet known; the last
stage compares the black box with the inferred model on random vectors.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from fp8ref.accum.models import BlockFMA, Promoted
from fp8ref.formats import BF16, E4M3, FP16, FP32, Format, floor_log2, pow2
from fp8ref.formats import format as _resolve_format

# --------------------------------------------------------------------------------------------------
# the published probes as data


@dataclass(frozen=True)
class Probe:
    """One diagnostic dot product ``d = c + sum a_i*b_i`` (entries not listed are 0)."""

    id: str
    source: str
    in_format: str
    out_format: str
    a: tuple[float, ...]
    b: tuple[float, ...]
    c: float
    decides: str
    expected: dict[str, float] = field(default_factory=dict)  # model name (tensor_core name) -> output
    k: int = 0  # vector length (0: len(a))

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        k = self.k or len(self.a)
        a = np.zeros(k)
        b = np.zeros(k)
        a[:len(self.a)] = self.a
        b[:len(self.b)] = self.b
        return a, b


def _p(e: int) -> float:
    return math.ldexp(1.0, e)


_FHMP = "Fasi et al., PeerJ CS 7:e330 (tc_test_numerics-*.cu)"
_HPEC = "Khattak & Mikaitis, HPEC 2025 (nvidia-tests.cu)"
_FP8 = "FP8 adaptation of the HPEC/FHMP probes for K=32 (SageAttention2 for P1)"

V, A, H = "V100-fp16-fp32", "A100-fp16-fp32", "H100-fp16-fp32"
V16, A16, H16 = "V100-fp16-fp16", "A100-fp16-fp16", "H100-fp16-fp16"
H8, ADA8, B8 = "H100-E4M3-fp32", "Ada-E4M3-fp32", "B200-E4M3-fp32"


def _all3(x: float) -> dict[str, float]:
    return {V: x, A: x, H: x}


def _build_probes() -> tuple[Probe, ...]:
    p: list[Probe] = []
    one = 1.0
    # ---- Fasi et al. (fp16 inputs)
    p.append(Probe("A1", _FHMP, "fp16", "fp16", (_p(-24),), (4.0,), 0.0, "subnormal inputs",
                   {V16: _p(-22), A16: _p(-22), H16: _p(-22)}))
    p.append(Probe("A2", _FHMP, "fp16", "fp32", (_p(-24),), (4.0,), 0.0, "subnormal inputs", _all3(_p(-22))))
    p.append(Probe("A3", _FHMP, "fp16", "fp32", (0.0,), (0.0,), _p(-149), "fp32 subnormal c",
                   _all3(_p(-149))))
    p.append(Probe("A5", _FHMP, "fp16", "fp16", (_p(-14),), (one,), -_p(-15), "subnormal output",
                   {V16: _p(-15), A16: _p(-15), H16: _p(-15)}))
    x = 1 - _p(-11)
    p.append(Probe("B1", _FHMP, "fp16", "fp32", (x,), (x,), 0.0, "exact products",
                   _all3(1 - _p(-10) + _p(-22))))
    p.append(Probe("B3", _FHMP, "fp16", "fp32", (0.5,) * 4, (_p(-24),) * 4, one, "F >= 25",
                   {V: one, A: one, H: one + _p(-23)}))
    p.append(Probe("B4", _FHMP, "fp16", "fp32", (one, 0.5, 0.5, 0.5), (one, _p(-24), _p(-24), _p(-24)),
                   _p(-24), "alignment to the largest exponent", {V: one, A: one, H: one + _p(-23)}))
    for s, nm in ((1.0, "C1"), (-1.0, "C2")):
        p.append(Probe(nm, _FHMP, "fp16", "fp32", (one,) * 4, (2 * s, s * (_p(-23) + _p(-24)), 0.0, 0.0), 0.0,
                       "final rounding sign behaviour", _all3(2 * s)))
    p.append(Probe("C3", _FHMP, "fp16", "fp16", (_p(-24), _p(-24)), (0.5, 0.25), 0.0, "RNE in fp16 output",
                   {V16: _p(-24), A16: _p(-24), H16: _p(-24)}))
    p.append(Probe("D1", _FHMP, "fp16", "fp32", (one,), (one,), -(1 - _p(-24)), "extra alignment bit",
                   {V: _p(-23), A: _p(-24), H: _p(-24)}))
    p.append(Probe("D2", _FHMP, "fp16", "fp32", (one,) * 4, (_p(-24),) * 4, 1 - _p(-24),
                   "normalisation in addition", _all3(1 + _p(-23))))
    p.append(Probe("D3", _FHMP, "fp16", "fp32", (one, one), (one, -_p(-24)), -1 + _p(-24),
                   "normalisation in subtraction", {V: _p(-23), A: 0.0, H: 0.0}))
    p.append(Probe("D4a", _FHMP, "fp16", "fp32", (one,) * 4, (_p(-23), one, one, one), 1 + _p(-22) + _p(-23),
                   "carry-out bits", _all3(4 + _p(-21))))
    p.append(Probe("D4b", _FHMP, "fp16", "fp32", (one,) * 4, (1.0, 1.5, 1.75, 1.875), 1.875, "carry-out bits",
                   _all3(8.0)))
    b5 = (_p(-24), _p(-24), _p(-24), _p(-23) + _p(-24))
    p.append(Probe("D5a", _FHMP, "fp16", "fp32", (0.5,) * 4, b5, 1 - _p(-24), "monotonicity (c = 1-2^-24)",
                   {V: one, A: one + _p(-23), H: one + _p(-23)}))
    p.append(Probe("D5b", _FHMP, "fp16", "fp32", (0.5,) * 4, b5, one, "monotonicity (c = 1)",
                   {V: one, A: one, H: one + _p(-23)}))
    # ---- Khattak & Mikaitis HPEC'25 (fp16 inputs)
    p.append(Probe("K1a", _HPEC, "fp16", "fp32", (_p(-24), _p(-24)), (one, one), one, "neab >= 1",
                   {V: one, A: one + _p(-23), H: one + _p(-23)}))
    p.append(Probe("K1b", _HPEC, "fp16", "fp32", (_p(-24),) * 3, (one, 0.5, 0.5), one, "neab >= 2",
                   {V: one, A: one, H: one + _p(-23)}))
    for k in (2, 4, 5, 8, 9, 16):
        av = [0.0] * k
        bv = [0.0] * k
        av[0] = bv[0] = one
        av[k - 1] = _p(-23)
        bv[k - 1] = one
        exp = {V: 2 + _p(-22) if k <= 4 else 2.0, A: 2 + _p(-22) if k <= 8 else 2.0, H: 2 + _p(-22)}
        p.append(Probe(f"K2-{k}", _HPEC, "fp16", "fp32", tuple(av), tuple(bv), 1 + _p(-23),
                       "NFMA (2+2^-22 while a_0 and a_{k-1} share a block)", exp))
    y = _p(-21) + _p(-24)
    p.append(Probe("K4", _HPEC, "fp16", "fp32", (y, y), (one, one), 1 - _p(-21), "late normalisation",
                   _all3(1 + _p(-21) + _p(-23))))
    for s, nm in ((1.0, "K5+"), (-1.0, "K5-")):
        p.append(Probe(nm, _HPEC, "fp16", "fp32", (s,) * 3, (one,) * 3, s * (1 + _p(-23) + _p(-22)),
                       "final rounding, fp32 output (RZ: +-4)", _all3(4 * s)))
    p.append(Probe("K6", _HPEC, "fp16", "fp16", (one,) * 3, (one,) * 3, 1 + _p(-10) + _p(-9),
                   "final rounding, fp16 output (RNE: 4+2^-8)", {V16: 4 + _p(-8), A16: 4 + _p(-8),
                                                                 H16: 4 + _p(-8)}))
    for s, nm in ((1.0, "K7+"), (-1.0, "K7-")):
        p.append(Probe(nm, _HPEC, "fp16", "fp32", (s * _p(-24),) * 2, (1.5, 1.5), s, "alignment rounding "
                       "(RZ: +-1), V100 form b = 2^-neab + 2^-neab-1 with neab = 0", {V: s}))
    # ---- FP8 adaptation (K = 32, e4m3)
    for kk in (12, 13, 14, 23):
        c = 1 + _p(-kk)
        p.append(Probe(f"P1-{kk}", _FP8, "E4M3", "fp32", (), (), c, "output fraction bits (D == C iff >= k)",
                       {H8: c if kk <= 13 else 1.0, ADA8: c if kk <= 13 else 1.0, B8: c}, k=32))
    p.append(Probe("P2-1", _FP8, "E4M3", "fp32", (_p(-6),), (_p(-7),), 1.0, "F >= 13",
                   {H8: 1 + _p(-13), ADA8: 1 + _p(-13), B8: 1 + _p(-13)}, k=32))
    p.append(Probe("P2-2", _FP8, "E4M3", "fp32", (_p(-7),) * 2, (_p(-7),) * 2, 1.0, "F >= 14",
                   {H8: 1.0, ADA8: 1.0, B8: 1 + _p(-13)}, k=32))
    p.append(Probe("P2-4", _FP8, "E4M3", "fp32", (_p(-7),) * 4, (_p(-8),) * 4, 1.0, "F >= 15",
                   {H8: 1.0, ADA8: 1.0, B8: 1 + _p(-13)}, k=32))
    for kk in (2, 16, 17, 32):
        av = [0.0] * 32
        bv = [0.0] * 32
        av[0] = bv[0] = 1.0
        av[kk - 1] = _p(-6)
        bv[kk - 1] = _p(-7)
        r = 2 + _p(-12)
        p.append(Probe(f"P3-{kk}", _FP8, "E4M3", "fp32", tuple(av), tuple(bv), 1 + _p(-13), "NFMA",
                       {H8: r, ADA8: r if kk <= 16 else 2.0, B8: r}, k=32))
    for s, nm in ((1.0, "P4+"), (-1.0, "P4-")):
        p.append(Probe(nm, _FP8, "E4M3", "fp32", (s,) * 3, (1.0,) * 3, s * (1 + _p(-12) + _p(-13)),
                       "final rounding (RZ +-4, RNE +-(4+2^-11))",
                       {H8: 4 * s, ADA8: 4 * s, B8: s * (4 + 3 * _p(-13))}, k=32))
    p.append(Probe("P5", _FP8, "E4M3", "fp32", (1.0, _p(-7)), (1.0, -_p(-7)), 0.0,
                   "per-term truncation toward zero (1) vs floor (1-2^-13)",
                   {H8: 1.0, ADA8: 1.0, B8: 1 - _p(-14)}, k=32))
    p.append(Probe("P6", _FP8, "E4M3", "fp32", (_p(-9),), (1.0,), 0.0, "subnormal inputs",
                   {H8: _p(-9), ADA8: _p(-9), B8: _p(-9)}, k=32))
    p.append(Probe("P7", _FP8, "E4M3", "fp32", (448.0, 448.0, _p(-7)), (448.0, -448.0, _p(-7)), 0.0,
                   "massive cancellation", {H8: 0.0, ADA8: 0.0, B8: 0.0}, k=32))
    # ---- E_floor discriminators
    p.append(Probe("Z1", "tensor-core notes §3.5", "fp16", "fp16", (_p(-17), _p(-24)), (_p(-8), _p(-23)), 0.0,
                   "E_floor, fp16 output (MTC: 0, no floor: 2^-24)", {H16: 0.0}))
    p.append(Probe("Z2", "tensor-core notes §3.5", "bf16", "fp32", (_p(-133),) * 16, (_p(-20),) * 16, 0.0,
                   "E_floor, fp32 output (MTC: 2^-149, floor -126: 0)", {"H100-bf16-fp32": _p(-149)}))
    # ---- promotion interval (K = 256, e4m3): (D - 1) * 2^14 = K - N_promo
    av = [_p(-7)] * 256
    av[0] = 1.0
    p.append(Probe("PROMO", "tensor-core notes §2.1", "E4M3", "fp32", tuple(av), tuple(av), 0.0,
                   "promotion interval: (D-1)*2^14 = K - N",
                   {"h100-fp8-fastaccum": 1.0, "h100-fp8": 1 + 128 * _p(-14)}))
    return tuple(p)


PROBES: tuple[Probe, ...] = _build_probes()


def probe(name: str) -> Probe:
    for pr in PROBES:
        if pr.id == name:
            return pr
    raise ValueError(f"unknown probe {name!r}; valid: {', '.join(p.id for p in PROBES)}")


# --------------------------------------------------------------------------------------------------
# inference
DotFn = Callable[..., float]


@dataclass(frozen=True)
class Inference:
    """What :func:`infer` found. ``None`` in ``nfma`` / ``frac_bits`` means "at least the ``*_min`` value"
    (no boundary seen within the tested range)."""

    in_format: Format
    out_format: Format
    m: int  # min(F, out_frac_bits)
    nfma: int | None
    nfma_min: int
    frac_bits: int | None
    frac_bits_min: int
    out_frac_bits: int
    rounding: str | None
    e_floor: tuple[int | None, ...]  # candidate values consistent with every probe (None = no clamp)
    c_mode: str | None
    promotion: int | None  # promotion interval in K-elements, None = fast accumulation (none seen)
    promotion_tested_k: int
    validated: int  # random vectors on which the inferred model agreed with the black box
    mismatched: int
    notes: tuple[str, ...] = ()

    def block_fma(self) -> BlockFMA:
        """The inferred block model (unknown bounds replaced by the smallest consistent value)."""
        nf = self.nfma if self.nfma is not None else self.nfma_min
        fb = self.frac_bits if self.frac_bits is not None else self.frac_bits_min
        floor = _representative_floor(self.e_floor)
        return BlockFMA(nf, fb, self.out_frac_bits, self.rounding or "rne", floor, in_format=self.in_format,
                        out_format=self.out_format, c_mode=self.c_mode or "aligned", name="inferred")

    def model(self) -> BlockFMA | Promoted:
        m = self.block_fma()
        return m if self.promotion is None else Promoted(m, self.promotion, name="inferred")

    def summary(self) -> str:
        nf = str(self.nfma) if self.nfma is not None else f">= {self.nfma_min} (no block boundary seen)"
        fb = str(self.frac_bits) if self.frac_bits is not None else f">= {self.frac_bits_min}"
        lines = [
            f"input format        {self.in_format.name}",
            f"output format       {self.out_format.name}",
            f"NFMA                {nf}",
            f"F (frac_bits)       {fb}",
            f"out_frac_bits       {self.out_frac_bits}",
            f"final rounding      {self.rounding or 'not observable'}",
            f"e_floor             {_floor_text(self.e_floor)}",
            f"c_mode              {self.c_mode or 'not tested (dot_fn takes no c)'}",
            "promotion           " + (f"every {self.promotion} K-elements" if self.promotion is not None
                                      else f"none up to K={self.promotion_tested_k} (fast accumulation)"),
            f"validation          {self.validated - self.mismatched}/{self.validated} random vectors agree",
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _floor_text(c: tuple[int | None, ...]) -> str:
    if not c:
        return "no candidate consistent"
    ints = sorted(x for x in c if x is not None and x != -1024)
    low = None in c or -1024 in c
    if ints and ints == list(range(ints[0], ints[-1] + 1)):
        if ints[0] == _FLOOR_LO and low:
            return f"not observable at or below {ints[-1]} (any value <= {ints[-1]}, or none)"
        rng_txt = f"{ints[0]}..{ints[-1]}" if len(ints) > 1 else str(ints[0])
        return rng_txt + (" (or none)" if low else "")
    return ", ".join("none" if x is None else str(x) for x in c)


def _representative_floor(c: tuple[int | None, ...]) -> int | None:
    if not c or None in c:
        return None
    return max(x for x in c if x is not None)


_FLOOR_LO = -160
_FLOOR_HI = 0


class _Box:
    """Wraps the black box; builds vectors of exact input-format products."""

    def __init__(self, dot_fn: DotFn, fa: Format, fb: Format, out: Format, accepts_c: bool):
        self.fn = dot_fn
        self.fa = fa
        self.fb = fb
        self.out = out
        self.accepts_c = accepts_c
        self.calls = 0

    def dot(self, a: np.ndarray, b: np.ndarray, c: float = 0.0) -> float:
        self.calls += 1
        if self.accepts_c:
            return float(self.fn(a, b, c))
        if c != 0.0:
            raise ValueError("internal: c used with a dot_fn that takes no c")
        return float(self.fn(a, b))

    def pair(self, value: Fraction) -> tuple[float, float]:
        """Inputs (a, b) with ``a*b == value`` exactly, both normal where possible."""
        if value == 0:
            return 0.0, 0.0
        neg = value < 0
        v = -value if neg else value
        for sig_a, sig_b in ((v, Fraction(1)), *_splits(v)):
            ea = floor_log2(sig_a)
            eb = floor_log2(sig_b)
            ma = sig_a / pow2(ea)
            mb = sig_b / pow2(eb)
            tot = ea + eb
            # prefer balanced exponents with both operands normal
            order = sorted(range(self.fa.emin - self.fa.mbits, self.fa.emax + 1),
                           key=lambda x: (not (self.fa.emin <= x and self.fb.emin <= tot - x <= self.fb.emax),
                                          abs(x - (tot - x))))
            for xa in order:
                a = float(ma * pow2(xa))
                b = float(mb * pow2(tot - xa))
                if self.fa.is_representable(a) and self.fb.is_representable(b):
                    return (-a if neg else a), b
        raise ValueError(f"{value} is not a product of a {self.fa.name} and a {self.fb.name} value")

    def vec(self, k: int, terms: dict[int, Fraction]) -> tuple[np.ndarray, np.ndarray]:
        a = np.zeros(k)
        b = np.zeros(k)
        for pos, v in terms.items():
            a[pos], b[pos] = self.pair(v)
        return a, b

    def run(self, k: int, terms: dict[int, Fraction], c: float = 0.0) -> Fraction:
        a, b = self.vec(k, terms)
        r = self.dot(a, b, c)
        if not math.isfinite(r):
            raise ValueError(f"dot_fn returned {r} on a finite probe")
        return Fraction(r)


def _splits(v: Fraction) -> list[tuple[Fraction, Fraction]]:
    out = []
    for s in (Fraction(3, 2), Fraction(7, 4), Fraction(5, 4)):
        q = v / s
        if q > 0:
            out.append((s, q))
    return out


def infer(dot_fn: DotFn, in_format: Format | str = E4M3, out_format: Format | str = FP32, *,
          in_format_b: Format | str | None = None, accepts_c: bool = True, max_k: int = 256,
          promotion_k: int = 1024, validate: int = 200, seed: int = 0) -> Inference:
    """Infer the block-FMA parameters of the black box ``dot_fn``.

    ``dot_fn(a, b, c)`` (or ``dot_fn(a, b)`` with ``accepts_c=False``) takes 1-D float64 arrays of
    ``in_format`` (``in_format_b``) values and returns the ``out_format`` result as a float. Vectors are at
    most ``max_k`` long for the block parameters and ``promotion_k`` long for the promotion probe.
    Returns an :class:`Inference`; ``Inference.model()`` builds the model.
    """
    fa = in_format if isinstance(in_format, Format) else _resolve_format(in_format)
    fb = fa if in_format_b is None else (in_format_b if isinstance(in_format_b, Format)
                                         else _resolve_format(in_format_b))
    out = out_format if isinstance(out_format, Format) else _resolve_format(out_format)
    if out not in (FP32, FP16, BF16):
        raise ValueError(f"out_format must be FP32, FP16 or BF16 (the probes find the blocks of a block-FMA "
                         f"unit; the fp64 FMA chain of the f64 instructions has none), got {out.name}")
    if not callable(dot_fn):
        raise TypeError("dot_fn must be callable")
    if max_k < 8:
        raise ValueError(f"max_k must be >= 8, got {max_k}")
    box = _Box(dot_fn, fa, fb, out, accepts_c)
    notes: list[str] = []
    B = min(fa.emax + fb.emax, out.emax - 3, 30)
    depth_lo = (fa.emin - fa.mbits) + (fb.emin - fb.mbits)  # exponent of the smallest product
    one = pow2(B)

    # 1. m = min(F, out bits): [2^B, 2^(B-k)] keeps the small term iff k <= m
    m = 0
    for k in range(1, B - depth_lo + 1):
        if box.run(8, {0: one, 1: pow2(B - k)}) == one + pow2(B - k):
            m = k
        else:
            break
    else:
        notes.append("min(F, out bits) reached the depth of the input format")
    if m < 3:
        raise ValueError(f"dot_fn keeps only {m} bits below the leading product: not a block-FMA unit")

    # 2. NFMA: [2^B, 2^B, 2^(B-m)] at 0..2 and -2^B at k-1 gives 2^B + 2^(B-m) iff k-1 shares their block
    def same(k: int) -> bool:
        r = box.run(max(k, 8), {0: one, 1: one, 2: pow2(B - m), k - 1: -one})
        return r == one + pow2(B - m)

    nfma: int | None
    if not same(4):
        r = box.run(8, {0: one, 1: pow2(B - m), 2: one, 3: -one})
        nfma = 2 if r == one + pow2(B - m) else 1
        if nfma == 1:
            notes.append("NFMA 1 (sequential) and 3 are not distinguished")
    else:
        nfma = None
        for k in range(5, max_k + 1):
            if not same(k):
                nfma = k - 1
                break
    nfma_min = nfma if nfma is not None else max_k
    cap = nfma_min  # terms available in one block

    # 3. F: [2^B, -2^B, 2^(B-f)] cancels exactly and leaves 2^(B-f) iff the alignment keeps it (F >= f)
    frac_bits: int | None = None
    f = m
    if cap >= 3 or cap == 1:
        while B - f - 1 >= depth_lo and f < 60:
            if box.run(8, {0: one, 1: -one, 2: pow2(B - f - 1)}) == pow2(B - f - 1):
                f += 1
            else:
                frac_bits = f
                break
        if frac_bits is None:
            notes.append(f"F >= {f}: no alignment loss seen down to the smallest product")
    frac_min = f
    # out bits: m if F > m; if F == m, [2^(j) copies of 2^B, 2^(B-m)] shows out bits >= m + j
    out_bits = m
    if frac_bits == m and cap >= 3:
        j = 1
        while (1 << j) + 1 <= cap and m + j <= out.mbits:
            terms = {i: one for i in range(1 << j)}
            terms[1 << j] = pow2(B - m)
            if box.run(max(8, (1 << j) + 1), terms) == (1 << j) * one + pow2(B - m):
                out_bits = m + j
                j += 1
            else:
                break

    # 4. final rounding: [2^(B+2-o-1), 2^(B+2-o-2), 3.0625*2^B, 3.0625*2^B] = 6.125*2^B + 0.75 ulp
    rounding: str | None = None
    big = Fraction(49, 16) * one
    lsb = pow2(B + 2 - out_bits)
    if out_bits >= 6 and frac_min >= out_bits and (cap >= 4 or cap == 1):
        r = box.run(8, {0: lsb / 2, 1: lsb / 4, 2: big, 3: big})
        if r == 2 * big:
            rounding = "rz"
        elif r == 2 * big + lsb:
            rounding = "rne"
        else:
            notes.append(f"final rounding: unexpected result {float(r)!r}")
    else:
        notes.append("final rounding not observable with these parameters")

    base = dict(nfma=nfma_min, frac_bits=frac_bits if frac_bits is not None else frac_min,
                out_frac_bits=out_bits, rounding=rounding or "rne", in_format=fa,
                in_format_b=None if fb == fa else fb, out_format=out)
    # 5. promotion: a0 b0 = 2^B, every other product 2^(B-F-1) (lost unless a fresh partial sum starts)
    Kp = promotion_k
    small = pow2(B - (frac_bits if frac_bits is not None else frac_min) - 1)
    promo: int | None = None
    if B - (frac_bits or frac_min) - 1 >= depth_lo:
        a1, b1 = box.pair(small)
        a0, b0 = box.pair(one)
        av = np.full(Kp, a1)
        bv = np.full(Kp, b1)
        av[0], bv[0] = a0, b0
        r = box.dot(av, bv, 0.0)
        inner = BlockFMA(**base, e_floor=None)
        if _kernel_ok(base):
            # fast accumulation in either c_mode (a separate fp32 addition per block is promotion every NFMA)
            if any(_agree(np.array([BlockFMA(**base, e_floor=None, c_mode=cm).dot(av, bv)]), np.array([r]))[0]
                   for cm in ("aligned", "separate")):
                promo = None
            else:
                for every in range(nfma_min, Kp + 1, nfma_min):
                    if _agree(np.array([Promoted(inner, every).dot(av, bv)]), np.array([r]))[0]:
                        promo = every
                        break
                else:
                    notes.append(f"promotion: no interval reproduces the probe result {r!r}")
    else:
        notes.append("promotion not testable: input format too narrow for the probe")

    # 6. c_mode (with c) and 7. e_floor, by elimination: candidate models against the black box on random
    # vectors (ordinary values with c for the c_mode, tiny values for the floor)
    rng = np.random.default_rng(seed)
    L = 64
    kk = min(max(nfma_min, 8) * 2, max_k)
    can_check = _kernel_ok(base)
    c_mode: str | None = None
    if accepts_c and can_check:
        A, Bm = _random_vectors(rng, fa, fb, L, kk, tiny=False)
        cv = _random_c(rng, out, L)
        meas = np.array([box.dot(A[i], Bm[i], float(cv[i])) for i in range(L)])
        cms = [cm for cm in ("aligned", "separate")
               if _agree(_candidate(base, None, cm, promo).dots(A, Bm, cv), meas).all()]
        c_mode = cms[0] if len(cms) == 1 else None
        if c_mode is None:
            notes.append("c_mode: " + ("no candidate consistent" if not cms else "not distinguished"))
    floors: list[int | None] = [None, -1024, *range(_FLOOR_LO, _FLOOR_HI + 1)]
    e_floor: tuple[int | None, ...] = tuple(floors)
    if can_check:
        A, Bm = _random_vectors(rng, fa, fb, L, kk, tiny=True)
        cv = np.zeros(L)
        if accepts_c:  # tiny accumulator inputs too: c can reach below every product
            e = rng.integers(out.emin - out.mbits, 0, L)
            cv = np.where(rng.random(L) < 0.5, 0.0, np.ldexp(rng.choice([-1.0, 1.0], L), e))
        # designed rows: n equal products 2^q for every reachable q (kept iff e_floor <= q + F)
        n = min(nfma_min, 16)
        rows_a, rows_b = [], []
        for q in range(max(depth_lo, out.emin - out.mbits - base["frac_bits"] - 8), 1):
            try:
                pa, pb = box.pair(pow2(q))
            except ValueError:
                continue
            ra = np.zeros(kk)
            rb = np.zeros(kk)
            ra[:n], rb[:n] = pa, pb
            rows_a.append(ra)
            rows_b.append(rb)
        if rows_a:
            A = np.vstack([A, np.array(rows_a)])
            Bm = np.vstack([Bm, np.array(rows_b)])
            cv = np.concatenate([cv, np.zeros(len(rows_a))])
        meas = np.array([box.dot(A[i], Bm[i], float(cv[i])) for i in range(len(A))])
        e_floor = tuple(fl for fl in floors
                        if _agree(_candidate(base, fl, c_mode or "aligned", promo).dots(A, Bm, cv),
                                  meas).all())

    # 8. validation on ordinary random vectors
    inf = Inference(fa, out, m, nfma, nfma_min, frac_bits, frac_min, out_bits, rounding, e_floor, c_mode,
                    promo, Kp, 0, 0, tuple(notes))
    validated = mismatched = 0
    L = max(validate, 0)
    if _kernel_ok(base) and e_floor and L:
        A2, B2 = _random_vectors(rng, fa, fb, L, min(max_k, 4 * nfma_min), tiny=False)
        c2 = _random_c(rng, out, L) if accepts_c else np.zeros(L)
        meas = np.array([box.dot(A2[i], B2[i], float(c2[i])) for i in range(L)])
        mdl = inf.model()
        got = mdl.dots(A2, B2, c2)
        validated = L
        mismatched = int((~_agree(got, meas)).sum())
    return Inference(fa, out, m, nfma, nfma_min, frac_bits, frac_min, out_bits, rounding, e_floor, c_mode,
                     promo, Kp, validated, mismatched, tuple(notes))


def _candidate(base: dict, floor: int | None, c_mode: str, promo: int | None) -> BlockFMA | Promoted:
    m = BlockFMA(**base, e_floor=floor, c_mode=c_mode)
    return m if promo is None else Promoted(m, promo)


def _kernel_ok(base: dict) -> bool:
    return (base["nfma"] + 1) * 2.0 ** (base["frac_bits"] + 2) < 2.0 ** 53 and base["frac_bits"] <= 48


def _agree(got: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return (got == meas) & (np.signbit(got) == np.signbit(meas)) | (np.isnan(got) & np.isnan(meas))


@functools.lru_cache(maxsize=16)
def _values(fmt: Format) -> np.ndarray:
    """Finite values of ``fmt`` (all of them for <= 16-bit formats, a sample otherwise)."""
    if fmt.bits <= 16:
        v = fmt.values()
        return v[np.isfinite(v)]
    rng = np.random.default_rng(1)
    m = rng.integers(0, 1 << fmt.mbits, 4096)
    e = rng.integers(fmt.emin, fmt.emax + 1, 4096)
    return np.ldexp(1.0 + m / (1 << fmt.mbits), e) * rng.choice([-1.0, 1.0], 4096)


def _random_vectors(rng, fa: Format, fb: Format, L: int, K: int, tiny: bool) -> tuple[np.ndarray, np.ndarray]:
    """``L`` vectors of length ``K``. Ordinary: |values| in [2^-4, 8]. ``tiny``: per vector, each operand
    drawn from a random window of 6 binades anywhere in its format's range (subnormals included), so that
    the largest product exponents of the vectors spread over the whole range where ``e_floor`` can act."""
    va = _values(fa)
    vb = _values(fb)
    if not tiny:
        va = va[(np.abs(va) <= 8) & (np.abs(va) >= 2.0 ** -4)]
        vb = vb[(np.abs(vb) <= 8) & (np.abs(vb) >= 2.0 ** -4)]
        A = rng.choice(va, (L, K))
        B = rng.choice(vb, (L, K))
    else:
        A = np.empty((L, K))
        B = np.empty((L, K))
        for M, v, f in ((A, va, fa), (B, vb, fb)):
            nz = v[v != 0]
            ex = np.floor(np.log2(np.abs(nz))).astype(int)
            lo, hi = f.emin - f.mbits, f.emax
            for i in range(L):
                w = int(rng.integers(lo, hi + 1))
                pool = nz[(ex >= w - 5) & (ex <= w)]
                M[i] = rng.choice(pool if pool.size else nz, K)
    mask = rng.random((L, K)) < 0.5
    mask[: L // 2] = False
    A[mask] = 0.0
    if tiny:
        A[-(L // 8):] = 0.0  # accumulator-only blocks
    return A, B


def _random_c(rng, out: Format, L: int) -> np.ndarray:
    e = rng.integers(max(out.emin, -30), 4, L)
    m = rng.integers(0, 1 << out.mbits, L)
    c = np.ldexp(1.0 + m / (1 << out.mbits), e) * rng.choice([-1.0, 1.0], L)
    c[rng.random(L) < 0.3] = 0.0
    return c.astype(np.float64)


def dot_fn_of(model) -> DotFn:
    """A black-box ``dot_fn(a, b, c)`` running ``model.dot`` (what ``fp8ref probe --model`` infers from)."""

    def fn(a: Sequence[float], b: Sequence[float], c: float = 0.0) -> float:
        return model.dot(a, b, c)

    return fn


_ = FP16
