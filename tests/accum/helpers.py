"""Shared helpers of the accumulation tests: every model, value tables of the input formats."""

from __future__ import annotations

import functools

import numpy as np

from fp8ref import accum
from fp8ref.accum.presets import OUT_FORMATS
from fp8ref.formats import FP32, FP64, TF32, Format


def all_models() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = [(name, accum.get(name)) for name in accum.PRESETS
                                     if not isinstance(accum.get(name), accum.BlockScaled)]
    for g in accum.GPUS:
        for ins in accum.instructions(g):
            for f in accum.IN_FORMATS:
                for o in OUT_FORMATS:
                    try:
                        out.append((f"{g}:{f}:{o}:{ins}", accum.tensor_core(g, f, o, instruction=ins)))
                    except ValueError:
                        pass
    return out


def scaled_models() -> list[tuple[str, object]]:
    """Every block-scaled model of the table (each GPU, instruction, format, block size, scale format)."""
    out: list[tuple[str, object]] = []
    for g in accum.GPUS:
        for ins in accum.instructions(g):
            for f, bs, sf in accum.block_scaled(g, ins):
                m = accum.tensor_core(g, f, instruction=ins, block_size=bs, scale_format=sf)
                out.append((f"{g}:{ins}:{f}:{sf}x{bs}", m))
    return out


@functools.cache
def finite_values(fmt: Format) -> np.ndarray:
    if fmt == FP64:  # 2**16 random bit patterns: every binade, subnormals included
        bits = np.random.default_rng(7).integers(0, 1 << 63, 1 << 16, dtype=np.uint64)
        bits |= np.random.default_rng(8).integers(0, 2, 1 << 16, dtype=np.uint64) << np.uint64(63)
        v = bits.view(np.float64)
    elif fmt in (TF32, FP32):  # 2**16 random bit patterns (TF32: its 13 low bits clear)
        rng = np.random.default_rng(7)
        mask = np.uint32(0xFFFFE000 if fmt == TF32 else 0xFFFFFFFF)
        bits = rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint64).astype(np.uint32) & mask
        with np.errstate(invalid="ignore"):
            v = bits.view(np.float32).astype(np.float64)
    else:
        v = fmt.values()
    return v[np.isfinite(v)]


def random_vectors(rng: np.random.Generator, model, L: int, K: int, *, narrow: bool = True,
                   specials: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``L`` random (a, b, c) rows for ``model``; ``narrow`` keeps values within a few binades so that
    the alignment truncation matters; ``specials`` sprinkles NaN/Inf where the formats have them."""
    fa, fb = model.in_format, model.format_b
    rows = []
    for fmt in (fa, fb):
        v = finite_values(fmt)
        M = np.empty((L, K))
        for i in range(L):
            if narrow:
                w = rng.uniform(np.log2(fmt.min_subnormal), np.log2(fmt.max))
                ex = np.log2(np.abs(np.where(v == 0, 1e-300, v)))
                pool = v[(ex >= w - 6) & (ex <= w)]
                pool = pool if pool.size else v
            else:
                pool = v
            M[i] = rng.choice(pool, K)
        M[rng.random((L, K)) < 0.2] = 0.0
        rows.append(M)
    A, B = rows
    cf = model.c_format
    cv = finite_values(cf) if cf.bits <= 16 else None
    if cv is None:
        e = rng.integers(cf.emin - cf.mbits, 20, L)
        m = rng.integers(0, 1 << cf.mbits, L)
        c = np.ldexp(1.0 + m / (1 << cf.mbits), e) * rng.choice([-1.0, 1.0], L)
        with np.errstate(over="ignore"):  # (the branch np.where drops may overflow for FP64)
            c = np.where(e < cf.emin, np.ldexp(np.floor(np.ldexp(c, cf.mbits - cf.emin)), cf.emin - cf.mbits),
                         c)
    else:
        c = rng.choice(cv, L)
    c[rng.random(L) < 0.3] = 0.0
    if specials:
        for M, fmt in ((A, fa), (B, fb)):
            sel = rng.random((L, K)) < 0.02
            if fmt.nan != "none":
                M[sel] = np.nan
            sel = rng.random((L, K)) < 0.02
            if fmt.has_inf:
                M[sel] = np.inf * rng.choice([-1.0, 1.0], sel.sum())
        c[rng.random(L) < 0.05] = np.inf
        c[rng.random(L) < 0.03] = np.nan
    return A, B, c


def same(x: float, y: float) -> bool:
    """Bitwise equality of two result values (any NaN equals any NaN; the sign of zero counts)."""
    if np.isnan(x) or np.isnan(y):
        return bool(np.isnan(x) and np.isnan(y))
    return x == y and np.signbit(x) == np.signbit(y)
