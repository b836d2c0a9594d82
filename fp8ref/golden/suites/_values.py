"""Deterministic input generators for the suites.

Every value comes from integer arithmetic (PCG64's raw 64-bit words, whose stream NumPy keeps stable) and
correctly rounded IEEE operations, so a set generated on any machine is byte-for-byte the same. Nothing
here uses transcendental functions or NumPy's distribution samplers.
"""

from __future__ import annotations

import numpy as np

from fp8ref.formats import Format

__all__ = ["raw_words", "uniform", "normalish", "boundary_values", "dedup_bits", "fp8_values"]


def raw_words(seed: int, n: int) -> np.ndarray:
    """``n`` raw 64-bit words of PCG64(seed)."""
    return np.random.PCG64(seed).random_raw(n).astype(np.uint64)


def uniform(seed: int, n: int) -> np.ndarray:
    """Float64 values ``k * 2**-53`` in [0, 1), ``k`` the top 53 bits of each word."""
    return (raw_words(seed, n) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def normalish(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Bell-shaped float64 values of mean 0 and variance 1 (Irwin-Hall: the sum of 12 uniforms - 6)."""
    n = int(np.prod(shape))
    u = uniform(seed, 12 * n).reshape(n, 12)
    acc = np.zeros(n)
    for j in range(12):  # a fixed summation order
        acc = acc + u[:, j]
    return (acc - 6.0).reshape(shape)


def dedup_bits(x: np.ndarray) -> np.ndarray:
    """Remove repeated bit patterns, keeping the first occurrence (order preserved)."""
    bits = x.view(np.dtype(f"u{x.dtype.itemsize}"))
    _, first = np.unique(bits, return_index=True)
    return x[np.sort(first)]


def fp8_values(fmt: Format) -> np.ndarray:
    """Every finite value of ``fmt`` (float64, sorted, -0 dropped)."""
    v = fmt.values()
    v = v[np.isfinite(v)]
    return np.unique(v)


def boundary_values(fmt: Format, dtype: np.dtype) -> np.ndarray:
    """The hard cases of a cast from ``dtype`` to ``fmt``, both signs, as an array of ``dtype``:

    every finite value of ``fmt``; every midpoint between neighbours and the values one ulp of ``dtype``
    on either side of it; the overflow edges (max, max + ulp/2 -- the rounding threshold --, max + ulp,
    2 max, the largest finite ``dtype``) and the classic probes 240/247.99/248/448/464/464.01/465/480/
    512/57344/61439/61440/65536; the subnormal edges (min subnormal / 2, / 4, 3/4 of it, ...); +-0, +-Inf
    and NaNs with several payloads.
    """
    dtype = np.dtype(dtype)
    vals = fp8_values(fmt)
    pos = vals[vals > 0]
    mids = (vals[:-1] + vals[1:]) / 2  # exact: fp8 values have few significant bits
    top_ulp = 2.0 ** (fmt.emax - fmt.mbits)
    edges = [fmt.max, fmt.max + top_ulp / 2, fmt.max + top_ulp, fmt.max + 1.5 * top_ulp, 2 * fmt.max,
             4 * fmt.max, 240.0, 247.99, 248.0, 448.0, 464.0, 464.01, 465.0, 480.0, 512.0, 57344.0, 61439.0,
             61440.0, 65536.0, 1e6, 1e30, fmt.min_subnormal / 2, fmt.min_subnormal / 4,
             fmt.min_subnormal * 0.75, fmt.min_subnormal * 1.5, fmt.min_normal, 2.0 ** -30, 2.0 ** -60]
    base = np.concatenate([pos, mids[mids > 0], np.array(edges)])
    with np.errstate(over="ignore"):
        base_t = base.astype(dtype)
    base_t = base_t[np.isfinite(base_t) & (base_t > 0)]
    info_max = np.array(np.finfo(dtype).max if dtype.kind == "f" else 0, dtype=dtype)
    inf = np.array(np.inf, dtype=dtype)
    zero = np.array(0, dtype=dtype)
    up = np.nextafter(base_t, inf)
    down = np.nextafter(base_t, zero)
    tiny = np.nextafter(zero, inf)  # the smallest subnormal of dtype
    one = np.concatenate([base_t, up, down, [info_max, tiny]]).astype(dtype)
    one = one[one > 0]
    signed = np.concatenate([one, -one])
    specials = np.array([0.0, -0.0, np.inf, -np.inf], dtype=dtype)
    nans = _nans(dtype)
    return dedup_bits(np.concatenate([specials, signed, nans]).astype(dtype))


def _nans(dtype: np.dtype) -> np.ndarray:
    """Quiet and signalling NaNs of both signs with several payloads, built from bit patterns."""
    ebits = {2: 5, 4: 8, 8: 11}[dtype.itemsize] if dtype.name != "bfloat16" else 8
    width = dtype.itemsize * 8
    mbits = width - 1 - ebits
    exp = ((1 << ebits) - 1) << mbits
    quiet = 1 << (mbits - 1)
    pats = [exp | quiet, exp | quiet | 1, exp | 1, exp | ((1 << mbits) - 1)]
    pats += [p | (1 << (width - 1)) for p in pats]
    return np.array(pats, dtype=np.dtype(f"<u{dtype.itemsize}")).view(dtype)
