"""The ``mx`` suite: OCP MX block scaling (E8M0 scales per 32) as the hardware stores it.

Op ``mx_quantize``: params ``format, rule, axis`` (``fp8ref.MX(rule, axis=axis)``) / input ``x`` (float32)
-> ``codes`` (E4M3 / E5M2) or ``codes_packed`` (E2M1, two per byte along the blocked axis, element ``2i`` in
the low nibble), ``scale_codes`` and ``scale_codes_swizzled`` (E8M0, plain and 128x4 layouts; for
``axis=0`` the layout of the transposed grid, the GEMM's view of a K-major operand), ``dequantized``
(float32). Rules in docs/scaling.md section 7 (MX). The scales are fp8ref's recipe arithmetic;
``fp8ref golden verify`` checks them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.golden.case import Case, Result
from fp8ref.golden.suites._blockscaled import stored, wide_input

__all__ = ["OPS", "BACKEND_OPS", "build"]


def _ref(params: dict[str, Any], inputs: dict[str, np.ndarray]) -> Result:
    import fp8ref

    st = fp8ref.quantize_scaled(inputs["x"], params["format"], fp8ref.MX(params["rule"], axis=params["axis"]))
    return stored(st, "E8M0")


OPS = {"mx_quantize": _ref}
BACKEND_OPS: dict[str, Any] = {}


def build() -> list[Case]:
    x = wide_input(31, (32, 64), spread=20)
    cases = []
    for fmt in ("E4M3", "E5M2", "E2M1"):
        for rule in ("FLOOR", "RCEIL", "CEIL", "EVEN"):
            for axis in (1, 0):
                cases.append(Case(f"mx/{fmt}-{rule.lower()}-axis{axis}", "mx_quantize",
                                  {"format": fmt, "rule": rule, "axis": axis}, {"x": x}))
    return cases
