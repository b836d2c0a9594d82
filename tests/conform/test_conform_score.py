"""The vectorised scorer equals the element-by-element rule: categories of every differing element, their
counts in order of appearance, and the worst elements chosen."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fp8ref
from fp8ref.conform.score import CATEGORIES, Element, categorize, categorize_many, pick_worst, score
from fp8ref.conform.ulps import distance
from fp8ref.golden.io import LoadedCase


def _quantize_case(fmt: str, sat: bool, dtype=np.float64, seed: int = 1) -> tuple[LoadedCase, dict]:
    """float64 (or other) inputs with every kind of deviation: values beside the FP8 midpoints (rounded
    twice through float32), NaN, Inf, zeros, subnormals, overflow; flipped low bits, signs and NaN codes."""
    rng = np.random.default_rng(seed)
    v = fp8ref.format("E4M3").values()
    v = v[np.isfinite(v) & (v > 0)]
    mids = (v[:-1] + v[1:]) / 2
    near = np.concatenate([mids * (1 + 2.0**-40), mids * (1 - 2.0**-40), -mids * (1 + 2.0**-40)])
    x = np.concatenate([rng.normal(0, 100, 3000), near, rng.normal(0, 2.0**-8, 300),
                        [464.00000000000006, -464.00000000000006, np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0,
                         1e-300, 2.0**-9, 3e5, -1e9]])
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
        e = fp8ref.quantize(x, fmt, saturate=sat)
        g = fp8ref.quantize(x.astype(np.float32), fmt, saturate=sat).copy()  # rounded twice
    g[::7] ^= 0x01
    g[::11] ^= 0x80
    g[::13] = 0x7F
    case = LoadedCase({"id": f"q-{fmt}-{sat}", "op": "quantize",
                       "params": {"format": fmt, "rounding": "nearest_even", "saturate": sat}},
                      {"x": x}, {"codes": e}, {"codes": fmt})
    return case, {"codes": g}


def _float_cases() -> list[tuple[LoadedCase, dict]]:
    out = []
    codes = np.arange(256, dtype=np.uint8)
    for dt in (np.float32, np.float64):
        e = fp8ref.dequantize(codes, "E5M2", dtype=dt)
        g = e.copy()
        g[::3] = np.nextafter(g[::3], dt(np.inf))
        g[5], g[0] = -g[5], -0.0
        g[200:] = np.nan
        out.append((LoadedCase({"id": f"d-{dt.__name__}", "op": "dequantize",
                                "params": {"format": "E5M2", "dtype": dt.__name__}},
                               {"codes": codes}, {"values": e}, {"codes": "E5M2"}), {"values": g}))
    rng = np.random.default_rng(2)
    e = rng.normal(size=(30, 20)).astype(ml_dtypes.bfloat16)
    g = e.copy()
    g[::2, ::3] = (g[::2, ::3].astype(np.float32) * 1.01).astype(ml_dtypes.bfloat16)
    g[0, 0] = np.inf
    out.append((LoadedCase({"id": "mm-bf16", "op": "scaled_mm", "params": {}},
                           {"a": np.zeros((30, 4), np.uint8), "b": np.zeros((4, 20), np.uint8),
                            "scale_a": np.float32(1), "scale_b": np.float32(1)}, {"out": e}, {}), {"out": g}))
    return out


CASES = [_quantize_case(f, s) for f in ("E4M3", "E5M2", "E4M3FNUZ", "E5M2FNUZ") for s in (False, True)]
CASES += [_quantize_case("E4M3", False, np.float32), _quantize_case("E5M2", True, ml_dtypes.bfloat16)]
CASES += _float_cases()


def _score_element_by_element(case: LoadedCase, outputs: dict, tolerance: float, keep: int) -> dict:
    """The scorer written element by element with :func:`categorize` (the specification)."""
    from fp8ref.conform.score import _element_inputs, _show

    r = {"elements": 0, "exact": 0, "max_ulps": 0.0, "categories": {}}
    worst: list[Element] = []
    for name in sorted(case.outputs):
        exp, got = case.outputs[name], outputs[name]
        fmt = case.formats.get(name)
        d = distance(exp, got, fmt).reshape(-1)
        r["elements"] += d.size
        r["exact"] += int(np.count_nonzero(d == 0))
        r["max_ulps"] = max(r["max_ulps"], float(d.max()))
        bad = np.flatnonzero(d > 0)
        order = bad[np.argsort(-d[bad], kind="stable")]
        first: dict[str, int] = {}
        for flat in order:
            idx = np.unravel_index(flat, exp.shape)
            c = categorize(case, name, idx, exp, got)
            r["categories"][c] = r["categories"].get(c, 0) + 1
            first.setdefault(c, int(flat))
        for flat in dict.fromkeys([*first.values(), *order[:keep].tolist()]):
            idx = np.unravel_index(flat, exp.shape)
            worst.append(Element(case.id, name, [int(i) for i in idx], float(d[flat]),
                                 categorize(case, name, idx, exp, got), _show(exp, idx, fmt),
                                 _show(got, idx, fmt), _element_inputs(case, name, idx)))
    r["worst"] = pick_worst(worst, keep)
    within = "within" if r["max_ulps"] <= tolerance else "fail"
    r["status"] = "exact" if r["exact"] == r["elements"] else within
    return r


@pytest.mark.parametrize("case, outputs", CASES, ids=[c.id + str(c.inputs.get("x", np.zeros(0)).dtype)
                                                      for c, _ in CASES])
def test_categorize_many_is_categorize_for_every_element(case: LoadedCase, outputs: dict) -> None:
    for name, exp in case.outputs.items():
        got = outputs[name]
        d = distance(exp, got, case.formats.get(name)).reshape(-1)
        flat = np.flatnonzero(d > 0)
        fast = [CATEGORIES[c] for c in categorize_many(case, name, exp, got, flat)]
        slow = [categorize(case, name, np.unravel_index(f, exp.shape), exp, got) for f in flat]
        assert fast == slow


@pytest.mark.parametrize("keep", [1, 5, 12])
def test_score_is_the_element_by_element_scorer(keep: int) -> None:
    seen: set[str] = set()
    for case, outputs in CASES:
        want = _score_element_by_element(case, outputs, 1, keep)
        got = score(case, outputs, 1, keep)
        assert (got.status, got.elements, got.exact, got.max_ulps) == (want["status"], want["elements"],
                                                                        want["exact"], want["max_ulps"])
        assert list(got.categories.items()) == list(want["categories"].items())  # same order too
        assert got.worst == want["worst"]
        seen |= set(got.categories)
    assert seen == set(CATEGORIES)  # the cases exercise every rule
