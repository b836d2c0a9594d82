"""The encoding layer (fp8ref.cast.encode): the record, the named modes, and the rule that a mode a fast
encoder does not list goes to the general encoder in every kernel (so a new mode needs only round_away)."""

from __future__ import annotations

import numpy as np
import pytest

import fp8ref
from fp8ref.cast import STOCHASTIC_MODES, encode
from fp8ref.cast import kernels as k
from fp8ref.cast.cases import boundary_values
from fp8ref.scaling import JustInTime, quantize_scaled
from fp8ref.scaling import quantize as qmod


def test_mode_constants_are_the_positions_of_the_names() -> None:
    names = [encode.NEAREST_EVEN, encode.NEAREST_AWAY, encode.TOWARD_ZERO, encode.TOWARD_POSITIVE,
             encode.TOWARD_NEGATIVE, encode.STOCHASTIC, encode.STOCHASTIC_FAST, encode.STOCHASTIC_FASTEST]
    assert [fp8ref.ROUNDING_MODES[m] for m in names] == list(fp8ref.ROUNDING_MODES)
    assert set(encode.F32_MODES) | set(encode.F32_STOCHASTIC_MODES) == set(names)


def test_encoder_params_record() -> None:
    p = encode.encoder_params(fp8ref.E5M2, "toward_positive", False)
    assert p == encode.encoder_params(fp8ref.E5M2, encode.TOWARD_POSITIVE, False)
    assert (p.mode, p.saturate) == (encode.TOWARD_POSITIVE, 0)
    assert (p.max_code, p.inf_code, p.nan_code) == (0x7B, 0x7C, 0x7F)
    assert (p.overflow, p.inf_result, p.clamp_pos, p.clamp_neg) == (0x7C, 0x7C, 0, 1)
    assert (p.inc_up_pos, p.inc_up_neg) == (-1, 0)
    q = encode.encoder_params(fp8ref.E4M3FNUZ, "nearest_even", True)
    assert (q.neg_zero, q.overflow, q.inf_result, q.clamp_pos, q.clamp_neg) == (0, 0x80, 0x7F, 1, 1)
    assert all(type(v) is int for v in p + q)
    with pytest.raises(ValueError, match="rounding must be one of"):
        encode.encoder_params(fp8ref.E4M3, "nearest")
    with pytest.raises(ValueError, match="position in fp8ref.ROUNDING_MODES"):
        encode.encoder_params(fp8ref.E4M3, 8)
    with pytest.raises(ValueError, match="at most 16 bits"):
        encode.encoder_params(fp8ref.FP32)


@pytest.mark.parametrize("fmt", [fp8ref.E4M3, fp8ref.E5M2, fp8ref.E4M3FNUZ], ids=str)
def test_modes_a_fast_encoder_does_not_list_take_the_general_encoder(monkeypatch, fmt) -> None:
    """With the float32 encoders' mode lists emptied, float32 casts (deterministic, seeded and explicit
    bits) and the fused scaling kernels send every mode to the general encoder and give the same codes."""
    x = boundary_values(fmt, np.float32)
    rb = (np.arange(x.size) * 2654435761 % 4096).astype(np.int64)
    cases = [dict(rounding=r, saturate=s) for r in fp8ref.ROUNDING_MODES[:5] for s in (True, False)]
    cases += [dict(rounding=r, seed=7) for r in STOCHASTIC_MODES]
    cases += [dict(rounding=r, srbits=rb, srnumbits=12) for r in STOCHASTIC_MODES]
    want = [fp8ref.quantize(x, fmt, **kw) for kw in cases]
    xf = x[np.isfinite(x)]
    x2 = xf[: xf.size // 8 * 8].reshape(8, -1)
    want_scaled = quantize_scaled(x2, fmt, JustInTime(granularity="row")).codes

    def refuse(*args):
        raise AssertionError("a float32 fast kernel ran for a mode its encoder does not list")

    monkeypatch.setattr(encode, "F32_MODES", ())
    monkeypatch.setattr(encode, "F32_STOCHASTIC_MODES", ())
    for name in ("quantize_f32", "quantize_f32_seeded", "quantize_f32_srbits"):
        monkeypatch.setattr(k, name, refuse)
    for kw, w in zip(cases, want, strict=True):
        assert np.array_equal(fp8ref.quantize(x, fmt, **kw), w), kw
    assert not qmod._fusable(x2, fmt, "nearest_even")
    assert np.array_equal(quantize_scaled(x2, fmt, JustInTime(granularity="row")).codes, want_scaled)
