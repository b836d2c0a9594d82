"""Floating-point formats described as data.

A :class:`Format` is a frozen description of a binary floating-point encoding: sign, exponent and
mantissa widths, bias, and how the special values (infinities, NaN, negative zero) are encoded.
Everything else -- largest finite value, smallest subnormal, the code of NaN, the decoded value of
every code -- is *derived* from those fields. No code anywhere in fp8ref is specialised on a format
name; kernels read the fields.

Encodings of the special values (``nan`` field):

``"ieee"``
    IEEE 754 style: the all-ones exponent is reserved; mantissa 0 is +-Inf (when ``has_inf``), any
    other mantissa is NaN. E5M2, FP16, BF16, TF32, FP32.
``"all_ones"``
    Only the code with every exponent and mantissa bit set is NaN (one per sign); the rest of the
    top binade is finite. OCP E4M3 ("e4m3fn"), and E8M0 (unsigned, 0xFF).
``"fnuz"``
    The single code 0x80 (sign set, everything else clear) -- the "negative zero" pattern -- is NaN;
    there is no -0 and no Inf. E4M3FNUZ, E5M2FNUZ (AMD MI300, Graphcore IPU).
``"none"``
    Every code is a finite number (OCP MX element formats E2M1, E2M3, E3M2 and research ExMy).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Literal

import numpy as np

NanEncoding = Literal["ieee", "all_ones", "fnuz", "none"]
NAN_ENCODINGS: tuple[str, ...] = ("ieee", "all_ones", "fnuz", "none")

#: Accepted ranges of the integer fields (docs/formats.md). They keep every exponent of a format within
#: +-2**18, so every derived value is an exact Fraction of modest size and fits the kernels' int64s.
EBITS_MAX = 16
MBITS_MAX = 63
BIAS_MAX = 1 << 16
BITS_MAX = 64


def _int_field(name: str, value: object) -> int:
    """An integer field: a Python or NumPy integer (not a bool), returned as ``int``; ``TypeError``
    naming the field otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Format.{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def _bool_field(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Format.{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def _check_nan(nan: object) -> None:
    if not isinstance(nan, str) or nan not in NAN_ENCODINGS:
        raise ValueError(f"Format.nan must be one of {', '.join(map(repr, NAN_ENCODINGS))}, got {nan!r}")


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"Format.{name} must lie in [{lo}, {hi}], got {value}")

__all__ = [
    "Format",
    "E4M3",
    "E5M2",
    "E4M3FNUZ",
    "E5M2FNUZ",
    "E8M0",
    "FP16",
    "BF16",
    "TF32",
    "FP32",
    "FP64",
    "E2M1",
    "E2M3",
    "E3M2",
    "exmy",
    "format",
    "formats",
    "FP8_FORMATS",
]


@dataclass(frozen=True)
class Format:
    """A binary floating-point format.

    Fields are the *definition*; every other attribute is a derived property.

    >>> E4M3.max, E4M3.min_subnormal, hex(E4M3.nan_code)
    (448.0, 0.001953125, '0x7f')
    """

    name: str
    ebits: int
    mbits: int
    bias: int
    has_inf: bool
    nan: NanEncoding
    has_negative_zero: bool
    has_subnormals: bool = True
    signed: bool = True
    has_zero: bool = True
    aliases: tuple[str, ...] = field(default=(), compare=False, repr=False)
    description: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Format.name must be a non-empty string, got {self.name!r}")
        for fld in ("ebits", "mbits", "bias"):
            object.__setattr__(self, fld, _int_field(fld, getattr(self, fld)))
        for fld in ("has_inf", "has_negative_zero", "has_subnormals", "signed", "has_zero"):
            object.__setattr__(self, fld, _bool_field(fld, getattr(self, fld)))
        _check_nan(self.nan)
        if not isinstance(self.aliases, tuple) or not all(isinstance(a, str) for a in self.aliases):
            raise TypeError(f"Format.aliases must be a tuple of strings, got {self.aliases!r}")
        if not isinstance(self.description, str):
            raise TypeError(f"Format.description must be a string, got {self.description!r}")
        _check_range("ebits", self.ebits, 1, EBITS_MAX)
        _check_range("mbits", self.mbits, 0, MBITS_MAX)
        _check_range("bias", self.bias, -BIAS_MAX, BIAS_MAX)
        if self.bits > BITS_MAX:
            raise ValueError(f"Format: formats wider than {BITS_MAX} bits are not supported "
                             f"(signed + ebits + mbits = {self.bits})")
        if self.has_inf and self.nan != "ieee":
            raise ValueError("Format.has_inf: infinities are only encodable with the 'ieee' NaN encoding")
        if self.nan == "fnuz" and (self.has_negative_zero or not self.signed):
            raise ValueError("Format.nan: the 'fnuz' encoding uses the negative-zero pattern for NaN: "
                             "it needs a sign bit and has_negative_zero=False")
        if self.has_negative_zero and not self.signed:
            raise ValueError("Format.has_negative_zero: an unsigned format has no negative zero")
        if not self.has_zero and self.has_subnormals:
            raise ValueError("Format.has_subnormals: a format without zero (like E8M0) has no subnormals")
        if self.classify(self.max_code) != "normal":
            raise ValueError(f"{self.name} has no finite nonzero value once NaN/Inf are encoded")

    # ---- widths and masks -------------------------------------------------------------------
    @property
    def bits(self) -> int:
        """Total width of a code in bits."""
        return int(self.signed) + self.ebits + self.mbits

    @property
    def sign_mask(self) -> int:
        return (1 << (self.bits - 1)) if self.signed else 0

    @property
    def exp_field_max(self) -> int:
        return (1 << self.ebits) - 1

    @property
    def mant_mask(self) -> int:
        return (1 << self.mbits) - 1

    @property
    def precision(self) -> int:
        """Significand precision in bits, the implicit bit included."""
        return self.mbits + 1

    # ---- exponent range -----------------------------------------------------------------------
    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal number."""
        return (1 if self.has_zero else 0) - self.bias

    @property
    def top_exp_field(self) -> int:
        """Largest exponent *field* that holds finite values."""
        if self.nan == "ieee" or (self.nan == "all_ones" and self.mbits == 0):
            return self.exp_field_max - 1
        return self.exp_field_max

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest finite number."""
        return self.top_exp_field - self.bias

    @property
    def top_mantissa(self) -> int:
        """Largest mantissa field in the top finite binade."""
        if self.nan == "all_ones" and self.mbits > 0:
            return self.mant_mask - 1
        return self.mant_mask

    # ---- derived values -----------------------------------------------------------------------
    @cached_property
    def max_exact(self) -> Fraction:
        return Fraction((1 << self.mbits) + self.top_mantissa, 1 << self.mbits) * pow2(self.emax)

    @cached_property
    def max(self) -> float:
        """Largest finite value as a float64 (computed once per format): :attr:`max_exact` rounded to
        nearest even, ``inf`` where it lies beyond float64's range (see :func:`to_float`)."""
        return to_float(self.max_exact)

    @property
    def min_normal_exact(self) -> Fraction:
        return pow2(self.emin)

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value (``2**emin``) as a float64 (0.0 or ``inf`` out of its range)."""
        return to_float(self.min_normal_exact)

    @property
    def min_subnormal_exact(self) -> Fraction:
        if self.has_subnormals and self.mbits > 0:
            return pow2(self.emin - self.mbits)
        return self.min_normal_exact

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (the smallest normal where the format has no subnormals), as a float64
        (0.0 or ``inf`` out of its range)."""
        return to_float(self.min_subnormal_exact)

    @property
    def eps(self) -> float:
        """Distance from 1.0 to the next larger value."""
        return math.ldexp(1.0, -self.mbits)

    @property
    def nan_code(self) -> int | None:
        """Code produced for a positive (or unsigned) NaN; ``nan_code | sign_mask`` for a negative one
        where the format keeps the sign of NaN. ``None`` for formats without NaN."""
        if self.nan == "ieee" or self.nan == "all_ones":
            return (1 << (self.ebits + self.mbits)) - 1
        if self.nan == "fnuz":
            return self.sign_mask
        return None

    @property
    def inf_code(self) -> int | None:
        """Code of +Inf (``| sign_mask`` gives -Inf), or ``None``."""
        if not self.has_inf:
            return None
        return self.exp_field_max << self.mbits

    @property
    def max_code(self) -> int:
        """Code of +max."""
        return (self.top_exp_field << self.mbits) | self.top_mantissa

    @property
    def n_codes(self) -> int:
        return 1 << self.bits

    @property
    def ml_dtype(self) -> np.dtype | None:
        """The matching ml_dtypes / NumPy dtype, or ``None``."""
        name = _ML_DTYPES.get(self.name)
        if name is None:
            return None
        if name in ("float16", "float32", "float64"):
            return np.dtype(name)
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))

    # ---- decoding -----------------------------------------------------------------------------
    def classify(self, code: int) -> str:
        """``"zero"``, ``"subnormal"``, ``"normal"``, ``"inf"`` or ``"nan"``."""
        code = self._check_code(code)
        mag = code & ~self.sign_mask
        e, m = mag >> self.mbits, mag & self.mant_mask
        if self.nan == "fnuz" and code == self.sign_mask:
            return "nan"
        if self.nan == "all_ones" and mag == (1 << (self.ebits + self.mbits)) - 1:
            return "nan"
        if self.nan == "ieee" and e == self.exp_field_max:
            return "nan" if m else "inf"
        if self.has_zero and e == 0:
            if m == 0:
                return "zero"
            return "subnormal" if self.has_subnormals else "zero"
        return "normal"

    def decode_exact(self, code: int) -> Fraction | float:
        """Exact value of ``code``: a ``Fraction`` for numbers, ``float`` NaN or +-Inf otherwise.
        Zero codes return ``Fraction(0)``; use :meth:`decode` to see the sign of zero."""
        kind = self.classify(code)
        negative = bool(code & self.sign_mask)
        if kind == "nan":
            return math.nan
        if kind == "inf":
            return -math.inf if negative else math.inf
        mag = code & ~self.sign_mask
        e, m = mag >> self.mbits, mag & self.mant_mask
        if kind == "zero":
            return Fraction(0)
        if kind == "subnormal":
            v = Fraction(m) * pow2(self.emin - self.mbits)
        else:
            v = Fraction((1 << self.mbits) | m) * pow2(e - self.bias - self.mbits)
        return -v if negative else v

    def decode(self, code: int) -> float:
        """Value of ``code`` as a Python float: exact for every named format; values of a research format
        beyond float64's range round to nearest even (``+-inf``, ``+-0.0`` with the sign kept)."""
        v = self.decode_exact(code)
        if isinstance(v, float):
            return v
        if v == 0:
            return -0.0 if (code & self.sign_mask) else 0.0
        return to_float(v)  # +-inf / +-0.0 for the values beyond float64's range

    def values(self) -> np.ndarray:
        """All ``2**bits`` codes decoded, as float64, indexed by code (formats of <= 16 bits)."""
        if self.bits > 16:
            raise ValueError(f"{self.name} has 2**{self.bits} codes; values() is for formats of <= 16 bits")
        return np.array([self.decode(c) for c in range(self.n_codes)], dtype=np.float64)

    def is_representable(self, x: float) -> bool:
        """Whether the float ``x`` is exactly a value of this format (NaN and Inf where encodable)."""
        if math.isnan(x):
            return self.nan != "none"
        if math.isinf(x):
            return self.has_inf
        if x == 0:
            return self.has_zero
        if x < 0 and not self.signed:
            return False
        f = Fraction(x)
        a = abs(f)
        if a > self.max_exact or a < self.min_subnormal_exact:
            return False
        e = max(floor_log2(a), self.emin)
        q = a / pow2(e - self.mbits)
        return q.denominator == 1

    def _check_code(self, code: int) -> int:
        code = int(code)
        if not 0 <= code < self.n_codes:
            raise ValueError(f"code {code} is out of range for {self.name} ({self.bits} bits)")
        return code

    def __str__(self) -> str:
        return self.name


