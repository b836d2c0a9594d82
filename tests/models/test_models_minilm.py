"""The real all-MiniLM-L6-v2 (skipped without its packages): float32 against the independent PyTorch
implementation (and transformers' BertModel where installed), token ids against the tokenizers package,
the public API, and the FP8 path on real activations. A few sentences only."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from typing import Any

import numpy as np
import pytest

import fp8ref
from fp8ref.models import minilm, recipes

SENTENCES = [
    "The striker scored twice in the second half.",
    "Heavy rain is expected tonight.",
    "Ünïcödé café, naïve 中文 and an emoji 😀!",
    "x",
    " ".join(["antidisestablishmentarianism"] * 60),  # 360 word pieces: cut to 256 tokens
]


@pytest.fixture(scope="module")
def checkpoint(minilm_model: Any) -> tuple[dict[str, np.ndarray], dict, str]:
    from safetensors.numpy import load

    with zipfile.ZipFile(minilm.package_zip().path) as z:
        return (
            load(z.read("model.safetensors")),
            json.loads(z.read("config.json")),
            z.read("tokenizer.json").decode(),
        )


def test_token_ids_equal_the_tokenizers_reference(minilm_model: Any, checkpoint: Any) -> None:
    from tokenizers import Tokenizer

    ref = Tokenizer.from_str(checkpoint[2])
    ref.no_padding()
    ref.enable_truncation(max_length=256)
    tok = minilm_model.tokenize(SENTENCES)
    b = tok.batch
    for i, s in enumerate(SENTENCES):
        ids = b.ids[b.starts[i] : b.starts[i] + b.lengths[i]].tolist()
        assert ids == ref.encode(s).ids, s
    vocab = json.loads(checkpoint[2])["model"]["vocab"]
    first = b.ids[: b.lengths[0]].tolist()
    assert first[0] == vocab["[CLS]"] and first[-1] == vocab["[SEP]"]
    assert first[1:4] == [vocab["the"], vocab["striker"], vocab["scored"]]
    assert tok.truncated == (4,) and tok.full_lengths[0] > 256 and b.lengths[4] == 256
    assert b.ids[b.starts[4] + 255] == vocab["[SEP]"]


def test_float32_equals_the_pytorch_implementation(minilm_model: Any, checkpoint: Any) -> None:
    pytest.importorskip("torch")
    from .torch_bert import embed

    ids, mask = minilm_model.tokenize(SENTENCES).batch.padded()
    ref = embed(checkpoint[0], checkpoint[1], ids, mask)
    with pytest.warns(UserWarning, match="1 sentence"):
        got = minilm_model.embed(SENTENCES)
    assert got.shape == (5, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers is not installed")
def test_float32_equals_transformers_bert_model(minilm_model: Any, checkpoint: Any) -> None:
    import torch
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(**checkpoint[1]), add_pooling_layer=False).eval()
    sd = {k: torch.from_numpy(v) for k, v in checkpoint[0].items() if not k.startswith("pooler.")}
    model.load_state_dict(sd, strict=False)
    ids, mask = minilm_model.tokenize(SENTENCES).batch.padded()
    with torch.no_grad():
        h = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    m = torch.from_numpy(mask).float()[..., None]
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1).numpy()
    with pytest.warns(UserWarning):
        got = minilm_model.embed(SENTENCES)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_load_is_cached(minilm_model: Any) -> None:
    m = minilm.load()
    assert minilm.load() is m and m.sha256 == minilm_model.sha256


def test_fp8_first_layer_on_real_activations(minilm_model: Any) -> None:
    rec = recipes.resolve("fp8-amax")
    lins = recipes.executors(minilm_model.config, rec)
    for name in ("L0.query", "L0.mlp_out"):
        lins[name].capture = []
    batch = minilm_model.tokenize(SENTENCES[:4]).batch
    out = minilm_model.forward(batch, lins)
    ref = minilm_model.forward(batch, {})
    assert float((out.embeddings.astype(np.float64) * ref.embeddings).sum(axis=1).min()) > 0.99
    for name in ("L0.query", "L0.mlp_out"):
        (cap,) = lins[name].capture
        fmt = rec.fwd_format
        for key in ("x", "w"):
            t = cap[key]
            b = cap[f"bias_{key}"]
            assert float(np.abs(t).max()) * 2.0**b <= fmt.max < float(np.abs(t).max()) * 2.0 ** (b + 1)
            assert np.array_equal(
                cap[f"{key}_codes"], fp8ref.quantize(t * np.float32(2.0**b), fmt, saturate=True)
            )
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
        assert cap["x"].shape[0] == batch.n_tokens  # packed: no padding rows in the FP8 tensor
