"""fp8ref.scaled_mm against torch CPU torch._scaled_mm (torch 2.13: the fp32 emulation of aten Blas.cpp).

torch dequantizes to float32 (a * scale_a rounded to float32), multiplies in float32 in an unspecified order,
adds the bias in float32 and casts once. Where every one of those float32 steps is exact (power-of-two
scales, operands from a few binades, small K) torch and "exact" must agree bit for bit. The differences
docs/matmul.md lists are pinned here too.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fp8ref

torch = pytest.importorskip("torch")

TORCH_DT = {fp8ref.E4M3: torch.float8_e4m3fn, fp8ref.E5M2: torch.float8_e5m2}
OUTS = [(np.float32, torch.float32), (np.float16, torch.float16), (ml_dtypes.bfloat16, torch.bfloat16),
        (fp8ref.E4M3, torch.float8_e4m3fn), (fp8ref.E5M2, torch.float8_e5m2)]


def _narrow_codes(rng, shape, fmt) -> np.ndarray:
    """Codes of values 2^e * (1 + f), e in [-2, 2], either sign: every fp32 step of torch is exact."""
    vals = fmt.values()
    ok = np.nonzero(np.isfinite(vals) & (np.abs(vals) >= 0.25) & (np.abs(vals) < 8))[0]
    return rng.choice(ok, shape).astype(np.uint8)


def _torch_mm(a, fa, b, fb, sa, sb, tout, bias=None, sr=None):
    ta = torch.from_numpy(a).view(TORCH_DT[fa])
    tb = torch.from_numpy(b).view(TORCH_DT[fb])
    kw = {}
    if bias is not None:
        kw["bias"] = torch.from_numpy(bias.astype(np.float32)).to(torch.bfloat16)
    if sr is not None:
        kw["scale_result"] = torch.tensor(sr, dtype=torch.float32)
    r = torch._scaled_mm(ta, tb, torch.from_numpy(np.asarray(sa, np.float32)),
                         torch.from_numpy(np.asarray(sb, np.float32)), out_dtype=tout, **kw)
    return r.view(torch.uint8).numpy() if r.element_size() == 1 else r.float().numpy()


def _np(r) -> np.ndarray:
    return r.view(np.uint8) if r.dtype.itemsize == 1 else r.astype(np.float32)


@pytest.mark.parametrize("fa,fb", [(fp8ref.E4M3, fp8ref.E4M3), (fp8ref.E4M3, fp8ref.E5M2),
                                   (fp8ref.E5M2, fp8ref.E4M3), (fp8ref.E5M2, fp8ref.E5M2)])
@pytest.mark.parametrize("out,tout", OUTS)
@pytest.mark.parametrize("rowwise", [False, True])
def test_agrees_where_torch_is_exact(fa, fb, out, tout, rowwise) -> None:
    rng = np.random.default_rng(1)
    m, k, n = 8, 64, 16
    a, b = _narrow_codes(rng, (m, k), fa), _narrow_codes(rng, (k, n), fb)
    if rowwise:
        sa = (2.0 ** rng.integers(-4, 1, (m, 1))).astype(np.float32)
        sb = (2.0 ** rng.integers(-4, 1, (1, n))).astype(np.float32)
    else:
        sa, sb = np.float32(2.0**-3), np.float32(0.5)
    fp8_out = isinstance(out, fp8ref.Format)
    bias = None if out == np.float32 else (rng.integers(-64, 64, n) / 16).astype(ml_dtypes.bfloat16)
    sr = np.float32(4.0) if fp8_out else None
    got = fp8ref.scaled_mm(a, b, sa, sb, a_format=fa, b_format=fb, out_dtype=out, bias=bias,
                           scale_result=sr)
    want = _torch_mm(a, fa, b, fb, sa, sb, tout, bias, sr)
    np.testing.assert_array_equal(_np(got), want)


def test_difference_e4m3_output_overflow() -> None:
    """torch 2.13 CPU saturates the E4M3 cast (0x7E = 448); fp8ref's cast is OCP's non-saturating one."""
    a = np.full((16, 16), 0x7E, np.uint8)
    got = fp8ref.scaled_mm(a, a, out_dtype=fp8ref.E4M3)
    want = _torch_mm(a, fp8ref.E4M3, a, fp8ref.E4M3, 1.0, 1.0, torch.float8_e4m3fn)
    assert (got.view(np.uint8) == 0x7F).all()
    assert (want & 0x7F == 0x7E).all() or (want & 0x7F == 0x7F).all()


def test_difference_non_power_of_two_scales() -> None:
    """torch (2.13; the torch-cpu backend measures it) rounds a * scale_a to float32 and accumulates in
    float32; fp8ref rounds once."""
    rng = np.random.default_rng(2)
    a = rng.integers(0, 0x7E, (16, 256), dtype=np.uint8)
    b = rng.integers(0, 0x7E, (256, 16), dtype=np.uint8) | np.uint8(0x80) * rng.integers(0, 2, (256, 16),
                                                                                         dtype=np.uint8)
    sa, sb = np.float32(0.1234567), np.float32(3.3333)
    got = fp8ref.scaled_mm(a, b, sa, sb)
    want = _torch_mm(a, fp8ref.E4M3, b, fp8ref.E4M3, sa, sb, torch.float32)
    assert (got != want).any()
    from fp8ref.matmul.oracle import scaled_mm_oracle

    oracle = scaled_mm_oracle(a[:3], fp8ref.E4M3, b[:, :3], fp8ref.E4M3, np.full((3, 256), float(sa)),
                              np.full((256, 3), float(sb)), None, None, fp8ref.FP32)
    np.testing.assert_array_equal(got[:3, :3], oracle)
