"""Black-box inference for block-scaled dot products (``fp8ref probe`` on a block-scaled model).

:func:`infer_scaled` treats ``dot_fn(a, b, c, scale_a, scale_b)`` (1-D values, 1-D decoded scales per block)
as a black box and reports what its outputs can reveal (docs/accumulation.md §7.1): the alignment width F,
the final rounding (toward zero, down, up, nearest), how each term is truncated (toward zero or down),
where ``c`` enters (aligned with the products or added after their rounding), how the block scales enter
(added to each product's exponent, or a group sum aligned by the scales' exponents) and, with UE8M0 scales,
the number of elements per instruction (where the accumulator is rounded). It also says what cannot be seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fp8ref.formats import E8M0, Format
from fp8ref.formats import format as _resolve_format

ScaledDot = Callable[[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray], float]
L = 128  # vector length of the probes (a multiple of every block size and instruction K)


@dataclass(frozen=True)
class ScaledInference:
    frac_bits: int | None
    rounding: str
    term_truncation: str
    c_mode: str
    scales: str
    k: int | None
    notes: tuple[str, ...]

    def summary(self) -> str:
        rows = [("F (frac_bits)", "not found" if self.frac_bits is None else str(self.frac_bits)),
                ("final rounding", self.rounding), ("term truncation", self.term_truncation),
                ("c enters", self.c_mode), ("block scales", self.scales),
                ("K per instruction", "not observable" if self.k is None else str(self.k))]
        lines = [f"{k:18}  {v}" for k, v in rows]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


class _Box:
    def __init__(self, fn: ScaledDot, block: int, scale_format: Format) -> None:
        self.fn, self.block, self.sf = fn, block, scale_format

    def run(self, entries: dict[int, tuple[float, float]], c: float = 0.0,
            scales: dict[int, float] | None = None) -> float:
        a, b = np.zeros(L), np.zeros(L)
        for k, (x, y) in entries.items():
            a[k], b[k] = x, y
        sa = np.ones(L // self.block)
        for q, s in (scales or {}).items():
            sa[q] = s
        return float(self.fn(a, b, c, sa, np.ones(L // self.block)))


def infer_scaled(dot_fn: ScaledDot, in_format: Format | str, block_size: int,
                 scale_format: Format | str) -> ScaledInference:
    """Infer the rules of a block-scaled black box (module docstring); ``in_format`` must hold 1 and 6."""
    fin = in_format if isinstance(in_format, Format) else _resolve_format(in_format)
    sf = scale_format if isinstance(scale_format, Format) else _resolve_format(scale_format)
    if not callable(dot_fn):
        raise TypeError("dot_fn must be callable")
    if L % block_size:
        raise ValueError(f"block_size must divide {L}, got {block_size}")
    box = _Box(dot_fn, block_size, sf)
    notes: list[str] = []
    one = {0: (1.0, 1.0)}
    # 1. F: the products 1 and -1 cancel exactly; c = 2^-f (aligned at their exponent 0) survives iff f <= F,
    #    and the result 2^-f is exact whatever the final rounding
    F = None
    kept = [box.run({0: (1.0, 1.0), 1: (-1.0, 1.0)}, 2.0 ** -f) == 2.0 ** -f for f in range(1, 64)]
    if all(kept):
        notes.append("c survives below every product bit: c is not aligned with the products (F not seen)")
    elif kept[0]:
        F = next(f for f in range(1, 64) if not kept[f - 1]) - 1
    # 2. final rounding of 1 - 2^-F (positive) and -(1 - 2^-F) (negative)
    rounding = "not determined"
    if F is not None and F > 24:
        pos = box.run(one, -(2.0 ** -F))
        neg = box.run({0: (-1.0, 1.0)}, 2.0 ** -F)
        below = 1 - 2.0 ** -24
        rounding = {(below, -below): "toward zero (RZ)", (below, -1.0): "down (toward -inf)",
                    (1.0, -below): "up (toward +inf)", (1.0, -1.0): "to nearest"}.get((pos, neg),
                                                                                       "not determined")
    elif F is not None:
        notes.append(f"F = {F} <= 24: the final rounding and F cannot be told apart by these probes")
    # 3. term truncation: c = -2^-(F+2) is below the last kept bit: toward zero drops it, down keeps -2^-F
    trunc = "not determined"
    if F is not None:
        r = box.run(one, -(2.0 ** -(F + 2)))
        trunc = "toward zero" if r == 1.0 else "down (floor)"
    # 4. where c enters: truncated at the products' alignment (step 1 finds F), or never (added after the
    #    products are rounded, as B200 FP8 mma.sync)
    c_mode = ("aligned with the products" if F is not None else
              "added after the products are rounded (never truncated by their alignment)")
    # 5. block scales: 16 products 6*6 = 36 (exponent 5) and c = -2^-F: a per-product alignment (exponent 5)
    #    drops c, a group sum aligned by the scales' exponent (0) keeps it
    scales = "not determined"
    if F is not None:
        r = box.run({k: (6.0, 6.0) for k in range(16)}, -(2.0 ** -F))
        scales = ("each product's exponent raised by the two scale exponents (products aligned "
                  "individually)" if r == 576.0 else
                  "group sums aligned by the scales' exponents (the sum is not normalised)")
    notes.append("group size: a group sum of E2M1 products is exact at any F >= 10, so the size of the "
                 "exactly summed groups cannot be seen apart from the scale blocks")
    # 6. K per instruction (UE8M0 only): c = 1 and two products 2^-24 (scales 2^-24) in blocks 0 and j give
    #    1 + 2^-23 when they meet c in one instruction, 1 when an RZ rounding of the accumulator comes between
    k = None
    if sf == E8M0 and F is not None and F >= 25:
        tiny = 2.0 ** -24
        for j in range(1, L // block_size):
            r = box.run({0: (1.0, 1.0), j * block_size: (1.0, 1.0)}, 1.0, {0: tiny, j: tiny})
            if r != 1 + 2.0 ** -23:
                k = j * block_size
                break
        if k is None:
            notes.append(f"no accumulator rounding seen within {L} elements")
    else:
        notes.append("K per instruction: not observable with UE4M3 scales (no scale small enough to put a "
                     "product below the accumulator's last bit)")
    notes.append(f"in_format {fin.name}: subnormal operands' exponents and the exponent floor are not probed")
    return ScaledInference(F, rounding, trunc, c_mode, scales, k, tuple(notes))


def dot_fn_of(model) -> ScaledDot:
    """A :class:`~fp8ref.accum.blockscaled.BlockScaled` model as a black box."""
    return lambda a, b, c, sa, sb: model.dot(a, b, c, scale_a=sa, scale_b=sb)
