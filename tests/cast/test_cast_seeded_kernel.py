"""The float32 seeded stochastic kernel (fused Philox and float32/uint32 encoder) equals the general exact
encoder on the float64 bit pattern, over every float32 class, several chunks with a ragged tail, and the
formats it accepts (including unusual biases); formats it does not accept take the general encoder."""

from __future__ import annotations

import numpy as np
import pytest

import fp8ref
from fp8ref.cast import encode, kernels
from fp8ref.cast.oracle import STOCHASTIC_MODES
from fp8ref.formats import exmy

N = 2 * kernels.SEED_CHUNK + 4 * 1000 + 3  # three chunks, the last one ending in three elements


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(2024)
    every_pattern = rng.integers(0, 2**32, N, dtype=np.uint64).astype(np.uint32).view(np.float32)
    wide = (rng.standard_normal(N) * np.exp2(rng.uniform(-40, 40, N))).astype(np.float32)
    short = np.round(rng.standard_normal(N) * 64) / 64 * np.exp2(rng.integers(-24, 24, N))
    short = short.astype(np.float32)  # few significant bits: exact values and ties occur
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-149, -(2.0**-149), 2.0**-126,
                         3.4028235e38, 448.0, 464.0, -480.0, 57344.0, 61440.0], np.float32)
    wide[: specials.size] = specials
    return [every_pattern, wide, short]


FORMATS = [fp8ref.E4M3, fp8ref.E5M2, fp8ref.E4M3FNUZ, fp8ref.E5M2FNUZ, exmy(3, 4, nan="all_ones"),
           exmy(2, 5, nan="ieee", has_inf=True), exmy(1, 6, nan="fnuz"), exmy(6, 1, nan="ieee", has_inf=True),
           exmy(4, 3, bias=-2, nan="all_ones", name="E4M3 bias -2"),
           exmy(5, 2, bias=40, nan="ieee", has_inf=True, name="E5M2 bias 40")]
OUTSIDE = [exmy(7, 0, nan="ieee", has_inf=True), exmy(4, 3, bias=-5, nan="all_ones", name="E4M3 bias -5"),
           exmy(5, 2, bias=127, nan="ieee", has_inf=True, name="E5M2 bias 127")]


def _general(x: np.ndarray, fmt, **kw) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN payloads widen with a warning
        x64 = x.astype(np.float64)
    return fp8ref.quantize(x64, fmt, **kw)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_seeded_float32_kernel_equals_general_encoder(fmt) -> None:
    assert encode.f32_stochastic_ok(fmt)
    rng = np.random.default_rng(len(fmt.name))
    for k, x in enumerate(_inputs()):
        for rounding in STOCHASTIC_MODES:
            for r in (32, 23, 9, 1):
                sat = bool((k + r) % 2)
                seed = int(rng.integers(0, 2**63)) * 2 + 1
                kw = {"rounding": rounding, "seed": seed, "srnumbits": r, "saturate": sat}
                a = fp8ref.quantize(x, fmt, **kw)
                b = _general(x, fmt, **kw)
                assert np.array_equal(a, b), (rounding, r, sat, np.flatnonzero(a != b)[:5])


@pytest.mark.parametrize("fmt", OUTSIDE, ids=lambda f: f.name)
def test_formats_outside_the_float32_kernel_take_the_general_encoder(fmt) -> None:
    assert encode.fast_ok(fmt) and not encode.f32_stochastic_ok(fmt)
    x = _inputs()[1][:5000]
    for rounding in STOCHASTIC_MODES:
        kw = {"rounding": rounding, "seed": 3, "srnumbits": 12, "saturate": True}
        assert np.array_equal(fp8ref.quantize(x, fmt, **kw), _general(x, fmt, **kw))
