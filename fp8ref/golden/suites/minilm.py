"""The ``minilm`` suite (optional: ``fp8ref golden generate DIR --suite minilm``, needs ``fp8ref[models]``):
the six linear layers of all-MiniLM-L6-v2's first encoder layer on real inputs.

Four sentences of fp8ref's evaluation set (the first of the first four topics) run through the float32
model; for each linear layer of encoder layer 0 (query, key, value, attention output, MLP in, MLP out) and
each format family (``ocp``: E4M3, ``fnuz``: E4M3FNUZ) a case ``minilm/<layer>/<family>`` stores the real
layer input ``x`` [N, K] (the N = 55 packed tokens) and weight ``w`` [K, M] (the checkpoint's ``[out, in]``
weight transposed) and, for each recipe of :data:`RECIPES` (the paper's FP8-AMAX and FP8-CSCALE with a bias
inside both families' windows), what the trainer's FP8 linear layer computes from them:
``<r>_x_codes``, ``<r>_w_codes`` (uint8 codes), ``<r>_bias_x``, ``<r>_bias_w`` (int32 scaling biases),
``<r>_scale_x``, ``<r>_scale_w`` (float32 dequantisation scales ``2**-bias``) and one GEMM output
``<r>_y_<model>`` = ``scaled_mm(X8, W8, scale_x, scale_w)`` (float32, before the layer's bias) for every
accumulation model of :data:`ACCUMULATE` (exact, sequential fp32 and the NVIDIA tensor-core presets for
OCP; exact and fp32 for FNUZ, a family NVIDIA's tensor cores do not take).

Op ``minilm_linear`` recomputes every output from ``x`` and ``w`` with fresh ``fp8ref.nn.fp8.FP8Linear``
layers, so ``golden verify`` needs neither the model package nor its tokenizer. The set is not committed
(layer 0's weights alone are 7 MB of float32, and the default golden/ stays byte-identical).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.golden.case import Case, Result

Arrays = dict[str, np.ndarray]

__all__ = ["OPS", "BACKEND_OPS", "build", "RECIPES", "ACCUMULATE", "N_SENTENCES"]

#: output prefix -> recipe spec (``fp8ref.nn.config.parse_recipe``)
RECIPES: dict[str, str] = {"amax": "fp8-amax", "cscale": "fp8-cscale:2"}
#: accumulation models per format family
ACCUMULATE: dict[str, tuple[str, ...]] = {
    "ocp": ("exact", "fp32", "h100-fp8", "h100-fp8-fastaccum", "ada-fp8", "b200-fp8"),
    "fnuz": ("exact", "fp32"),
}
N_SENTENCES = 4


def _key(acc: str) -> str:
    return acc.replace("-", "_")


def _run(params: dict[str, Any], inputs: Arrays, ops: Any = None, own: bool = False) -> tuple[Arrays, dict]:
    from fp8ref.models import recipes
    from fp8ref.nn.fp8 import FP8Linear

    x, w = inputs["x"], inputs["w"]
    out: Arrays = {}
    fmts: dict[str, str] = {}
    for r, spec in params["recipes"].items():
        for i, acc in enumerate(params["accumulate"]):
            rec = recipes.resolve(spec, formats=params["formats"], accumulate=None if own else acc)
            lin = FP8Linear(params["layer"], rec, ops)
            lin.capture = []
            lin.forward(params["layer"], x, w, None)
            cap = lin.capture[0]
            if i == 0:
                fmt = rec.fwd_format.name
                for t in ("x", "w"):
                    out[f"{r}_{t}_codes"] = np.asarray(cap[f"{t}_codes"], np.uint8)
                    out[f"{r}_bias_{t}"] = np.asarray(cap[f"bias_{t}"], np.int32)
                    out[f"{r}_scale_{t}"] = np.asarray(cap[f"scale_{t}"], np.float32)
                    fmts[f"{r}_{t}_codes"] = fmt
            out[f"{r}_y_{_key(acc)}"] = np.asarray(cap["y"], np.float32)
    return out, fmts


def _ref(params: dict[str, Any], inputs: Arrays) -> Result:
    out, fmts = _run(params, inputs)
    return Result(out, fmts)


def _be(backend: Any, params: dict[str, Any], inputs: Arrays) -> Arrays:
    """The layer with the backend as its ops object; a backend that cannot select the accumulation runs its
    own for every ``<r>_y_<model>`` (those outputs then show how far it is from each model)."""
    return _run(params, inputs, backend, own=not backend.capabilities.accumulation_selectable)[0]


OPS = {"minilm_linear": _ref}
BACKEND_OPS = {"minilm_linear": _be}


class _Inputs:
    """A float32 linear executor that keeps each layer's input."""

    def __init__(self) -> None:
        from fp8ref.nn.model import FP32Linear

        self.inner = FP32Linear()
        self.x: dict[str, np.ndarray] = {}

    def forward(self, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> tuple[Any, Any]:
        self.x[name] = x.copy()
        return self.inner.forward(name, x, w, b)


def build() -> list[Case]:
    from fp8ref.models import minilm
    from fp8ref.models.bert import LINEAR_KINDS
    from fp8ref.models.sentences import default_set

    model = minilm.load()
    sset = default_set().per_topic(1).head(N_SENTENCES)
    rec = _Inputs()
    layers = [n for n, _ in model.config.linear_layers() if n.startswith("L0.")]
    model.forward(model.tokenize(list(sset.sentences)).batch, dict.fromkeys(layers, rec))
    cases = []
    for name in layers:
        kind = name.split(".", 1)[1]
        for fam, accs in ACCUMULATE.items():
            params = {"layer": name, "hf_module": f"encoder.layer.0.{LINEAR_KINDS[kind]}", "formats": fam,
                      "recipes": dict(RECIPES), "accumulate": list(accs), "model": minilm.UPSTREAM,
                      "model_sha256": model.sha256, "sentences": list(sset.sentences)}
            inputs = {"x": rec.x[name], "w": model.params[name + ".w"]}
            cases.append(Case(f"minilm/{name}/{fam}", "minilm_linear", params, inputs))
    return cases
