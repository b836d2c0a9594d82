"""The ``scaling`` suite: amax, the paper's scaling bias, every recipe, and multi-step state sequences.

Ops (params / inputs -> outputs):

``amax``            ``axis`` (null, 0 or 1) / ``x`` -> ``amax`` (float32; NaN propagates)
``scale_bias``      ``format, margin, bounds`` / ``amax`` (float32) -> ``bias`` (int32)
``quantize_scaled`` ``format, rounding, saturate, recipe, recipe_args`` / ``x`` -> ``codes``, ``scale``,
                    ``quant_scale`` and, where the recipe defines them, ``bias``, ``scale_codes``, ``amax``
``scaled_sequence`` ``format, recipe, recipe_args, steps`` / ``x.0`` .. ``x.<n-1>`` -> per step ``i``:
                    ``codes.i``, ``scale.i``, ``quant_scale.i``, and the state after the step (``Delayed``:
                    ``amax_history.i`` and ``state_scale.i``; ``MSAMP``: ``state_bias.i``)

Running on a backend: ``amax`` calls ``backend.amax``; the recipe arithmetic of the other ops is fp8ref's
(backends have no recipe API), the casts ``Q(x * quant_scale)`` go through ``backend.quantize``.
``scale_bias`` involves no backend operation and is checked by ``fp8ref golden verify`` only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fp8ref
from fp8ref.golden.case import Case, Result
from fp8ref.golden.suites._values import normalish

Arrays = dict[str, np.ndarray]

__all__ = ["OPS", "BACKEND_OPS", "build"]


def _recipe(params: dict[str, Any]) -> Any:
    import fp8ref.scaling as sc

    name = params["recipe"]
    if name not in ("JustInTime", "Constant", "Delayed", "Current", "MSAMP", "MX"):
        raise ValueError(f"unknown recipe {name!r}")
    args = dict(params.get("recipe_args", {}))
    for k in ("bounds", "granularity"):
        if isinstance(args.get(k), list):
            args[k] = tuple(args[k])
    return getattr(sc, name)(**args)


def _st_outputs(st: Any, suffix: str = "") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    out = {"codes" + suffix: st.codes, "scale" + suffix: np.asarray(st.scale, np.float32),
           "quant_scale" + suffix: np.asarray(st.quant_scale, np.float32)}
    fmts = {"codes" + suffix: st.fmt.name}
    if not suffix:
        if st.bias is not None:
            out["bias"] = np.asarray(st.bias, np.int32)
        if st.scale_codes is not None:
            out["scale_codes"] = np.asarray(st.scale_codes, np.uint8)
            fmts["scale_codes"] = "E8M0"
        if st.amax is not None:
            out["amax"] = np.asarray(st.amax, np.float32)
    return out, fmts


def _ref_amax(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    axis = params["axis"]
    return Result({"amax": np.asarray(fp8ref.amax(inputs["x"], axis=axis), dtype=np.float32)})


def _ref_scale_bias(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    b = fp8ref.scale_bias(inputs["amax"], params["format"], margin=params["margin"],
                          bounds=tuple(params["bounds"]))
    return Result({"bias": np.asarray(b, dtype=np.int32)})


def _ref_quantize_scaled(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    st = fp8ref.quantize_scaled(inputs["x"], params["format"], _recipe(params), rounding=params["rounding"],
                                saturate=params["saturate"])
    out, fmts = _st_outputs(st)
    return Result(out, fmts)


def _ref_sequence(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    recipe = _recipe(params)
    state = None
    out: dict[str, np.ndarray] = {}
    fmts: dict[str, str] = {}
    for i in range(params["steps"]):
        st = fp8ref.quantize_scaled(inputs[f"x.{i}"], params["format"], recipe, state=state)
        state = st.state
        o, f = _st_outputs(st, f".{i}")
        out.update(o)
        fmts.update(f)
        if params["recipe"] == "Delayed":
            out[f"amax_history.{i}"] = np.asarray(state.amax_history, np.float32)
            out[f"state_scale.{i}"] = np.asarray(state.scale, np.float32)
        else:
            out[f"state_bias.{i}"] = np.asarray(state, np.int32)
    return Result(out, fmts)


OPS = {"amax": _ref_amax, "scale_bias": _ref_scale_bias, "quantize_scaled": _ref_quantize_scaled,
       "scaled_sequence": _ref_sequence}


def check_sizes(op: str, params: dict[str, Any], tensors: dict[str, dict[str, Any]]) -> None:
    """The parameters that size an allocation: a Delayed recipe's ``history_len`` (at most
    ``MAX_HISTORY_LEN``, and in a sequence the length of the stored ``amax_history.<i>``) and a sequence's
    ``steps`` (at most the number of ``x.<i>`` inputs)."""
    from fp8ref.golden.manifest import MAX_HISTORY_LEN
    from fp8ref.golden.ops import check_count

    if op not in ("quantize_scaled", "scaled_sequence"):
        return
    args = params.get("recipe_args", {})
    history = None
    if params.get("recipe") == "Delayed" and isinstance(args, dict):
        from fp8ref.scaling import Delayed

        history = check_count(args.get("history_len", Delayed.history_len), "params.recipe_args.history_len",
                              1, MAX_HISTORY_LEN)
    if op == "scaled_sequence":
        n_x = sum(1 for name in tensors if name.startswith("x."))
        steps = check_count(params.get("steps"), "params.steps (at most the number of x.<i> inputs)", 1, n_x)
        if history is not None:
            for i in range(steps):
                shape = tensors.get(f"amax_history.{i}", {}).get("shape")
                if shape != [history]:
                    raise ValueError(f"params.recipe_args.history_len is {history}, but tensor "
                                     f"amax_history.{i} is declared with shape {shape}")


def _backend_cast(backend: Any, x: np.ndarray, st: Any, rounding: str, saturate: bool) -> np.ndarray:
    """``backend.quantize(x * quant_scale)``, the product formed as fp8ref forms it (in the input's
    precision: float64 for float64 input, float32 otherwise), ``quant_scale`` expanded over its blocks."""
    wide = np.float64 if x.dtype == np.float64 else np.float32
    q = st.expand(st.quant_scale).astype(wide)
    with np.errstate(over="ignore", invalid="ignore"):
        y = x.astype(wide) * q
    return np.asarray(backend.quantize(y, st.fmt, rounding=rounding, saturate=saturate), dtype=np.uint8)


def _be_amax(backend: Any, params: dict[str, Any], inputs: Arrays) -> Arrays:
    return {"amax": np.asarray(backend.amax(inputs["x"], axis=params["axis"]), dtype=np.float32)}


def _be_quantize_scaled(backend: Any, params: dict[str, Any],
                        inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    st = fp8ref.quantize_scaled(inputs["x"], params["format"], _recipe(params), rounding=params["rounding"],
                                saturate=params["saturate"])
    out, _ = _st_outputs(st)
    out["codes"] = _backend_cast(backend, inputs["x"], st, params["rounding"], params["saturate"])
    return out


def _be_sequence(backend: Any, params: dict[str, Any], inputs: Arrays) -> Arrays:
    out = dict(_ref_sequence(params, inputs).outputs)
    recipe = _recipe(params)
    state = None
    for i in range(params["steps"]):
        st = fp8ref.quantize_scaled(inputs[f"x.{i}"], params["format"], recipe, state=state)
        state = st.state
        out[f"codes.{i}"] = _backend_cast(backend, inputs[f"x.{i}"], st, "nearest_even", True)
    return out


#: ``scale_bias`` is recipe arithmetic with no backend operation: the harness does not run it
BACKEND_OPS = {"amax": _be_amax, "quantize_scaled": _be_quantize_scaled, "scaled_sequence": _be_sequence}


def _x(seed: int, shape: tuple[int, int], spread: int = 6) -> np.ndarray:
    """Bell-shaped values with magnitudes spread over ``2**-spread .. 2**spread`` by row."""
    x = normalish(seed, shape)
    exps = (np.arange(shape[0]) % (2 * spread + 1)) - spread
    return (x * np.ldexp(1.0, exps)[:, None]).astype(np.float32)


def build() -> list[Case]:
    import ml_dtypes

    cases: list[Case] = []
    # amax: specials in chosen places, several dtypes and axes
    base = _x(1, (12, 40))
    base[2, 3], base[5, 7], base[7, 0], base[9, 9] = -np.inf, np.nan, -0.0, -1e38
    base[10] = 0.0
    for dt, name in ((np.float32, "f32"), (np.float64, "f64"), (np.float16, "f16"),
                     (ml_dtypes.bfloat16, "bf16")):
        with np.errstate(over="ignore"):
            x = base.astype(dt)
        for axis in (None, 0, 1):
            cases.append(Case(f"scaling/amax-{name}-axis{'all' if axis is None else axis}", "amax",
                              {"axis": axis}, {"x": x}))
    # scale_bias: zeros, powers of two and their neighbours, each format's max, tiny and huge amaxes
    p2 = np.ldexp(np.float32(1), np.arange(-140, 128, 3)).astype(np.float32)
    edge = np.concatenate([[0.0], p2, np.nextafter(p2, np.float32(np.inf)), np.nextafter(p2, np.float32(0)),
                           [448.0, 57344.0, 240.0, 224.0, 3.4e38, 1e-45]]).astype(np.float32)
    for fmt in fp8ref.FP8_FORMATS:
        for margin, bounds in ((0, (-31, 31)), (3, (-31, 31)), (0, (-127, 127)), (1, (-8, 8))):
            cases.append(Case(f"scaling/scale_bias-{fmt.name}-m{margin}-b{bounds[1]}", "scale_bias",
                              {"format": fmt.name, "margin": margin, "bounds": list(bounds)}, {"amax": edge}))
    # recipes, one tensor each
    x = _x(2, (24, 160))
    x64 = normalish(3, (24, 64)) * 3.0
    xm = _x(4, (16, 128))
    recipes: list[tuple[str, str, dict[str, Any], np.ndarray]] = [
        ("jit-tensor", "JustInTime", {}, x),
        ("jit-row-m3", "JustInTime", {"margin": 3, "granularity": "row"}, x),
        ("jit-column", "JustInTime", {"granularity": "column"}, x),
        ("jit-1x128-b8", "JustInTime", {"granularity": [1, 128], "bounds": [-8, 8]}, x),
        ("constant-m2", "Constant", {"bias": -2}, x),
        ("constant-5", "Constant", {"bias": 5}, x),
        ("current-f32", "Current", {}, x),
        ("current-f32-eps-pow2", "Current", {"eps": 1e-12, "power_of_2": True}, x),
        ("current-f64-row", "Current", {"compute_dtype": "float64", "eps": 1e-12, "granularity": "row"}, x64),
        ("current-1x128-pow2", "Current", {"power_of_2": True, "granularity": [1, 128]}, x),
        ("current-128x128-pow2", "Current", {"power_of_2": True, "granularity": [128, 128]}, x),
        ("msamp-m1", "MSAMP", {"margin": 1}, x),
    ]
    for rule in ("FLOOR", "RCEIL", "CEIL", "EVEN"):
        recipes.append((f"mx-{rule.lower()}", "MX", {"rule": rule}, xm))
    recipes.append(("mx-floor-axis0-pad", "MX", {"rule": "FLOOR", "axis": 0, "pad": True}, x))
    for fmt in ("E4M3", "E5M2"):
        for tag, rname, args, xin in recipes:
            cases.append(Case(f"scaling/{fmt}/{tag}", "quantize_scaled",
                              {"format": fmt, "rounding": "nearest_even", "saturate": True, "recipe": rname,
                               "recipe_args": args}, {"x": xin}))
    for tag, rname, args in (("jit-fnuz", "JustInTime", {}), ("current-fnuz-nonsat", "Current", {})):
        cases.append(Case(f"scaling/E4M3FNUZ/{tag}", "quantize_scaled",
                          {"format": "E4M3FNUZ", "rounding": "nearest_even", "saturate": tag.endswith("fnuz"),
                           "recipe": rname, "recipe_args": args}, {"x": x}))
    # multi-step sequences: growing, shrinking, an all-zero step, an Inf step, a recovery
    gains = [1.0, 4.0, 0.25, 0.0, 2.0, np.inf, 1.0, 64.0]
    steps = {}
    for i, g in enumerate(gains):
        xi = _x(100 + i, (16, 48))
        with np.errstate(invalid="ignore"):
            spike = np.arange(xi.size).reshape(xi.shape) == 5
            xi = (xi * np.float32(g)) if np.isfinite(g) else np.where(spike, np.float32(np.inf), xi)
        steps[f"x.{i}"] = xi.astype(np.float32)
    seqs = [("delayed-h4-max", "Delayed", {"history_len": 4}),
            ("delayed-h3-recent-m1", "Delayed", {"history_len": 3, "algo": "most_recent", "margin": 1}),
            ("delayed-h4-roll-zero", "Delayed", {"history_len": 4, "roll_zero_amax": True}),
            ("msamp-m0", "MSAMP", {})]
    for fmt in ("E4M3", "E5M2"):
        for tag, rname, args in seqs:
            cases.append(Case(f"scaling/{fmt}/seq-{tag}", "scaled_sequence",
                              {"format": fmt, "recipe": rname, "recipe_args": args, "steps": len(gains)},
                              steps))
    return cases
