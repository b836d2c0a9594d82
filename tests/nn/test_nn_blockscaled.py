"""The block-scaled trainer recipes mxfp8 and nvfp4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fp8ref
from fp8ref.nn import TrainConfig, train
from fp8ref.nn import checkpoint as ckpt
from fp8ref.nn.blockscaled import BlockScaledLinear, nvfp4_high_precision_layers
from fp8ref.nn.fp8 import FP8Recipe
from fp8ref.nn.train import _train, build_model

MICRO = dict(steps=12, n_layer=2, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_every=6,
             checkpoint_every=4)


def micro(recipe: str, **kw) -> TrainConfig:  # noqa: ANN003
    return TrainConfig.from_preset("tiny", **{**MICRO, **kw}).with_recipe(recipe)


def _layer(recipe: str) -> BlockScaledLinear:
    return BlockScaledLinear("h.0.mlp.fc", FP8Recipe(name=recipe))


@pytest.mark.parametrize("recipe", ["mxfp8", "nvfp4"])
def test_gemms_are_products_of_the_quantised_operands(recipe):
    """Each GEMM is the exact product of the block-dequantised operands (exact accumulation, one
    rounding), each operand quantised from high precision along that GEMM's reduction dimension."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    w = (rng.standard_normal((64, 48)) * 0.1).astype(np.float32)
    dy = (rng.standard_normal((32, 48)) * 1e-3).astype(np.float32)
    lin = _layer(recipe)
    y, cache = lin.forward("l", x, w, None)
    dx, dw, _ = lin.backward("l", dy, cache)
    lin2 = _layer(recipe)
    qx, qw = lin2._quantize(x, "x", 1), lin2._quantize(w, "w", 0, tile16=recipe == "nvfp4")
    assert qx.block in ((1, 32), (1, 16)) and qw.block in ((32, 1), (16, 16))
    want = (qx.dequantize(np.float64) @ qw.dequantize(np.float64))
    np.testing.assert_allclose(y, want, rtol=2e-6, atol=1e-30)
    for got, exact in ((y, x @ w), (dx, dy @ w.T), (dw, x.T @ dy)):
        rel = np.linalg.norm(got - exact) / np.linalg.norm(exact)
        assert rel < (0.05 if recipe == "mxfp8" else 0.25), rel


def test_nvfp4_weight_tiles_serve_both_orientations():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 48)).astype(np.float32)
    lin = _layer("nvfp4")
    qw = lin._quantize(w, "w", 0, tile16=True)
    direct = fp8ref.quantize_scaled(w, fp8ref.E2M1, fp8ref.NVFP4(tile=(16, 16)))
    assert np.array_equal(qw.codes, direct.codes) and np.array_equal(qw.scale_codes, direct.scale_codes)


def test_nvfp4_keeps_the_last_blocks_in_high_precision():
    assert nvfp4_high_precision_layers(2) == {1}
    assert nvfp4_high_precision_layers(12) == {10, 11}
    cfg = micro("nvfp4")
    _, fp8 = build_model(cfg, 16)
    assert fp8 and all(name.startswith("h.0.") for name in fp8)
    _, fp8 = build_model(micro("mxfp8"), 16)
    assert any(name.startswith("h.1.") for name in fp8)
    assert all(isinstance(lin, BlockScaledLinear) for lin in fp8.values())


@pytest.mark.parametrize("recipe", ["mxfp8", "nvfp4"])
def test_recipes_train_and_resume_bit_identically(tmp_path: Path, recipe: str) -> None:
    cfg = micro(recipe)
    full = train(cfg, tmp_path / "full")
    part = tmp_path / "part"
    _train(cfg, part, ops=None, resume=False, progress=False, desc=None, stop_after=7)
    resumed = train(cfg, part, resume=True)
    assert (part / "metrics.jsonl").read_bytes() == (tmp_path / "full" / "metrics.jsonl").read_bytes()
    for k in full.params:
        np.testing.assert_array_equal(resumed.params[k], full.params[k])
    a, _ = ckpt.load(part / "checkpoints" / "step_0000012.npz")
    if recipe == "nvfp4":
        assert any(k.endswith(".sr_calls") for k in a)


def test_recipes_learn_like_fp32(tmp_path: Path) -> None:
    def losses(recipe: str) -> list[float]:
        train(micro(recipe, steps=60, eval_every=60, checkpoint_every=60), tmp_path / recipe)
        lines = (tmp_path / recipe / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines]

    ref = losses("fp32")
    for recipe in ("mxfp8", "nvfp4"):
        got = losses(recipe)
        assert got[-1] < got[0] - 0.1 and abs(got[-1] - ref[-1]) < 0.1, (recipe, got[-1], ref[-1])


def test_block_recipes_refuse_true_magnitude_accumulators():
    for recipe in ("mxfp8", "nvfp4"):
        with pytest.raises(ValueError, match="accumulate"):
            FP8Recipe(name=recipe, accumulate="fp16")