def to_float(v: Fraction) -> float:
    """``v`` rounded to the nearest float64, ties to even: ``+-inf`` beyond float64's range (IEEE 754
    overflow: from ``2**1024 - 2**970`` on), ``+-0.0`` below half its smallest subnormal."""
    try:
        return float(v)  # int / int true division: correctly rounded
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def pow2(e: int) -> Fraction:
    """``2**e`` as an exact Fraction, for any integer ``e`` (the exact helpers of every oracle)."""
    return Fraction(1 << e) if e >= 0 else Fraction(1, 1 << -e)


def floor_log2(a: Fraction) -> int:
    """``floor(log2(a))`` for a positive Fraction, exactly."""
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if pow2(e) > a:
        e -= 1
    return e


# ---- the named formats ------------------------------------------------------------------------
E4M3 = Format("E4M3", 4, 3, 7, False, "all_ones", True,
              aliases=("e4m3", "e4m3fn", "float8_e4m3fn", "f8e4m3fn", "fp8_e4m3", "F8_E4M3"),
              description="OCP FP8 E4M3 (e4m3fn): no Inf, NaN = S.1111.111, max 448")
E5M2 = Format("E5M2", 5, 2, 15, True, "ieee", True,
              aliases=("e5m2", "float8_e5m2", "f8e5m2", "fp8_e5m2", "F8_E5M2"),
              description="OCP FP8 E5M2: IEEE-like, Inf and NaN, max 57344")
