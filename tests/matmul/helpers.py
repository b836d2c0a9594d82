"""Shared helpers of the scaled_mm tests: random inputs and the expanded scales the oracle takes."""

from __future__ import annotations

import numpy as np

from fp8ref.formats import BF16, E4M3, E4M3FNUZ, E5M2, E5M2FNUZ, FP16, FP32

IN_FORMATS = (E4M3, E5M2, E4M3FNUZ, E5M2FNUZ)
OUT_FORMATS = (FP32, FP16, BF16, E4M3, E5M2, E4M3FNUZ, E5M2FNUZ)


def ceil(a: int, b: int) -> int:
    return -(-a // b)


def a_grid_block(gran: str, m: int, k: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid shape, block) of scale_a for a granularity name."""
    return {
        "tensor": ((1, 1), (m, k)),
        "row": ((m, 1), (1, k)),
        "1x128": ((m, ceil(k, 128)), (1, 128)),
        "128x128": ((ceil(m, 128), ceil(k, 128)), (128, 128)),
        "1x32": ((m, ceil(k, 32)), (1, 32)),
    }[gran]


def b_grid_block(gran: str, k: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return {
        "tensor": ((1, 1), (k, n)),
        "row": ((1, n), (k, 1)),
        "1x128": ((ceil(k, 128), n), (128, 1)),
        "128x128": ((ceil(k, 128), ceil(n, 128)), (128, 128)),
        "1x32": ((ceil(k, 32), n), (32, 1)),
    }[gran]


def expand(grid: np.ndarray, block: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    if 0 in shape:
        return np.zeros(shape)
    g = np.asarray(grid, dtype=np.float64).reshape(ceil(shape[0], block[0]) if shape[0] else 0,
                                                   ceil(shape[1], block[1]) if shape[1] else 0)
    return np.repeat(np.repeat(g, block[0], axis=0)[: shape[0]], block[1], axis=1)[:, : shape[1]]
