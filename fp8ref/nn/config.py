"""The training configuration: one frozen dataclass, presets, recipe specs, JSON round trip."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from fp8ref.nn.fp8 import FORMAT_FAMILIES, RECIPES, FP8Recipe, check_accumulate
from fp8ref.nn.model import DEFAULT_FP8_KINDS, LINEAR_KINDS, GPTConfig

PRESETS: dict[str, dict[str, Any]] = {
    # ~28k parameters; the default `fp8ref train` trains it three times
    "tiny": dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=32, steps=500, lr=1e-2, warmup=40),
    # ~200k parameters
    "small": dict(
        n_layer=4, n_head=4, n_embd=64, block_size=64, batch_size=16, steps=1500, lr=2e-3, warmup=100
    ),
}
DEFAULT_COMPARE: tuple[str, ...] = ("fp32", "fp8-amax", "fp8-cscale")
_SPEC = re.compile(r"^(fp32|fp8-amax|fp8-cscale|fp8-delayed|fp8-current|mxfp8|nvfp4)(?::(-?\d+))?$")


# the model's shape and the schedule's lengths: int fields, each >= 1
_SIZES = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "steps", "warmup")
# the kind of every TrainConfig field (checked in __post_init__; config.json is hostile input)
_KINDS: dict[str, str] = {
    **dict.fromkeys(("recipe", "formats", "backend", "preset", "loss_scale"), "str"),
    **dict.fromkeys(("accumulate", "data"), "str?"),
    "fp8_layers": "tuple",
    **dict.fromkeys(("lr", "min_lr_ratio", "weight_decay", "grad_clip"), "float"),
    **dict.fromkeys(
        (
            "bias",
            "grad_margin",
            "delayed_history",
            *_SIZES,
            "seed",
            "data_seed",
            "corpus_bytes",
            "eval_every",
            "eval_batches",
            "checkpoint_every",
        ),
        "int",
    ),
}
_POSITIVE = (
    *_SIZES,
    "eval_every",
    "eval_batches",
    "checkpoint_every",
    "delayed_history",
    "corpus_bytes",
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (``config.json``). Same config -> same ``metrics.jsonl``."""

    recipe: str = "fp32"
    bias: int = 4  # fp8-cscale: the one constant scaling bias
    formats: str = "ocp"
    accumulate: str | None = "exact"  # None: the backend's own accumulation
    fp8_layers: tuple[str, ...] = DEFAULT_FP8_KINDS
    grad_margin: int = 3
    delayed_history: int = 16
    backend: str = "reference"
    preset: str = "tiny"
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 32
    block_size: int = 32
    batch_size: int = 32
    steps: int = 500
    lr: float = 1e-2
    warmup: int = 40
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    data: str | None = None  # a file of bytes; None: the embedded Markov corpus
    data_seed: int = 0
    corpus_bytes: int = 200_000
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 100
    loss_scale: str = (
        "auto"  # "auto" (dynamic for fp16 accumulation, else none), "none", "dynamic", or a number
    )

    def __post_init__(self) -> None:
        if isinstance(self.fp8_layers, list):  # a JSON list (or a caller's list) becomes the tuple
            object.__setattr__(self, "fp8_layers", tuple(self.fp8_layers))
        self._check_types()
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {list(RECIPES)}, got {self.recipe!r}")
        if self.formats not in FORMAT_FAMILIES:
            raise ValueError(f"formats must be one of {list(FORMAT_FAMILIES)}, got {self.formats!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {self.preset!r}")
        bad = [k for k in self.fp8_layers if k not in LINEAR_KINDS]
        if bad:
            raise ValueError(f"fp8_layers: unknown layer kind(s) {bad}; valid: {list(LINEAR_KINDS)}")
        for name in _POSITIVE:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("seed", "data_seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        for name in ("weight_decay", "grad_clip"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.loss_scale not in ("auto", "none", "dynamic"):
            try:
                if not (float(self.loss_scale) > 0 and math.isfinite(float(self.loss_scale))):
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"loss_scale must be 'auto', 'none', 'dynamic' or a finite positive number, "
                    f"got {self.loss_scale!r}"
                ) from None
        self.model_config(1)  # the model's own rules (n_embd divisible by n_head, ...)
        check_accumulate(self.accumulate, self.formats, self.recipe)
        if self.recipe != "fp32":
            self.fp8_recipe()  # validates bias, formats

    def _check_types(self) -> None:
        """Every field has its type (``bool`` is not an integer); a message names the field."""
        for f in fields(self):
            v = getattr(self, f.name)
            kind = _KINDS[f.name]
            if kind == "int":
                ok = isinstance(v, int) and not isinstance(v, bool)
                want = "an integer"
            elif kind == "float":
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
                want = "a number"
            elif kind == "str":
                ok = isinstance(v, str)
                want = "a string"
            elif kind == "str?":
                ok = v is None or isinstance(v, str)
                want = "a string or null"
            else:
                ok = isinstance(v, tuple) and all(isinstance(k, str) for k in v)
                want = "a list of strings"
            if not ok:
                raise ValueError(f"{f.name} must be {want}, got {v!r}")

    # ---- derived ----------------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """The recipe spec: ``fp8-cscale:<bias>`` for CSCALE, the recipe name otherwise."""
        return f"fp8-cscale:{self.bias}" if self.recipe == "fp8-cscale" else self.recipe

    def fp8_recipe(self) -> FP8Recipe:
        return FP8Recipe(
            name=self.recipe,
            formats=self.formats,
            bias=int(self.bias),
            grad_margin=self.grad_margin,
            accumulate=self.accumulate,
            history=self.delayed_history,
        )

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            vocab_size=vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
        )

    def loss_scaling(self) -> tuple[str, float]:
        """``("none", 1.0)``, ``("static", s)`` or ``("dynamic", initial scale)``."""
        ls = self.loss_scale
        if ls == "auto":
            fp16 = (
                self.recipe != "fp32"
                and isinstance(self.accumulate, str)
                and self.accumulate.startswith("fp16")
            )
            ls = "dynamic" if fp16 else "none"
        if ls == "none":
            return "none", 1.0
        if ls == "dynamic":
            return "dynamic", 2.0**12
        return "static", float(ls)

    # ---- (de)serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fp8_layers"] = list(self.fp8_layers)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def sha256(self) -> str:
        """The SHA-256 of :meth:`to_json` (``config.json``): a checkpoint records it, a resume checks it."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        if not isinstance(d, dict):
            raise ValueError(f"config: expected a JSON object of fields, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}")
        return cls(**d)

    @classmethod
    def from_preset(cls, preset: str = "tiny", **overrides: Any) -> TrainConfig:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
        return cls(preset=preset, **{**PRESETS[preset], **overrides})

    def with_recipe(self, spec: str) -> TrainConfig:
        """A copy running the recipe spec ``name`` or ``fp8-cscale:<bias>``."""
        name, bias = parse_recipe(spec)
        return replace(self, recipe=name, bias=self.bias if bias is None else bias)


def parse_recipe(spec: str) -> tuple[str, int | None]:
    """``"fp8-cscale:6"`` -> ``("fp8-cscale", 6)``; ``"fp8-amax"`` -> ``("fp8-amax", None)``."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise ValueError(
            f"recipe: {spec!r} is not one of {list(RECIPES)} (CSCALE may carry a bias: 'fp8-cscale:4')"
        )
    name, bias = m.group(1), m.group(2)
    if bias is not None and name != "fp8-cscale":
        raise ValueError(f"recipe: only fp8-cscale takes a bias, got {spec!r}")
    return name, None if bias is None else int(bias)
