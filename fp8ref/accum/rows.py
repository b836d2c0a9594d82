"""The shape of a vendor's instruction table (:mod:`fp8ref.accum.nvidia`, and any other vendor's module).

:func:`fp8ref.accum.tensor_core` resolves ``(gpu, instruction, in_format, out_format)`` through a tuple of
:class:`Vendor` records (``fp8ref.accum.presets.VENDORS``): a GPU names its family, a family its default
instruction (the one the vendor's GEMM library uses) and the instructions it has, and the table maps
``(family, instruction, input class, output)`` to one :class:`Row` of block-FMA parameters (or, with
``Row.build``, to a model of another rule). Block-scaled instructions are :class:`ScaledRow` records per
``(family, instruction)``. A new vendor is one more :class:`Vendor` in that tuple; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# the instruction names tensor_core accepts (a GPU takes the ones its family lists)
INSTRUCTIONS = ("mma", "wgmma", "tcgen05", "mfma")


@dataclass(frozen=True)
class Row:
    """Block-FMA parameters of one (family, instruction, input class, output) path (docs/accumulation.md
    §2, §4), with its source. ``build``: a factory ``build(row, in_format, out_format, name)`` of a model of
    another rule (a vendor whose instructions are not block FMAs); ``None`` builds a ``BlockFMA``."""

    nfma: int
    frac_bits: int
    out_frac_bits: int
    rounding: str
    e_floor: int | None
    source: str
    confirmed: bool = True
    c_mode: str = "aligned"
    k_order: tuple[int, ...] | None = None
    build: Callable[..., Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ScaledRow:
    """One block-scaled instruction kind (docs/accumulation.md §4.2): ``k`` products per instruction,
    ``group`` products summed exactly before the scales apply (0: every product is a term of the
    alignment, its exponent raised by the two scale exponents), ``frac_bits`` kept below the alignment
    exponent, the input formats it takes and its ``(block_size, scale_format)`` pairs."""

    kind: str
    k: int
    group: int
    frac_bits: int
    formats: tuple[str, ...]
    scales: tuple[tuple[int, str], ...]
    source: str


@dataclass(frozen=True)
class Vendor:
    """One vendor's GPUs and instruction table (see the module docstring)."""

    gpus: dict[str, str]  # GPU name -> family
    default_instruction: dict[str, str]  # family -> the instruction of the vendor's GEMM library
    inputs: dict[tuple[str, str], tuple[str, ...]]  # (family, instruction) -> input format names
    table: dict[tuple[str, str, str, str], Row]  # (family, instruction, input class, output) -> Row
    scaled: dict[tuple[str, str], tuple[ScaledRow, ...]] = field(default_factory=dict)
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # format name -> its input classes

    def instructions(self, family: str) -> tuple[str, ...]:
        """The instructions of ``family``, in the order of :data:`INSTRUCTIONS`."""
        have = {i for (f, i) in self.inputs if f == family}
        return tuple(i for i in INSTRUCTIONS if i in have)
