"""OCP MX block scales: E8M0 codes from a block's amax, by the four rules torchao names.

Every rule works on the float32 bit pattern of the block amax (``bits``; ``field = (bits >> 23) & 0xFF``,
``mant = bits & 0x7FFFFF``) and the element format's ``emax`` and ``mbits``. The result is the E8M0
code ``c`` (``2**(c - 127)``; 0xFF is NaN); a non-finite amax gives 0xFF.

- FLOOR (OCP v1.0 section 6.3):  ``e = field - 127 - emax``
- CEIL:                          ``e = field + (mant != 0) - 127 - emax``
- EVEN:  ``bits' = (bits + 2**(22 - mbits)) & 0xFF800000`` (amax rounded to ``mbits`` mantissa bits,
  halves up), then FLOOR on ``bits'``; a rounded amax of +Inf gives 0xFF
- for FLOOR, CEIL and EVEN the code is ``clip(e, -127, 127) + 127``
- RCEIL (cuBLAS, TransformerEngine MXFP8): ``d = float32(amax * float32(1 / fmt.max))``;
  ``c = field(d) + (mant(d) > 0x400000 if field(d) == 0 else mant(d) != 0)``, at most 254 (satfinite).
"""

from __future__ import annotations

import numpy as np

from fp8ref.formats import Format


def rcp_max_f32(fmt: Format) -> np.float32:
    """``float32(1 / fmt.max)`` rounded once (to nearest even) from the exact quotient."""
    from fractions import Fraction

    q = Fraction(1) / fmt.max_exact
    f64 = float(q)  # correctly rounded to float64
    f32 = np.float32(f64)
    # a second rounding can only differ at an exact float32 midpoint of the float64 value
    lo, hi = np.nextafter(f32, np.float32(0)), np.nextafter(f32, np.float32(np.inf))
    def key(c: np.float32) -> tuple[Fraction, int]:
        return abs(Fraction(float(c)) - q), int(np.array(c).view(np.uint32)) & 1

    return np.float32(min((f32, lo, hi), key=key))


def mx_scale_codes(amax: np.ndarray, fmt: Format, rule: str) -> np.ndarray:
    """E8M0 scale codes (uint8) for an array of float32 block amaxes (int32 bit arithmetic)."""
    a = np.array(amax, dtype=np.float32)
    bits = a.view(np.int32) & np.int32(0x7FFFFFFF)
    nonfinite = bits >= np.int32(0x7F800000)
    if rule == "RCEIL":
        with np.errstate(over="ignore", invalid="ignore"):
            d = a * rcp_max_f32(fmt)
        db = d.view(np.int32) & np.int32(0x7FFFFFFF)
        field = db >> 23
        mant = db & np.int32(0x7FFFFF)
        up = np.where(field == 0, mant > 0x400000, mant != 0)
        code = np.minimum(field + up, 254)
        nonfinite |= db >= np.int32(0x7F800000)
    else:
        if rule == "EVEN":
            with np.errstate(over="ignore"):
                bits = (bits + np.int32(1 << (22 - fmt.mbits))) & np.int32(0x7F800000)
            nonfinite |= bits == np.int32(0x7F800000)
        elif rule not in ("FLOOR", "CEIL"):
            raise ValueError(f"rule must be one of FLOOR, RCEIL, CEIL, EVEN, got {rule!r}")
        e = (bits >> 23) - np.int32(127 + fmt.emax)
        if rule == "CEIL":
            e += (bits & np.int32(0x7FFFFF)) != 0
        code = np.clip(e, -127, 127) + 127
    code = code.astype(np.uint8)
    code[nonfinite] = 255
    return code


def _table(negate: bool) -> np.ndarray:
    c = np.arange(256)
    t = np.ldexp(1.0, np.where(c == 255, 0, (127 - c) if negate else (c - 127))).astype(np.float32)
    t[255] = np.nan
    return t


_TABLES = {False: _table(False), True: _table(True)}


def e8m0_to_f32(codes: np.ndarray, negate: bool = False) -> np.ndarray:
    """``2**(c - 127)`` (or ``2**(127 - c)`` with ``negate``) as float32, NaN for 0xFF; exact (a table)."""
    return _TABLES[bool(negate)][np.asarray(codes, dtype=np.uint8)]
