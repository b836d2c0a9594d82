"""torch._scaled_mm behind the backend protocol: layout, padding, refusals, and the CPU deviations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import fp8ref
from fp8ref import backends

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")

from fp8ref.backends.torch_backend import (  # noqa: E402
    CPU_RULES,
    CUDA_RULES,
    TorchBackend,
    claimed_accumulation,
    pad_to,
    prepare_scaled_mm,
)


@pytest.fixture(scope="module")
def cuda_rules_on_cpu() -> TorchBackend:
    """torch-cpu held to the CUDA rules (padding to 16, CUDA's refusals): exercises them without a GPU."""
    return TorchBackend("torch-cpu-cudarules", "cpu", rules=replace(CUDA_RULES, device="cpu (CUDA rules)"))


def _exact_operands(rng: np.random.Generator, m: int, k: int, n: int, fa: str = "E4M3", fb: str = "E4M3"):
    """Codes of small dyadic values: every product and every partial sum is exact in float32, so any
    summation order gives the exact result."""
    vals = np.array([0.0, 0.5, 1.0, 1.5, 2.0, -0.5, -1.0, -2.0, 0.25, -0.75])
    a = fp8ref.quantize(rng.choice(vals, (m, k)), fa)
    b = fp8ref.quantize(rng.choice(vals, (k, n)), fb)
    return a, b


SHAPES = [(1, 1, 1), (3, 17, 5), (16, 32, 16), (7, 48, 33), (5, 100, 3)]
OUTS = ["float32", "float16", "bfloat16", "E4M3", "E5M2"]


@pytest.mark.parametrize("name", ["torch-cpu", "torch-cpu-fastaccum", "cudarules"])
@pytest.mark.parametrize("shape", SHAPES)
def test_exactly_summable_products_match_the_reference(name: str, shape, cuda_rules_on_cpu) -> None:
    be = cuda_rules_on_cpu if name == "cudarules" else backends.get(name)
    ref = backends.get("reference")
    rng = np.random.default_rng(sum(shape))
    m, k, n = shape
    a, b = _exact_operands(rng, m, k, n)
    for out in OUTS:
        got = be.scaled_mm(a, b, 0.5, 2.0, out_dtype=out)
        want = ref.scaled_mm(a, b, 0.5, 2.0, out_dtype=out)
        assert got.dtype == want.dtype and got.shape == (m, n)
        np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
    sa = (2.0 ** rng.integers(-3, 3, (m, 1))).astype(np.float32)  # powers of two: exact row-wise scaling
    sb = (2.0 ** rng.integers(-3, 3, (1, n))).astype(np.float32)
    got = be.scaled_mm(a, b, sa, sb, out_dtype="bfloat16", bias=np.full(n, 0.25, np.float32))
    want = ref.scaled_mm(a, b, sa, sb, out_dtype="bfloat16", bias=np.full(n, 0.25, np.float32))
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


def test_padding_and_layout(cuda_rules_on_cpu) -> None:
    rng = np.random.default_rng(1)
    a, b = _exact_operands(rng, 3, 17, 5)
    p = prepare_scaled_mm(cuda_rules_on_cpu, a, b, 1.0, 1.0, a_format="E4M3", b_format="E4M3", bias=None,
                          out_dtype=np.float32, scale_result=None)
    assert (p.k_padded, p.n_padded, p.m, p.n) == (32, 16, 3, 5)
    assert tuple(p.a.shape) == (3, 32) and tuple(p.b.shape) == (32, 16)
    assert p.b.stride() == (1, 32)  # column-major, as cuBLASLt wants
    pa = p.a.view(torch.uint8).numpy()
    pb = p.b.contiguous().view(torch.uint8).numpy()
    assert (pa[:, 17:] == 0).all() and (pb[17:, :] == 0).all() and (pb[:, 5:] == 0).all()
    np.testing.assert_array_equal(pa[:, :17], a)
    np.testing.assert_array_equal(pb[:17, :5], b)
    # row-wise: padded columns of b get scale 1, padded bias entries 0
    sb = np.full((1, 5), 0.5, np.float32)
    p = prepare_scaled_mm(cuda_rules_on_cpu, a, b, np.ones((3, 1), np.float32), sb, a_format="E4M3",
                          b_format="E4M3", bias=np.ones(5, np.float32), out_dtype="bfloat16",
                          scale_result=None)
    assert p.scale_b.numpy().tolist() == [[0.5] * 5 + [1.0] * 11]
    assert p.bias.dtype == torch.bfloat16 and p.bias.float().numpy().tolist() == [1.0] * 5 + [0.0] * 11
    # CPU rules do not pad
    p = prepare_scaled_mm(backends.get("torch-cpu"), a, b, 1.0, 1.0, a_format="E4M3", b_format="E4M3",
                          bias=None, out_dtype=np.float32, scale_result=None)
    assert (p.k_padded, p.n_padded) == (17, 5)
    assert pad_to(0, 16) == 0 and pad_to(1, 16) == 16 and pad_to(16, 16) == 16 and pad_to(33, 16) == 48


def test_cuda_refusals(cuda_rules_on_cpu) -> None:
    be = cuda_rules_on_cpu
    rng = np.random.default_rng(2)
    a, b = _exact_operands(rng, 4, 32, 16, "E5M2", "E5M2")
    with pytest.raises(backends.Unsupported, match="E5M2"):
        be.scaled_mm(a, b, a_format="E5M2", b_format="E5M2")
    assert backends.get("torch-cpu").scaled_mm(a, b, a_format="E5M2", b_format="E5M2").shape == (4, 16)
    a, b = _exact_operands(rng, 4, 32, 16)
    with pytest.raises(backends.Unsupported, match="bias with out_dtype=float32"):
        be.scaled_mm(a, b, bias=np.zeros(16, np.float32))
    with pytest.raises(backends.Unsupported, match="not exactly representable in bfloat16"):
        be.scaled_mm(a, b, bias=np.full(16, 1.0 + 2.0 ** -12, np.float32), out_dtype="bfloat16")
    with pytest.raises(backends.Unsupported, match="float16"):
        be.scaled_mm(a, b, bias=np.full(16, 1.0 + 2.0 ** -12, np.float32), out_dtype="float16")
    with pytest.raises(backends.Unsupported, match="E4M3FNUZ"):
        be.scaled_mm(a, b, out_dtype="E4M3FNUZ")


@pytest.mark.parametrize("name", ["torch-cpu", "cudarules"])
def test_refusals_and_argument_errors(name: str, cuda_rules_on_cpu) -> None:
    be = cuda_rules_on_cpu if name == "cudarules" else backends.get(name)
    rng = np.random.default_rng(3)
    a, b = _exact_operands(rng, 4, 256, 16)
    with pytest.raises(backends.Unsupported, match="block-1x128"):
        be.scaled_mm(a, b, np.ones((4, 2), np.float32), np.ones((2, 16), np.float32))
    with pytest.raises(backends.Unsupported, match="granularities"):
        be.scaled_mm(a, b, np.ones((4, 1), np.float32), 1.0)
    e8 = np.ones((4, 8), np.float32).astype(ml_dtypes.float8_e8m0fnu)
    with pytest.raises(backends.Unsupported):
        be.scaled_mm(a, b, e8, np.ones((8, 16), np.float32).astype(ml_dtypes.float8_e8m0fnu))
    with pytest.raises(backends.Unsupported, match="accumulate"):
        be.scaled_mm(a, b, accumulate="h100-fp8")
    assert be.scaled_mm(a, b, accumulate=be.capabilities.accumulation).shape == (4, 16)
    # bad input: the reference's own errors
    for kwargs, exc in [(dict(b=b[:5]), ValueError), (dict(out_dtype="int8"), ValueError),
                        (dict(scale_result=2.0), ValueError), (dict(a=a.astype(np.int16)), ValueError),
                        (dict(bias=np.zeros(3)), ValueError)]:
        args = dict(a=a, b=b) | kwargs
        with pytest.raises(exc):
            backends.get("reference").scaled_mm(**args)
        with pytest.raises(exc):
            be.scaled_mm(**args)
    # scale_result: FP8 output only, ignored elsewhere under strict_torch (as torch does)
    assert be.scaled_mm(a, b, scale_result=2.0, strict_torch=True).dtype == np.float32


def test_fp8_output_with_scale_result() -> None:
    be = backends.get("torch-cpu")
    ref = backends.get("reference")
    rng = np.random.default_rng(4)
    a, b = _exact_operands(rng, 5, 24, 7)
    for out in ("E4M3", "E5M2"):
        got = be.scaled_mm(a, b, 1.0, 1.0, out_dtype=out, scale_result=4.0)
        want = ref.scaled_mm(a, b, 1.0, 1.0, out_dtype=out, scale_result=4.0)
        assert got.dtype == want.dtype == fp8ref.format(out).ml_dtype
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_cpu_scale_rule_is_the_measured_one() -> None:
    """How torch's CPU _scaled_mm applies the scales is measured (the backend's "scaled_mm scales"
    observation, on its own decisive input); here on another one: with s = float32(1/3), a = b = 3, the
    reference scales the exact sum, RN(9 s^2) = 1 + 2^-23, where element-wise scaling before the GEMM
    (torch 2.13: each operand multiplied by its scale, rounded to float32) gives RN(RN(3s) * RN(3s)) = 1."""
    s = np.float32(1 / 3)
    a = fp8ref.quantize(np.array([[3.0]]), "E4M3")
    be, ref = backends.get("torch-cpu"), backends.get("reference")
    exact = float(np.float32(1 + 2.0 ** -23))
    x = np.float32(np.float32(3) * s)
    elementwise = float(np.float32(x * x))
    assert elementwise == 1.0
    (obs,) = [o for o in be.measured.observations if o.name == "scaled_mm scales"]
    for sa, sb in [(s, s), (np.full((1, 1), s), np.full((1, 1), s))]:
        assert ref.scaled_mm(a, a, sa, sb).tolist() == [[exact]]
        got = be.scaled_mm(a, a, sa, sb)[0, 0]
        if got == exact:
            assert obs.deviation is None and obs.measured == obs.reference
        else:
            assert got == elementwise
            assert obs.measured.startswith("each operand multiplied by its scale")
            assert obs.deviation in be.capabilities.deviations


def test_fast_accum_on_cpu_is_measured() -> None:
    """Whether use_fast_accum changes a CPU product is measured (torch 2.13: it does not); checked here on
    another product."""
    rng = np.random.default_rng(6)
    a = fp8ref.quantize(rng.standard_normal((8, 700)), "E4M3")
    b = fp8ref.quantize(rng.standard_normal((700, 9)), "E4M3")
    s = np.float32(0.3)
    same = np.array_equal(backends.get("torch-cpu-fastaccum").scaled_mm(a, b, s, s),
                          backends.get("torch-cpu").scaled_mm(a, b, s, s))
    (obs,) = [o for o in backends.get("torch-cpu-fastaccum").measured.observations if "fast_accum" in o.name]
    assert (obs.measured == "identical results") == same


def test_capabilities_and_claims() -> None:
    caps = backends.get("torch-cpu").capabilities
    assert caps.accumulation == "fp32" and not caps.accumulation_selectable
    assert caps.granularities == (("tensor", "tensor"), ("row", "column"))
    assert caps.mm_formats == CPU_RULES.mm_formats and len(caps.mm_formats) == 16
    assert backends.get("torch-cpu-fastaccum").fast_accum and not backends.get("torch-cpu").fast_accum
    assert claimed_accumulation("NVIDIA H100 80GB HBM3", (9, 0), False) == "h100-fp8"
    assert claimed_accumulation("NVIDIA H100 80GB HBM3", (9, 0), True) == "h100-fp8-fastaccum"
    assert claimed_accumulation("NVIDIA H200", (9, 0), True) == "h200-fp8-fastaccum"
    assert claimed_accumulation("NVIDIA L40S", (8, 9), False) == "l40s-fp8"
    assert claimed_accumulation("NVIDIA GeForce RTX 4090", (8, 9), True) == "ada-fp8-fastaccum"
    assert claimed_accumulation("NVIDIA B200", (10, 0), True) == "b200-fp8"
    assert claimed_accumulation("NVIDIA A100", (8, 0), False) is None
    from fp8ref.accum import PRESETS

    for gpu, cap in [("H100", (9, 0)), ("H200", (9, 0)), ("L40S", (8, 9)), ("RTX 4090", (8, 9)),
                     ("B200", (10, 0))]:
        for fast in (False, True):
            assert claimed_accumulation(gpu, cap, fast) in PRESETS


def test_torch_amax() -> None:
    be = backends.get("torch-cpu")
    x = np.array([[1.0, -3.0, np.nan], [2.0, -0.5, 4.0]], np.float32)
    for nan in ("propagate", "ignore"):
        for axis in (None, 0, 1, (0, 1)):
            got = be.amax(x, axis, nan=nan)
            want = fp8ref.amax(x, axis, nan=nan)
            np.testing.assert_array_equal(got, want)
            assert np.asarray(got).dtype == np.float32
    x64 = np.array([1.0 + 2.0 ** -40, 3.0000001], np.float64)
    assert be.amax(x64) == fp8ref.amax(x64)
    with pytest.raises(backends.Unsupported, match="amax"):
        be.amax(np.zeros((0,), np.float32))
    with pytest.raises(ValueError, match="axis"):
        be.amax(x, 5)


@pytest.mark.parametrize("grans", [("tensor", "tensor"), ("row", "column")])
def test_scaled_tensor_operands(grans) -> None:
    """ScaledTensor operands carry their own scales, as in fp8ref.scaled_mm; power-of-two scales of
    dyadic values keep every sum exact, so torch equals the reference bit for bit."""
    from fp8ref.scaling import Current

    rng = np.random.default_rng(7)
    vals = np.array([0.0, 0.5, 1.0, 1.5, 2.0, -0.5, -1.0, -2.0, 0.25, -0.75], np.float32)
    x, w = rng.choice(vals, (6, 40)), rng.choice(vals, (40, 10))
    A = fp8ref.quantize_scaled(x, "E4M3", Current(granularity=grans[0], power_of_2=True))
    B = fp8ref.quantize_scaled(w, "E4M3", Current(granularity=grans[1], power_of_2=True))
    got = backends.get("torch-cpu").scaled_mm(A, B)
    np.testing.assert_array_equal(got, backends.get("reference").scaled_mm(A, B))
    with pytest.raises(ValueError, match="ScaledTensor"):
        backends.get("torch-cpu").scaled_mm(A, B, 2.0)
    blocks = fp8ref.quantize_scaled(x, "E4M3", Current(granularity=(1, 32)))
    with pytest.raises(backends.Unsupported):
        backends.get("torch-cpu").scaled_mm(blocks, B)
