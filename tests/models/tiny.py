"""A tiny random BERT sentence encoder written in the Hugging Face / sentence-transformers layout, so the
loader, the encoder and the commands can be tested without the 90 MB package: 2 layers, 16 channels,
2 heads, a WordPiece vocabulary of a few hundred words, max_seq_length 12."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

WORDS = (
    "the a an and of to in on at for with is are was it this that rain sun snow wind cold warm cat dog "
    "bird fish bread pasta soup tea coffee train car bus plane road city sea river hill tree leaf red blue "
    "green big small old new fast slow i you we they like see eat drink go come today night morning"
).split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'"


def vocab() -> dict[str, int]:
    toks = SPECIAL + WORDS + list(LETTERS) + ["##" + c for c in LETTERS]
    return {t: i for i, t in enumerate(dict.fromkeys(toks))}


def config(n_vocab: int, **over: object) -> dict:
    c = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_size": 16,
        "intermediate_size": 32,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 32,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "position_embedding_type": "absolute",
        "type_vocab_size": 2,
        "vocab_size": n_vocab,
        "pad_token_id": 0,
    }
    c.update(over)
    return c


def tokenizer_json(v: dict[str, int]) -> str:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordPiece(v, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", v["[CLS]"]), ("[SEP]", v["[SEP]"])]
    )
    return tok.to_str()


def tensors(cfg: dict, seed: int = 0) -> dict[str, np.ndarray]:
    from fp8ref.models.bert import BertConfig

    bc = BertConfig.from_dict(cfg)
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in bc.hf_shapes().items():
        if name.endswith("LayerNorm.weight"):
            out[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[name] = (0.3 * rng.standard_normal(shape)).astype(np.float32)
    out["embeddings.position_ids"] = np.arange(cfg["max_position_embeddings"], dtype=np.int64)[None]
    return out


def files(seed: int = 0, max_seq_length: int = 12, **cfg_over: object) -> dict[str, bytes]:
    """The model's files, name -> bytes."""
    from safetensors.numpy import save

    v = vocab()
    cfg = config(len(v), **cfg_over)
    return {
        "config.json": json.dumps(cfg).encode(),
        "model.safetensors": save(tensors(cfg, seed)),
        "tokenizer.json": tokenizer_json(v).encode(),
        "sentence_bert_config.json": json.dumps(
            {"max_seq_length": max_seq_length, "do_lower_case": False}
        ).encode(),
        "1_Pooling/config.json": json.dumps(
            {
                "word_embedding_dimension": cfg["hidden_size"],
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        ).encode(),
    }


def write_dir(root: Path, fs: dict[str, bytes] | None = None) -> Path:
    for name, data in (fs or files()).items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def write_zip(path: Path, fs: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in (fs or files()).items():
            z.writestr(name, data)
    return path
