"""NVFP4 (TransformerEngine, torchao) and DeepGEMM block casts in exact arithmetic: the specification of
:mod:`fp8ref.scaling.blockscaled`, one source step at a time (docs/scaling.md section 7).

Every float32 operation of a source is the exact result rounded once (``f32``); conversions to E4M3 go
through the exact cast oracle. Slow, on Python floats; finite inputs (the special values are pinned by
hand-worked tests and, for torchao, by torchao itself).

Sources: TransformerEngine ``transformer_engine/pytorch/custom_recipes/reference_nvfp4.py``
(``NVFP4QuantizerRef._quantize_blockwise_reference``, ``cast_to_fp4x2``) at commit
d0067d0da6cb01811b8072a7d304f0e00344ce2b; torchao 0.18.0 ``torchao/prototype/mx_formats/nvfp4_tensor.py``
(``nvfp4_quantize``, ``per_tensor_amax_to_scale``); DeepGEMM ``deep_gemm/utils/math.py`` at commit
54e22612409371d6364144b69086735beb54e98b.
"""

from __future__ import annotations

import math
from fractions import Fraction

from fp8ref.formats import E2M1, E4M3, FP32
from fp8ref.scaling.oracle import f32

FLT_MAX = FP32.max


def _q(v: float) -> float:
    return f32(Fraction(v))


def _div(a: float, b: float) -> float:
    """float32 ``a / b`` (IEEE: x/0 = Inf for x > 0)."""
    if b == 0:
        return math.inf if a > 0 else math.nan
    if math.isinf(b):
        return 0.0
    if math.isinf(a):
        return math.inf
    return f32(Fraction(a) / Fraction(b))


def _mul(a: float, b: float) -> float:
    if math.isinf(a) or math.isinf(b):
        return a * b
    return f32(Fraction(a) * Fraction(b))


def e4m3(v: float, saturate: bool = True) -> int:
    from fp8ref.cast.oracle import round_exact

    return round_exact(v, E4M3, "nearest_even", saturate)


def te_fp4_code(y: float) -> int:
    """TE ``cast_to_fp4x2`` on one value, its comparisons transcribed (the later assignment wins)."""
    r = 0
    for lo, lo_in, hi, hi_in, code in ((0.0, True, 0.25, True, 0), (0.25, False, 0.75, False, 1),
                                       (0.75, True, 1.25, True, 2), (1.25, False, 1.75, False, 3),
                                       (1.75, True, 2.5, True, 4), (2.5, False, 3.5, False, 5),
                                       (3.5, True, 5.0, True, 6)):
        if (y >= lo if lo_in else y > lo) and (y <= hi if hi_in else y < hi):
            r = code
    if y > 5.0:
        r = 7
    for lo, lo_in, hi, hi_in, code in ((-0.25, True, -0.0, False, 8), (-0.75, False, -0.25, False, 9),
                                       (-1.25, True, -0.75, True, 10), (-1.75, False, -1.25, False, 11),
                                       (-2.5, True, -1.75, True, 12), (-3.5, False, -2.5, False, 13),
                                       (-5.0, True, -3.5, True, 14)):
        if (y >= lo if lo_in else y > lo) and (y <= hi if hi_in else y < hi):
            r = code
    if y < -5.0:
        r = 15
    return r


def e2m1_rne(y: float) -> int:
    """torchao ``f32_to_f4_unpacked`` on a finite float32 value (clamped to +-6 before): nearest even,
    sign kept (``-0.0`` -> 8)."""
    from fp8ref.cast.oracle import round_exact

    return round_exact(y, E2M1, "nearest_even", True)


def deepgemm_fp4_code(y: float) -> int:
    """DeepGEMM ``_quantize_to_fp4_e2m1``: midpoints strictly below ``|y|`` counted, sign on non-zero."""
    c = sum(abs(y) > b for b in (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0))
    return c | 8 if (y < 0 and c) else c


def te_global(amax: float) -> tuple[float, float]:
    """(global encode, global decode) of TE: ``min(2688 / amax, FLT_MAX)``, 1 where that is 0."""
    enc = min(_div(2688.0, amax), FLT_MAX)
    if enc == 0:
        enc = 1.0
    return enc, _div(1.0, enc)


def te_block(values: list[float], vec_max: float, enc: float, dec: float) -> tuple[int, list[int], float]:
    """(E4M3 scale code, element codes, element multiplier) of one TE block."""
    mult = _mul(enc, _div(1.0, 6.0))
    s = min(min(_mul(vec_max, mult), FLT_MAX), 448.0)
    code = e4m3(s)
    sf = E4M3.decode(code)
    q = min(_div(1.0, _mul(sf, dec)), FLT_MAX)
    return code, [te_fp4_code(max(-6.0, min(6.0, _mul(v, q)))) for v in values], q


def torchao_block(values: list[float], vec_max: float, pts: float | None) -> tuple[int, list[int], float]:
    """(E4M3 scale code, element codes, element multiplier) of one torchao block (``pts``: the per-tensor
    scale of two-level scaling, ``None`` for single level)."""
    bs = _div(vec_max, 6.0)
    if pts is not None:
        bs = _div(bs, pts)
    code = e4m3(min(max(bs, 2.0 ** -6), 448.0))
    sf = E4M3.decode(code)
    q = _div(1.0, sf) if pts is None else _div(_div(1.0, pts), sf)
    return code, [e2m1_rne(max(-6.0, min(6.0, _mul(v, q)))) for v in values], q


def ceil_to_ue8m0(sf: float) -> float:
    """DeepGEMM ``ceil_to_ue8m0``: the biased exponent of ``sf`` plus one when its mantissa is not zero,
    clamped to [1, 254], as a power of two."""
    if sf == 0:
        e = 0
    elif sf < 2.0 ** -126:  # float32 subnormal: field 0, mantissa non-zero
        e = 1
    else:
        m, e2 = math.frexp(sf)  # sf = m * 2**e2, m in [0.5, 1)
        e = e2 - 1 + 127 + (m != 0.5)
    e = min(max(e, 1), 254)
    return 2.0 ** (e - 127)


def deepgemm_block(values: list[float], vec_max: float, ue8m0: bool, fp4: bool) -> tuple[float, list[int]]:
    """(scale factor, element codes) of one DeepGEMM block."""
    a = max(vec_max, _q(1e-4))
    sf = _div(a, 6.0 if fp4 else 448.0)
    if ue8m0:
        sf = ceil_to_ue8m0(sf)
    q = _div(1.0, sf)
    ys = [_mul(v, q) for v in values]
    codes = [deepgemm_fp4_code(y) for y in ys] if fp4 else [e4m3(y) for y in ys]  # torch 2.13 saturates
    return sf, codes
