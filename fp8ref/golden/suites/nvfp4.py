"""The ``nvfp4`` suite: NVFP4 (TransformerEngine and torchao profiles) as the hardware stores it.

Op ``nvfp4_quantize``: params ``profile, tile, two_level, global_amax, hadamard, rounding, seed`` (the
arguments of ``fp8ref.NVFP4``) / input ``x`` (float32) -> ``codes_packed`` (E2M1, two per byte, element
``2i`` in the low nibble), ``scale_codes`` and ``scale_codes_swizzled`` (E4M3, plain and 128x4 layouts),
``dequantized`` (float32: codes x block scale x global scale) and, two level, ``global_scale`` (the float32
per-tensor decode scale). docs/scaling.md section 7 states every rule. The arithmetic is fp8ref's own recipe
arithmetic (no backend has an NVFP4 API): ``fp8ref golden verify`` checks it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.golden.case import Case, Result
from fp8ref.golden.suites._blockscaled import stored, wide_input

__all__ = ["OPS", "BACKEND_OPS", "build"]


def _ref(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    import fp8ref

    args = dict(params)
    args["tile"] = tuple(args["tile"])
    st = fp8ref.quantize_scaled(inputs["x"], fp8ref.E2M1, fp8ref.NVFP4(**args))
    return stored(st, "E4M3")


OPS = {"nvfp4_quantize": _ref}
BACKEND_OPS: dict[str, Any] = {}


def build() -> list[Case]:
    x = wide_input(21, (32, 64))
    specials = wide_input(22, (16, 64), spread=4)
    specials[2, 3], specials[3, 20], specials[4, 40] = np.inf, -np.inf, np.float32(1e-40)
    cases = []
    base = {"profile": "te", "tile": [1, 16], "two_level": True, "global_amax": None, "hadamard": False,
            "rounding": "nearest_even", "seed": None}
    variants: list[tuple[str, dict[str, Any], np.ndarray]] = [
        ("te-1x16", {}, x),
        ("te-16x16", {"tile": [16, 16]}, x),
        ("te-1x16-single", {"two_level": False}, x),
        ("te-1x16-global-amax", {"global_amax": 1000.0}, x),
        ("te-1x16-hadamard", {"hadamard": True}, x),
        ("te-16x16-stochastic", {"tile": [16, 16], "rounding": "stochastic", "seed": 7}, x),
        ("te-1x16-specials", {}, specials),
        ("torchao-1x16", {"profile": "torchao"}, x),
        ("torchao-1x16-single", {"profile": "torchao", "two_level": False}, x),
        ("torchao-1x16-specials", {"profile": "torchao", "two_level": False}, specials),
    ]
    for tag, over, xin in variants:
        cases.append(Case(f"nvfp4/{tag}", "nvfp4_quantize", {**base, **over}, {"x": xin}))
    return cases
