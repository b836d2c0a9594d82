"""Which cases of a golden set the harness runs, and the checks that make a broken set the set's fault.

Before anything runs, every manifest entry of the selected suites is checked (:func:`plan`):

* its ``op`` must be an operation of its suite (``fp8ref.golden.suites.<suite>.OPS``); an unknown op is an
  invalid set, never a silently passed case;
* an op with no backend operation (``scale_bias``: recipe arithmetic) is counted as *not run*;
* every parameter the op's backend runner reads must be present with a valid value (:data:`PARAMS`), and
  its input tensors declared, so that a missing ``format`` or an unknown format name is reported as the
  set's problem, naming the case and the field -- not as an error of the backend.

Problems raise :class:`fp8ref.golden.SetError` (``fp8ref conform`` exits 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fp8ref.golden.manifest import SetError
from fp8ref.golden.ops import suite_module

__all__ = ["OpSpec", "PARAMS", "plan", "check_entry"]

Check = Callable[[Any], None]  # raises ValueError / TypeError with the problem


def _format(v: Any) -> None:
    import fp8ref

    if not isinstance(v, str):
        raise TypeError(f"must be a format name, got {type(v).__name__}")
    fp8ref.format(v)


def _tensor_core_format(v: Any) -> None:
    """An input-format name of some matrix instruction (``fp8ref.accum.IN_FORMATS``: format names, and
    AMD's ``xf32``, fp32 operands the instruction truncates)."""
    from fp8ref.accum import IN_FORMATS

    if not isinstance(v, str):
        raise TypeError(f"must be a format name, got {type(v).__name__}")
    if v not in IN_FORMATS:
        raise ValueError(f"unknown matrix-instruction input format {v!r}; valid: {', '.join(IN_FORMATS)}")


def _cast_format(v: Any) -> None:
    import fp8ref

    _format(v)
    f = fp8ref.format(v)
    if f.bits > 16:
        raise ValueError(f"{f.name} has {f.bits} bits; quantize and dequantize handle formats of at most 16")


def _fp8_format(v: Any) -> None:
    import fp8ref

    _format(v)
    if fp8ref.format(v).bits > 8:
        raise ValueError(f"{v!r} is not an 8-bit (or narrower) format")


def _rounding(v: Any) -> None:
    from fp8ref.cast import ROUNDING_MODES

    if v not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {v!r}; valid: {', '.join(ROUNDING_MODES)}")


def _bool(v: Any) -> None:
    if not isinstance(v, bool):
        raise TypeError(f"must be true or false, got {v!r}")


def _int(v: Any) -> None:
    if type(v) is not int:
        raise TypeError(f"must be an integer, got {v!r}")


def _positive_int(v: Any) -> None:
    _int(v)
    if v < 1:
        raise ValueError(f"must be >= 1, got {v}")


def _number(v: Any) -> None:
    if type(v) not in (int, float):
        raise TypeError(f"must be a number, got {v!r}")


def _axis(v: Any) -> None:
    if v is not None:
        _int(v)


def _str(v: Any) -> None:
    if not isinstance(v, str):
        raise TypeError(f"must be a string, got {type(v).__name__}")


def _object(v: Any) -> None:
    if not isinstance(v, dict):
        raise TypeError(f"must be a JSON object, got {type(v).__name__}")


def _choice(*names: str) -> Check:
    def check(v: Any) -> None:
        if v not in names:
            raise ValueError(f"{v!r} is not one of {', '.join(names)}")

    return check


def _recipe(v: Any) -> None:
    import fp8ref.scaling as sc

    _str(v)
    if not isinstance(getattr(sc, v, None), type):
        raise ValueError(f"{v!r} is not a recipe of fp8ref.scaling")


def _out_dtype(v: Any) -> None:
    if v not in ("float32", "float16", "bfloat16"):
        try:
            _fp8_format(v)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{v!r} is neither float32, float16, bfloat16 nor an FP8 format "
                             f"({exc})") from None


def _accumulate(v: Any) -> None:
    from fp8ref.accum import get

    get(v)


def _config(v: Any) -> None:
    from fp8ref.nn.config import TrainConfig

    _object(v)
    TrainConfig.from_dict(v)