E4M3FNUZ = Format("E4M3FNUZ", 4, 3, 8, False, "fnuz", False,
                  aliases=("e4m3fnuz", "float8_e4m3fnuz", "f8e4m3fnuz", "float8_143"),
                  description="FNUZ FP8 E4M3 (AMD MI300, Graphcore IPU): NaN = 0x80, no -0, max 240")
E5M2FNUZ = Format("E5M2FNUZ", 5, 2, 16, False, "fnuz", False,
                  aliases=("e5m2fnuz", "float8_e5m2fnuz", "f8e5m2fnuz", "float8_152"),
                  description="FNUZ FP8 E5M2 (AMD MI300, Graphcore IPU): NaN = 0x80, no -0, max 57344")
E8M0 = Format("E8M0", 8, 0, 127, False, "all_ones", False, has_subnormals=False, signed=False,
              has_zero=False, aliases=("e8m0", "float8_e8m0fnu", "e8m0fnu", "F8_E8M0"),
              description="OCP MX block scale: unsigned powers of two 2^-127..2^127, NaN = 0xFF")
FP16 = Format("FP16", 5, 10, 15, True, "ieee", True,
              aliases=("fp16", "float16", "half", "binary16", "f16"), description="IEEE binary16")
BF16 = Format("BF16", 8, 7, 127, True, "ieee", True,
              aliases=("bf16", "bfloat16"), description="bfloat16")
