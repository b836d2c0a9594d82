"""torch-cuda / torch-cuda-fastaccum on a real GPU (compute capability >= 8.9); skipped elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

import fp8ref
from fp8ref import backends
from fp8ref.formats import FP8_FORMATS


def _reason() -> str | None:
    try:
        from fp8ref.backends.torch_backend import cuda_unavailable_reason
    except ImportError as exc:  # pragma: no cover - torch_backend imports only numpy at module level
        return str(exc)
    return cuda_unavailable_reason()


REASON = _reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=f"needs a CUDA GPU: {REASON}")]


@pytest.mark.parametrize("fmt", [f.name for f in FP8_FORMATS])
@pytest.mark.parametrize("saturate", [False, True])
def test_cuda_casts_follow_the_measured_rule(fmt: str, saturate: bool) -> None:
    """The CUDA conversion is the CPU one (same c10 code): the same measurement, and the same codes, which
    are the reference under the measured rules (float64 rounding, NaN codes, overflow)."""
    be, cpu = backends.get("torch-cuda"), backends.get("torch-cpu")
    assert be.measured.behaviour(fmt) == cpu.measured.behaviour(fmt)
    x16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    rng = np.random.default_rng(0)
    x32 = rng.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32).view(np.float32)
    for x in (x16, x32):
        got = be.quantize(x, fmt, saturate=saturate)
        np.testing.assert_array_equal(got, cpu.quantize(x, fmt, saturate=saturate))
        np.testing.assert_array_equal(got, be.measured.behaviour(fmt).predict(x, saturate))


@pytest.mark.parametrize("name", ["torch-cuda", "torch-cuda-fastaccum"])
@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 17, 5), (64, 256, 48), (5, 1000, 7)])
def test_exactly_summable_products_match_the_reference(name: str, shape) -> None:
    be, ref = backends.get(name), backends.get("reference")
    rng = np.random.default_rng(sum(shape))
    m, k, n = shape
    vals = np.array([0.0, 0.5, 1.0, 1.5, 2.0, -0.5, -1.0, -2.0, 0.25, -0.75])
    a = fp8ref.quantize(rng.choice(vals, (m, k)), "E4M3")
    b = fp8ref.quantize(rng.choice(vals, (k, n)), "E4M3")
    for out in ("float32", "bfloat16", "float16", "E4M3"):
        got = be.scaled_mm(a, b, 0.5, 2.0, out_dtype=out)
        want = ref.scaled_mm(a, b, 0.5, 2.0, out_dtype=out)
        np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
    sa = (2.0 ** rng.integers(-3, 3, (m, 1))).astype(np.float32)
    sb = (2.0 ** rng.integers(-3, 3, (1, n))).astype(np.float32)
    got = be.scaled_mm(a, b, sa, sb, out_dtype="bfloat16")
    want = ref.scaled_mm(a, b, sa, sb, out_dtype="bfloat16")
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize("name", ["torch-cuda", "torch-cuda-fastaccum"])
def test_claimed_accumulation_on_one_k_tile(name: str) -> None:
    """Within one 128-element K tile the claimed tensor-core model must reproduce the GPU bit for bit."""
    be, ref = backends.get(name), backends.get("reference")
    claim = be.capabilities.accumulation
    if claim is None:
        pytest.skip(f"fp8ref has no accumulation model for {be.capabilities.device}")
    rng = np.random.default_rng(5)
    a = fp8ref.quantize(rng.standard_normal((32, 128)), "E4M3")
    b = fp8ref.quantize(rng.standard_normal((128, 32)), "E4M3")
    np.testing.assert_array_equal(be.scaled_mm(a, b), ref.scaled_mm(a, b, accumulate=claim))


def test_cuda_refusals() -> None:
    be = backends.get("torch-cuda")
    a = np.zeros((16, 32), np.uint8)
    b = np.zeros((32, 16), np.uint8)
    with pytest.raises(backends.Unsupported, match="E5M2"):
        be.scaled_mm(a, b, a_format="E5M2", b_format="E5M2")
    with pytest.raises(backends.Unsupported, match="bias"):
        be.scaled_mm(a, b, bias=np.zeros(16, np.float32))
    assert be.capabilities.device.startswith("cuda")
