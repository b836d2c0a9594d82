"""MX scale rules (FLOOR, CEIL, EVEN, RCEIL) against their exact definitions and torch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fp8ref
from fp8ref import E2M1, E4M3, E5M2, quantize_scaled
from fp8ref.scaling import MX
from fp8ref.scaling import oracle as orc
from fp8ref.scaling.mx import e8m0_to_f32, mx_scale_codes, rcp_max_f32

RULES = ["FLOOR", "CEIL", "EVEN", "RCEIL"]
ELEMENTS = [E4M3, E5M2, E2M1, fp8ref.E2M3, fp8ref.E3M2]


def _edge_amaxes():
    v = [0.0, 2.0 ** -149, 2.0 ** -127, 1.5 * 2.0 ** -127, 2.0 ** -126, 1.0, 3.5, 3.75, 3.875, 448.0, 449.0,
         57344.0, 6.0, 7.5, 28.0, 3.4e38, float(np.finfo(np.float32).max), np.inf, np.nan]
    out = []
    with np.errstate(over="ignore"):
        for a in v:
            a = np.float32(a)
            out += [a, np.nextafter(a, np.float32(0)), np.nextafter(a, np.float32(np.inf))]
    for k in range(-130, 128):
        p = np.float32(2.0 ** k) if k >= -149 else np.float32(0)
        out += [p, np.nextafter(p, np.float32(0)), np.nextafter(p, np.float32(np.inf))]
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("fmt", ELEMENTS, ids=lambda f: f.name)
def test_rules_equal_exact_definition(rule, fmt):
    a = _edge_amaxes()
    got = mx_scale_codes(a, fmt, rule)
    want = [orc.mx_code_exact(float(v), fmt, rule) for v in a]
    assert got.tolist() == want


@given(st.floats(min_value=0, width=32, allow_nan=False, allow_infinity=False))
def test_rules_equal_exact_definition_random(a):
    for fmt in (E4M3, E5M2, E2M1):
        for rule in RULES:
            assert int(mx_scale_codes(np.float32([a]), fmt, rule)[0]) == orc.mx_code_exact(a, fmt, rule)


def test_hand_examples():
    def codes(a, fmt=E4M3):
        return {r: int(mx_scale_codes(np.float32([a]), fmt, r)[0]) for r in RULES}
    assert codes(3.5) == {"FLOOR": 120, "CEIL": 121, "EVEN": 120, "RCEIL": 120}
    assert codes(448.0) == {"FLOOR": 127, "CEIL": 128, "EVEN": 127, "RCEIL": 127}
    assert codes(3.875)["EVEN"] == 121
    assert codes(0.0) == dict.fromkeys(RULES, 0)
    assert codes(np.nan) == dict.fromkeys(RULES, 255)
    assert codes(np.inf) == dict.fromkeys(RULES, 255)
    assert codes(6.0, E2M1)["RCEIL"] == 127  # 6 * RN(1/6) rounds to 1.0


def test_rcp_max_is_correctly_rounded():
    from fractions import Fraction
    for fmt in ELEMENTS + [fp8ref.E4M3FNUZ, fp8ref.E5M2FNUZ]:
        r = rcp_max_f32(fmt)
        assert r == np.float32(orc.f32(Fraction(1) / fmt.max_exact))
        assert r == np.float32(1.0 / fmt.max)  # no double-rounding hazard for these formats


def test_rceil_descale_matches_torch():
    """RCEIL's d = amax * (1 / max) in float32, as torchao's `max_abs * (1.0 / max_pos)` computes it."""
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).uniform(0, 1e4, 4096).astype(np.float32)
    for fmt in (E4M3, E5M2, E2M1):
        want = (torch.from_numpy(a) * (1.0 / fmt.max)).numpy()
        assert np.array_equal(a * rcp_max_f32(fmt), want)


def test_e8m0_to_f32():
    c = np.array([0, 1, 127, 254, 255], np.uint8)
    v = e8m0_to_f32(c)
    assert v[:4].tolist() == [2.0 ** -127, 2.0 ** -126, 1.0, 2.0 ** 127] and np.isnan(v[4])
    r = e8m0_to_f32(c, negate=True)
    assert r[:4].tolist() == [2.0 ** 127, 2.0 ** 126, 1.0, 2.0 ** -127] and np.isnan(r[4])
    assert np.array_equal(v[:4], [fp8ref.E8M0.decode(int(k)) for k in c[:4]])


def test_blocks_and_per_block_loop():
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((6, 64)) * np.exp(rng.uniform(-10, 10, (6, 64)))).astype(np.float32)
    for rule in RULES:
        st_ = quantize_scaled(x, E4M3, MX(rule))
        assert st_.scale_codes.shape == (6, 2) and st_.block == (1, 32)
        for i in range(6):
            for b in range(2):
                a = float(np.max(np.abs(x[i, 32 * b:32 * (b + 1)])))
                c = orc.mx_code_exact(a, E4M3, rule)
                assert st_.scale_codes[i, b] == c
                assert st_.scale[i, b] == np.float32(2.0 ** (c - 127))
                assert st_.bias[i, b] == 127 - c
        st0 = quantize_scaled(x.T.copy(), E4M3, MX(rule, axis=0))
        assert np.array_equal(st0.scale_codes, st_.scale_codes.T)
        assert np.array_equal(st0.codes, st_.codes.T)


def test_nan_block():
    x = np.ones((2, 32), np.float32)
    x[1, 5] = np.nan
    st_ = quantize_scaled(x, E4M3, MX())
    assert st_.scale_codes[:, 0].tolist() == [119, 255]
    assert np.isnan(st_.scale[1, 0]) and st_.bias[1, 0] == 0
    assert np.all(np.isnan(st_.dequantize()[1]))
    assert np.all(st_.codes[1] & 0x7F == 0x7F)
    st2 = quantize_scaled(x, E2M1, MX())  # no NaN in E2M1: codes 0, the block is NaN through its scale
    assert np.all(st2.codes[1] == 0) and np.all(np.isnan(st2.dequantize()[1]))


def test_floor_can_overflow_the_element_format():
    x = np.full((1, 32), 480.0, np.float32)  # FLOOR: 2**(8-8) = 1 -> 480 > 448
    assert quantize_scaled(x, E4M3, MX("FLOOR")).codes[0, 0] == 0x7E  # saturates
    assert quantize_scaled(x, E4M3, MX("FLOOR"), saturate=False).codes[0, 0] == 0x7F  # NaN
    assert quantize_scaled(x, E4M3, MX("CEIL"), saturate=False).codes[0, 0] == 0x77  # 240 = 1.875 * 2**7


def test_padding_rule():
    x = np.arange(1, 41, dtype=np.float32).reshape(1, 40)
    with pytest.raises(ValueError, match="block_size"):
        quantize_scaled(x, E4M3, MX())
    st_ = quantize_scaled(x, E4M3, MX(pad=True))
    assert st_.scale_codes.shape == (1, 2)
    assert st_.scale_codes[0, 1] == orc.mx_code_exact(40.0, E4M3, "FLOOR")