TF32 = Format("TF32", 8, 10, 127, True, "ieee", True,
              aliases=("tf32", "tensorfloat32"), description="NVIDIA TensorFloat-32 (19 bits)")
FP32 = Format("FP32", 8, 23, 127, True, "ieee", True,
              aliases=("fp32", "float32", "single", "binary32", "f32"), description="IEEE binary32")
FP64 = Format("FP64", 11, 52, 1023, True, "ieee", True,
              aliases=("fp64", "float64", "double", "binary64", "f64"), description="IEEE binary64")
E2M1 = Format("E2M1", 2, 1, 1, False, "none", True,
              aliases=("e2m1", "float4_e2m1fn", "fp4"), description="OCP MX FP4 element: finite only")
E2M3 = Format("E2M3", 2, 3, 1, False, "none", True,
              aliases=("e2m3", "float6_e2m3fn"), description="OCP MX FP6 element: finite only")
E3M2 = Format("E3M2", 3, 2, 3, False, "none", True,
              aliases=("e3m2", "float6_e3m2fn"), description="OCP MX FP6 element: finite only")

FP8_FORMATS: tuple[Format, ...] = (E4M3, E5M2, E4M3FNUZ, E5M2FNUZ)
_NAMED: tuple[Format, ...] = (E4M3, E5M2, E4M3FNUZ, E5M2FNUZ, E8M0, FP16, BF16, TF32, FP32, FP64,
                              E2M1, E2M3, E3M2)

