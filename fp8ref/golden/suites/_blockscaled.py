"""Shared by the ``mx`` and ``nvfp4`` suites: a block-scaled tensor as the hardware stores it.

A ScaledTensor becomes ``codes`` (8-bit element codes with their format) or ``codes_packed`` (E2M1: two
codes per byte, element ``2i`` in the low nibble, along the blocked axis), ``scale_codes`` (the scale grid
in the plain row-major layout, with its format) and ``scale_codes_swizzled`` (the 128x4 layout of
block-scaled GEMMs, ``(R'/128, C'/4, 32, 4, 4)``, of the scales as the GEMM reads them: one row per matrix
row, scale columns along the blocked axis), ``dequantized`` (float32) and, for two-level scaling,
``global_scale`` (float32 scalar).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fp8ref.golden.case import Result
from fp8ref.golden.suites._values import normalish


def stored(st: Any, scale_format: str) -> Result:
    """The outputs of one block-scaled tensor (see the module docstring)."""
    import fp8ref
    from fp8ref.scaling import swizzle_scales

    br, bc = st.block
    along_rows = br > 1 and bc == 1  # blocks along axis 0 (MX axis=0): the GEMM's rows are the columns
    out: dict[str, np.ndarray] = {}
    fmts: dict[str, str] = {"scale_codes": scale_format, "scale_codes_swizzled": scale_format}
    if st.fmt.bits == 4:
        out["codes_packed"] = fp8ref.pack_fp4(st.codes, axis=0 if along_rows else 1)
    else:
        out["codes"] = st.codes
        fmts["codes"] = st.fmt.name
    out["scale_codes"] = np.asarray(st.scale_codes, np.uint8)
    grid = out["scale_codes"].T if along_rows else out["scale_codes"]
    rows = st.codes.shape[1] if along_rows else st.codes.shape[0]
    if not along_rows and br > 1:  # 2-D tiles (16x16): every matrix row reads its tile row's scales
        grid = np.repeat(grid, br, axis=0)[:rows]
    out["scale_codes_swizzled"] = swizzle_scales(grid)
    out["dequantized"] = st.dequantize(np.float32)
    if st.global_scale is not None:
        out["global_scale"] = np.asarray(st.global_scale, np.float32)
    return Result(out, fmts)


def wide_input(seed: int, shape: tuple[int, int], spread: int = 12) -> np.ndarray:
    """Bell-shaped float32 values, each 16-element run of a row scaled by its own power of two in
    ``2**-spread .. 2**spread`` (a wide dynamic range across blocks), with zeros, a -0.0 and ties."""
    x = normalish(seed, shape)
    runs = (np.arange(shape[0] * shape[1]).reshape(shape) // 16) * 7 % (2 * spread + 1) - spread
    x = (x * np.ldexp(1.0, runs)).astype(np.float32)
    x[0, :16] = 0.0
    x[0, 16] = -0.0
    x[1, :8] = [6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]  # E2M1 midpoints in a block of amax 6
    return x
