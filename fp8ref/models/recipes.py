"""Recipes for a pretrained model's linear layers: the trainer's, taken from where the trainer defines them.

A recipe spec (``"fp32"``, ``"fp8-amax"``, ``"fp8-cscale:4"``, ``"fp8-current"``, ``"fp8-delayed"``, and
whatever else :func:`fp8ref.nn.config.parse_recipe` and :class:`fp8ref.nn.fp8.FP8Recipe` accept) becomes one
executor per linear layer: :class:`fp8ref.nn.fp8.FP8Linear`, the trainer's FP8 layer, so a model runs its
linear layers exactly as the trainer's forward pass does. Nothing here lists recipe names: a recipe the
trainer learns flows through unchanged, and an unknown one is refused with the trainer's message, which
names the valid choices.

Inference-only notes: a stateful recipe (``fp8-delayed``) keeps one state per layer for the whole
:meth:`~fp8ref.models.minilm.MiniLM.embed` call and updates it after each sub-batch, as the trainer's forward
pass does; the first sub-batch is cast with the recipe's initial scale.
"""

from __future__ import annotations

from typing import Any

from fp8ref.nn.blockscaled import linear_for
from fp8ref.nn.config import parse_recipe
from fp8ref.nn.fp8 import FORMAT_FAMILIES, FP8Recipe
from fp8ref.nn.fp8 import check_accumulate as fp8_check_accumulate


def resolve(recipe: Any, *, formats: str = "ocp", accumulate: str | None = "exact") -> FP8Recipe | None:
    """``None`` for float32 (``None`` or ``"fp32"``), an :class:`FP8Recipe` otherwise. A spec string is
    completed with ``formats`` and ``accumulate``; an ``FP8Recipe`` is used as it is."""
    if recipe is None:
        return None
    if isinstance(recipe, FP8Recipe):
        return recipe
    if not isinstance(recipe, str):
        raise TypeError(f"recipe must be a spec string or an FP8Recipe, got {type(recipe).__name__}")
    name, bias = parse_recipe(recipe)
    if name == "fp32":
        return None
    if formats not in FORMAT_FAMILIES:
        raise ValueError(f"formats must be one of {list(FORMAT_FAMILIES)}, got {formats!r}")
    check_accumulate(accumulate, formats)
    kw: dict[str, Any] = {"name": name, "formats": formats, "accumulate": accumulate}
    if bias is not None:
        kw["bias"] = bias
    return FP8Recipe(**kw)


def check_accumulate(accumulate: Any, formats: str = "ocp", ops: Any = None) -> None:
    """Refuse, before any work, an accumulation the linear layers could not run: the trainer's rule
    (:func:`fp8ref.nn.fp8.check_accumulate`: a preset name taking the family's operand formats, or ``None``)
    and, for an ops object that has one, its own ``check_accumulate`` (a backend that runs only its own
    accumulation raises ``Unsupported``)."""
    fp8_check_accumulate(accumulate, formats)
    check = getattr(ops, "check_accumulate", None)
    if check is not None:
        check(accumulate)


def label(recipe: FP8Recipe | None) -> str:
    """The spec of a resolved recipe: ``fp32``, ``fp8-cscale:<bias>`` or the recipe's name."""
    if recipe is None:
        return "fp32"
    return f"fp8-cscale:{recipe.bias}" if recipe.name == "fp8-cscale" else recipe.name


def executors(cfg: Any, recipe: FP8Recipe | None, ops: Any = None) -> dict[str, Any]:
    """One fresh FP8 linear layer per linear layer of ``cfg.linear_layers()`` (empty for float32): an
    :class:`FP8Linear`, or for the block-scaled recipes (``mxfp8``, ``nvfp4``) the trainer's
    ``BlockScaledLinear``, applied to every linear layer (inference keeps no layer in higher precision)."""
    if recipe is None:
        return {}
    return {name: linear_for(name, recipe, ops) for name, _ in cfg.linear_layers()}


__all__ = ["resolve", "check_accumulate", "label", "executors"]