_ML_DTYPES = {
    "E4M3": "float8_e4m3fn", "E5M2": "float8_e5m2", "E4M3FNUZ": "float8_e4m3fnuz",
    "E5M2FNUZ": "float8_e5m2fnuz", "E8M0": "float8_e8m0fnu", "FP16": "float16", "BF16": "bfloat16",
    "FP32": "float32", "FP64": "float64", "E2M1": "float4_e2m1fn", "E2M3": "float6_e2m3fn",
    "E3M2": "float6_e3m2fn",
}

_REGISTRY: dict[str, Format] = {}
for _f in _NAMED:
    for _n in (_f.name, *_f.aliases):
        _REGISTRY[_n.lower()] = _f


def exmy(ebits: int, mbits: int, *, bias: int | None = None, nan: NanEncoding = "none",
         has_inf: bool = False, has_negative_zero: bool | None = None, has_subnormals: bool = True,
         name: str | None = None) -> Format:
    """A research format with ``ebits`` exponent and ``mbits`` mantissa bits.

    Defaults follow the OCP MX element formats: bias ``2**(ebits-1) - 1``, every code finite, -0 kept,
    subnormals. Pass ``nan="ieee", has_inf=True`` for an IEEE-like format, ``nan="fnuz"`` for an
    FNUZ-like one (its bias default is then one larger, as for E4M3FNUZ/E5M2FNUZ).
    """
    ebits, mbits = _int_field("ebits", ebits), _int_field("mbits", mbits)
    _check_range("ebits", ebits, 1, EBITS_MAX)
    _check_range("mbits", mbits, 0, MBITS_MAX)
    _check_nan(nan)
    if bias is None:
        bias = (1 << (ebits - 1)) - 1 + (1 if nan == "fnuz" else 0)
    if has_negative_zero is None:
        has_negative_zero = nan != "fnuz"
    if name is None:
        name = f"E{ebits}M{mbits}" + {"none": "", "ieee": "", "all_ones": "FN", "fnuz": "FNUZ"}[nan]
    return Format(name, ebits, mbits, bias, has_inf, nan, has_negative_zero, has_subnormals)


_EXMY = re.compile(r"^e(\d+)m(\d+)(fnuz|fn)?$")


def format(name: str | Format | np.dtype | type) -> Format:  # noqa: A001 - public contract name
    """Resolve a format name, alias, ml_dtypes dtype (or dtype name) to a :class:`Format`.

    Names are case-insensitive: ``"E4M3"``, ``"e4m3fn"``, ``"float8_e4m3fn"``, ``"bf16"``, ...
    A generic ``"ExMy"`` name (``"e3m4"``) not in the table gives :func:`exmy` with OCP MX defaults
    (``"e3m4fnuz"`` an FNUZ-style one). Anything else raises ``ValueError`` listing the valid names.
    """
    if isinstance(name, Format):
        return name
    if name is None:  # np.dtype(None) is float64: never a silent default
        raise TypeError("format must be a name, a Format or a dtype, got None")
    if not isinstance(name, str):
        try:
            name = np.dtype(name).name
        except TypeError as exc:
            raise TypeError(f"format must be a name, a Format or a dtype, got {type(name).__name__}") from exc
    key = name.strip().lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    m = _EXMY.match(key)
    if m:
        e, mb, kind = int(m.group(1)), int(m.group(2)), m.group(3)
        if 1 <= e <= 11 and 0 <= mb <= 52:
            return exmy(e, mb, nan={"fnuz": "fnuz", "fn": "all_ones", None: "none"}[kind])
    valid = ", ".join(sorted({f.name for f in _NAMED}))
    aliases = ", ".join(sorted(_REGISTRY))
    raise ValueError(f"unknown format {name!r}; valid formats: {valid} (aliases: {aliases}; "
                     "or a generic 'ExMy' such as 'e3m4')")


def formats() -> tuple[Format, ...]:
    """Every named format, in table order."""
    return _NAMED