@dataclass(frozen=True)
class OpSpec:
    """What a backend runner reads from a case: required and optional parameters (name -> check) and the
    input tensors it needs (``inputs_from`` derives them from the parameters)."""

    required: dict[str, Check]
    optional: dict[str, Check] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    inputs_from: Callable[[dict[str, Any]], tuple[str, ...]] | None = None


#: op -> what its backend runner reads (docs/golden-format.md, section 5)
PARAMS: dict[str, OpSpec] = {
    "quantize": OpSpec({"format": _cast_format, "rounding": _rounding, "saturate": _bool},
                       {"srnumbits": _positive_int, "seed": _int, "dtype": _str}, ("x",)),
    "dequantize": OpSpec({"format": _cast_format, "dtype": _choice("float32", "float64")}, inputs=("codes",)),
    "amax": OpSpec({"axis": _axis}, inputs=("x",)),
    "quantize_scaled": OpSpec({"format": _format, "rounding": _rounding, "saturate": _bool,
                               "recipe": _recipe, "recipe_args": _object}, inputs=("x",)),
    "scaled_sequence": OpSpec({"format": _format, "recipe": _recipe, "recipe_args": _object,
                               "steps": _positive_int},
                              inputs_from=lambda p: tuple(f"x.{i}" for i in range(p["steps"]))),
    "scaled_mm": OpSpec({"a_format": _fp8_format, "b_format": _fp8_format, "out_dtype": _out_dtype,
                         "accumulate": _accumulate}, {"scale_result": _number, "mx": _bool},
                        ("a", "b", "scale_a", "scale_b")),
    "trainer_linear": OpSpec({"layer": _str, "config": _config}, inputs=("x", "w", "dy")),
    "tensor_core_gemm": OpSpec({"gpu": _str, "instruction": _str, "in_format": _tensor_core_format,
                                "in_format_b": _tensor_core_format, "out_format": _format},
                               {"block_size": _positive_int, "scale_format": _format},
                               inputs_from=lambda p: ("a", "b", "c") + (("scale_a", "scale_b")
                                                                          if "block_size" in p else ())),
}


def check_entry(entry: dict[str, Any]) -> None:
    """Check one (structurally valid) manifest entry of an op with a backend runner against :data:`PARAMS`;
    :class:`SetError` naming the case and the field."""
    cid, op, params = entry["id"], entry["op"], entry["params"]
    spec = PARAMS.get(op)
    if spec is None:  # a suite grew an op this module does not know: a bug of fp8ref, caught by its tests
        raise SetError(f"case {cid!r}: op {op!r} has no parameter specification in fp8ref.conform.cases")
    for name, check in (*spec.required.items(), *spec.optional.items()):
        if name not in params:
            if name in spec.required:
                raise SetError(f"case {cid!r}: op {op!r} needs param {name!r}, which is missing")
            continue
        try:
            check(params[name])
        except (TypeError, ValueError) as exc:
            raise SetError(f"case {cid!r}: param {name!r}: {exc}") from None
    tensors = entry["tensors"]
    needed = spec.inputs_from(params) if spec.inputs_from is not None else spec.inputs
    for name in needed:
        if tensors.get(name, {}).get("role") != "input":
            raise SetError(f"case {cid!r}: op {op!r} needs input tensor {name!r}, which the manifest "
                           "does not declare as an input")


def plan(manifest: dict[str, Any], suites: list[str]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The entries of ``suites`` to run on the backend, in manifest order, and ``{op: count}`` of the entries
    with no backend operation. Raises :class:`SetError` for an unknown op or a bad parameter."""
    run: list[dict[str, Any]] = []
    not_run: dict[str, int] = {}
    for entry in manifest["cases"]:
        suite = entry["suite"]
        if suite not in suites:
            continue
        mod = suite_module(suite)
        op = entry["op"]
        if op not in mod.OPS:
            raise SetError(f"case {entry['id']!r}: unknown op {op!r} for suite {suite!r}; its ops are "
                           f"{', '.join(mod.OPS)}")
        if op not in mod.BACKEND_OPS:  # recipe arithmetic: fp8ref golden verify checks it
            not_run[op] = not_run.get(op, 0) + 1
            continue
        check_entry(entry)
        run.append(entry)
    return run, not_run
