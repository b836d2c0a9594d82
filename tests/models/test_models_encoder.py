"""The encoder on a tiny random BERT: float32 against the independent PyTorch implementation, the FP8
path through the ops protocol (bit for bit the paper's formulas for one layer), recipes as the trainer
names them, and what a batch's layout may and may not change."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import fp8ref
from fp8ref.models import recipes
from fp8ref.nn.fp8 import RECIPES, FP8Linear, FP8Recipe, ReferenceOps

from . import tiny

SENTENCES = ["the cat and the dog", "rain today", "we like tea and bread in the morning", "a big red bus"]


def test_float32_equals_the_pytorch_implementation(tiny_model: Any, tiny_dir: Any) -> None:
    pytest.importorskip("torch")
    from safetensors.numpy import load_file

    from .torch_bert import embed as torch_embed

    tok = tiny_model.tokenize(SENTENCES)
    ids, mask = tok.batch.padded()
    ref = torch_embed(
        load_file(tiny_dir / "model.safetensors"),
        json.loads((tiny_dir / "config.json").read_text()),
        ids,
        mask,
    )
    got = tiny_model.embed(SENTENCES)
    assert got.shape == (4, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_embeddings_are_unit_vectors_independent_of_batching(tiny_model: Any) -> None:
    whole = tiny_model.embed(SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(whole.astype(np.float64), axis=1), 1.0, atol=1e-6)
    alone = np.concatenate([tiny_model.embed([s]) for s in SENTENCES])
    split = tiny_model.embed(SENTENCES, max_tokens=8)
    np.testing.assert_allclose(alone, whole, atol=1e-6)
    np.testing.assert_allclose(split, whole, atol=1e-6)


class CountingOps(ReferenceOps):
    """The reference ops, counting calls."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def quantize(self, *a: Any, **k: Any) -> np.ndarray:
        self._count("quantize")
        return super().quantize(*a, **k)

    def amax(self, *a: Any, **k: Any) -> Any:
        self._count("amax")
        return super().amax(*a, **k)

    def scaled_mm(self, *a: Any, **k: Any) -> np.ndarray:
        self._count("scaled_mm")
        assert k["accumulate"] == "exact"
        return super().scaled_mm(*a, **k)


def test_every_linear_layer_goes_through_the_ops_object(tiny_model: Any) -> None:
    ops = CountingOps()
    e8 = tiny_model.embed(SENTENCES, ops=ops, recipe="fp8-amax")
    n = len(tiny_model.config.linear_layers())
    assert ops.calls == {"amax": 2 * n, "quantize": 2 * n, "scaled_mm": n}  # w and x cast, one GEMM each
    assert np.array_equal(e8, tiny_model.embed(SENTENCES, recipe="fp8-amax"))


def _bias(amax: float, fmax: float) -> int:
    """The largest k in [-31, 31] with amax * 2**k <= fmax, by search (the paper's rule)."""
    k = -31
    while k < 31 and amax * 2.0 ** (k + 1) <= fmax:
        k += 1
    return k


@pytest.mark.parametrize("formats", ["ocp", "fnuz"])
def test_first_layer_equals_quantize_and_scaled_mm_computed_independently(
    tiny_model: Any, formats: str
) -> None:
    rec = recipes.resolve("fp8-amax", formats=formats, accumulate="exact")
    lins = recipes.executors(tiny_model.config, rec)
    lin = lins["L0.query"]
    lin.capture = []
    tiny_model.forward(tiny_model.tokenize(SENTENCES).batch, lins)
    (cap,) = lin.capture
    x, w = cap["x"], cap["w"]
    fmt = rec.fwd_format
    assert np.array_equal(w, tiny_model.params["L0.query.w"])
    for t, key in ((x, "x"), (w, "w")):
        b = _bias(float(np.abs(t).max()), float(fmt.max))
        assert cap[f"bias_{key}"] == b
        codes = fp8ref.quantize(t * np.float32(2.0**b), fmt, saturate=True)
        assert np.array_equal(cap[f"{key}_codes"], codes)
    y = fp8ref.scaled_mm(
        cap["x_codes"],
        cap["w_codes"],
        np.float32(2.0 ** -cap["bias_x"]),
        np.float32(2.0 ** -cap["bias_w"]),
        a_format=fmt,
        b_format=fmt,
        out_dtype=np.float32,
        accumulate="exact",
    )
    assert np.array_equal(cap["y"].view(np.uint32), y.view(np.uint32))


def test_every_trainer_recipe_runs(tiny_model: Any) -> None:
    ref = tiny_model.embed(SENTENCES)
    for name in RECIPES:
        e = tiny_model.embed(SENTENCES, recipe=name)
        assert e.shape == ref.shape and np.isfinite(e).all(), name
        cos = (e.astype(np.float64) * ref).sum(axis=1)
        assert cos.min() > (0.999999 if name == "fp32" else 0.9), name
    assert np.array_equal(tiny_model.embed(SENTENCES, recipe=None), ref)


def test_recipe_specs_resolve_as_the_trainer_parses_them() -> None:
    r = recipes.resolve("fp8-cscale:-3", formats="fnuz", accumulate="h100-fp8")
    assert (r.name, r.bias, r.formats, r.accumulate) == ("fp8-cscale", -3, "fnuz", "h100-fp8")
    assert recipes.label(r) == "fp8-cscale:-3" and recipes.label(None) == "fp32"
    assert recipes.resolve("fp32") is None and recipes.resolve(None) is None
    given = FP8Recipe(name="fp8-current", formats="fnuz")
    assert recipes.resolve(given) is given
    with pytest.raises(ValueError, match="fp8-amax") as e:
        recipes.resolve("fp8-bogus")
    assert all(name in str(e.value) for name in RECIPES)
    with pytest.raises(ValueError, match="formats"):
        recipes.resolve("fp8-amax", formats="ieee")
    with pytest.raises(ValueError, match="h100-fp8"):
        recipes.resolve("fp8-amax", accumulate="h999")
    with pytest.raises(TypeError):
        recipes.resolve(3)


def test_delayed_scaling_state_advances_with_each_sub_batch(tiny_model: Any) -> None:
    rec = recipes.resolve("fp8-delayed")
    lins = recipes.executors(tiny_model.config, rec)
    batch = tiny_model.tokenize(SENTENCES).batch
    tiny_model.forward(batch, lins, max_tokens=8)
    hist = lins["L0.query"].scalers["x"].state.amax_history
    assert int((np.asarray(hist) > 0).sum()) == len(batch.split(8))


def test_executors_are_the_trainers_fp8_layer(tiny_model: Any) -> None:
    lins = recipes.executors(tiny_model.config, recipes.resolve("fp8-amax"))
    assert set(lins) == {n for n, _ in tiny_model.config.linear_layers()}
    assert all(type(v) is FP8Linear for v in lins.values())
    assert recipes.executors(tiny_model.config, None) == {}
    from fp8ref.nn.blockscaled import BlockScaledLinear

    for name in ("mxfp8", "nvfp4"):  # the block-scaled recipes run the trainer's block-scaled layer
        lins = recipes.executors(tiny_model.config, recipes.resolve(name))
        assert all(type(v) is BlockScaledLinear for v in lins.values()), name


def test_tokenize_refuses_empty_sentences_and_cuts_long_ones(tiny_model: Any) -> None:
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        tiny_model.tokenize(["rain", "   "])
    with pytest.raises(ValueError, match="no sentences"):
        tiny_model.tokenize([])
    with pytest.raises(TypeError, match="list of strings"):
        tiny_model.tokenize("rain")
    with pytest.raises(TypeError, match="sentence 0 is a int"):
        tiny_model.tokenize([3])
    long = " ".join(tiny.WORDS[:30])
    tok = tiny_model.tokenize(["rain", long])
    assert tok.truncated == (1,) and tok.full_lengths == (32,)
    assert tok.batch.lengths.tolist() == [3, tiny_model.max_seq_length]
    with pytest.warns(UserWarning, match="truncated to 12"):
        tiny_model.embed(["rain", long])
