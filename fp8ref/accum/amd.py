"""AMD matrix cores (MFMA, CDNA1-3): the :class:`Mfma` model and the parameter table of MI100, MI250X and
MI300X (docs/accumulation.md §10).

Source of every row: MMA-Sim (microsoft/MMA-Sim @ c78513835c8b2ae61b35062afce4c4255bc6901c,
``mmasim/simulator/amd.py`` ``mfma.__init__``; instruction lists ``mmasim/isa/amd.py``; Xie et al., arXiv
2511.10909), fitted to measurements on the three GPUs. CDNA2's flushing is also documented by AMD (MIOpen,
"MI200 matrix fused multiply-add (MFMA) behavior specifics": MFMA_F16, MFMA_BF16 and MFMA_BF16_1K flush
subnormal input/output data to zero). The rules themselves are :mod:`fp8ref.accum.mfma_exact`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from fp8ref.accum.mfma_exact import FMA, FUSED, PAIRWISE, RULE_NAMES, MfmaParams, mfma_dot
from fp8ref.accum.models import Sequential, _Fp32Out, fp64_fma_chain
from fp8ref.formats import BF16, E4M3FNUZ, E5M2FNUZ, FP16, FP32, FP64, Format
from fp8ref.formats import format as _resolve_format

GPUS = ("MI100", "MI250X", "MI300X")
INSTRUCTIONS = ("mfma",)
ARCH = {"MI100": "CDNA1", "MI250X": "CDNA2", "MI300X": "CDNA3"}
_SIM = "MMA-Sim @ c785138 mmasim/simulator/amd.py"


class _Row(NamedTuple):
    """One instruction family: the rule, its group size, and the CDNA2 / xf32 / FP8 switches."""

    rule: int
    group: int
    source: str
    switches: tuple[str, ...] = ()  # the Mfma flags set: "flush", "truncate", "split"


_PW = _SIM + " (operation_type 'pairwise', arithmetic.py pairwise_dot)"
_FU = _SIM + " (operation_type 'fused_dot_rd_add', arithmetic.py amd_fused_dot_rd_add, 24 fraction bits)"
_FLUSH = "; subnormals flushed: MMA-Sim flush_denormal and AMD MIOpen 'MI200 MFMA behavior specifics'"
# (architecture, input class) -> rule. Input classes: fp32, xf32, fp16, bf16, fp8 (E4M3FNUZ / E5M2FNUZ).
_TABLE: dict[tuple[str, str], _Row] = {
    ("CDNA1", "fp32"): _Row(FMA, 1, _SIM + " (operation_type 'fma': fp32 fmaf chain)"),
    ("CDNA1", "fp16"): _Row(PAIRWISE, 4, _PW + ", group 4"),
    ("CDNA1", "bf16"): _Row(PAIRWISE, 2, _PW + ", group 2 (v_mfma_*bf16, no _1k on CDNA1)"),
    ("CDNA2", "fp32"): _Row(FMA, 1, _SIM + " (operation_type 'fma': fp32 fmaf chain, no flushing)"),
    ("CDNA2", "fp16"): _Row(PAIRWISE, 4, _PW + ", group 4" + _FLUSH, ("flush",)),
    ("CDNA2", "bf16"): _Row(PAIRWISE, 4, _PW + ", group 4 (the _1k instructions; the CDNA1-style bf16 ones: "
                            "group=2)" + _FLUSH, ("flush",)),
    ("CDNA3", "fp32"): _Row(FMA, 1, _SIM + " (operation_type 'fma': fp32 fmaf chain)"),
    ("CDNA3", "xf32"): _Row(FUSED, 4, _FU + ", group 4, operands truncated to tf32", ("truncate",)),
    ("CDNA3", "fp16"): _Row(FUSED, 8, _FU + ", group min(8, K): 8 for 32x32x8 / 16x16x16 (group=4: the K=4 "
                            "multi-block instructions)"),
    ("CDNA3", "bf16"): _Row(FUSED, 8, _FU + ", group min(8, K): 8 for 32x32x8 / 16x16x16 (group=4: the K=4 "
                            "multi-block instructions)"),
    ("CDNA3", "fp8"): _Row(FUSED, 16, _FU + ", group 16, even and odd products summed separately",
                           ("split",)),
}
# input formats of each class; xf32 takes fp32 operands (truncated by the instruction)
_CLASS_FORMATS = {"fp32": (FP32,), "xf32": (FP32,), "fp16": (FP16,), "bf16": (BF16,),
                  "fp8": (E4M3FNUZ, E5M2FNUZ), "fp64": (FP64,)}
# fp64 (CDNA2 / CDNA3 v_mfma_f64_*): MMA-Sim's operation_type 'fma' on float64 (libm fma per product in k
# order from c), the model fp8ref.accum.models.fp64_fma_chain; its output is fp64
_IN_NAMES = {"CDNA1": ("fp32", "fp16", "bf16"), "CDNA2": ("fp32", "fp16", "bf16", "fp64"),
             "CDNA3": ("fp32", "xf32", "fp16", "bf16", "E4M3FNUZ", "E5M2FNUZ", "fp64")}
# every input-format name of some AMD GPU (fp8ref.accum.IN_FORMATS lists them beside the block-FMA ones)
IN_NAMES = tuple(dict.fromkeys(n for names in _IN_NAMES.values() for n in names))


def _class_of(fmt: Format) -> str:
    return {FP32: "fp32", FP16: "fp16", BF16: "bf16", E4M3FNUZ: "fp8", E5M2FNUZ: "fp8",
            FP64: "fp64"}.get(fmt, "")


@dataclass(frozen=True)
class Mfma(_Fp32Out):
    """One AMD MFMA instruction family as an accumulation model (docs/accumulation.md §10).

    ``rule``: ``"fma"`` (fp32: an fp32 FMA chain), ``"pairwise"`` (CDNA1/2 fp16 and bf16: groups of
    ``group`` fp32-rounded products summed by a pairwise fp32 tree, then added to the accumulator; ``flush``:
    CDNA2's subnormal flushing) or ``"fused"`` (CDNA3: groups of ``group`` products aligned and truncated at
    ``frac_bits`` fraction bits, rounded down with ``c``, one fp32 RNE rounding; ``split``: FP8's separate
    even / odd sums; ``truncate``: xf32). Groups chain along K through the fp32 accumulator; K is padded with
    zeros to a multiple of ``group``. The output (and ``c``) format is fp32.
    """

    rule: str
    group: int
    frac_bits: int = 24
    flush: bool = False
    truncate: bool = False
    split: bool = False

    def __post_init__(self) -> None:
        if self.rule not in RULE_NAMES:
            raise ValueError(f"rule must be one of {', '.join(RULE_NAMES)}, got {self.rule!r}")
        g = self.group
        if not isinstance(g, (int, np.integer)) or isinstance(g, bool) or g < 1 or g > 64 or g & (g - 1):
            raise ValueError(f"group must be a power of two in 1..64, got {g!r}")
        if self.rule == "pairwise" and g not in (2, 4):
            raise ValueError(f"group must be 2 or 4 for rule 'pairwise' (MMA-Sim's groups), got {g!r}")
        if not isinstance(self.frac_bits, (int, np.integer)) or not 0 <= self.frac_bits <= 24:
            raise ValueError(f"frac_bits must be an int in 0..24, got {self.frac_bits!r}")
        self._set_in_formats()
        valid = {"fma": (FP32,), "pairwise": (FP16, BF16), "fused": (E4M3FNUZ, E5M2FNUZ) if self.split
                 else ((FP32,) if self.truncate else (FP16, BF16))}[self.rule]
        for f, arg in ((self.in_format, "in_format"), (self.format_b, "b_format")):
            if f not in valid:
                raise ValueError(f"{arg}={f.name}: the {self.name or self.rule} instruction takes "
                                 f"{', '.join(v.name for v in valid)}")
        if self.rule != "fused" or not self.split:
            if self.format_b != self.in_format:
                raise ValueError(f"b_format={self.format_b.name}: mixed operand formats exist only for the "
                                 f"FP8 instructions; valid: {self.in_format.name}")

    def describe(self) -> str:
        ins = self.inputs_label()
        extra = "".join(f", {k}" for k in ("flush", "truncate", "split") if getattr(self, k))
        s = f"Mfma(rule={self.rule}, group={self.group}, frac_bits={self.frac_bits}{extra}, in={ins})"
        return self._named(s)

    def params(self) -> MfmaParams:
        """The rule as the kernels and the exact oracle read it."""
        return MfmaParams(RULE_NAMES.index(self.rule), int(self.group), int(self.frac_bits), self.split,
                          self.flush, self.truncate, self.in_format.emin, self.format_b.emin)

    def _exact(self, a: list[float], b: list[float], c: float) -> float:
        return mfma_dot(a, b, c, self.params())

    def _gemm_checked(self, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
        from fp8ref.accum import mfma_kernels

        return mfma_kernels.gemm(A, B, C, self.params())


def gpu_key(gpu: str) -> str | None:
    """The AMD GPU name ``gpu`` spells (case-insensitive), or ``None`` for any other name."""
    for g in GPUS:
        if g.lower() == gpu.strip().lower():
            return g
    return None


def check_instruction(gpu: str, instruction: Any) -> str:
    """The AMD GPU name ``gpu`` spells, after checking ``instruction`` (``None`` or ``"mfma"``);
    ``ValueError`` naming the argument and the valid choices otherwise."""
    g = gpu_key(gpu)
    if g is None:
        raise ValueError(f"unknown AMD gpu {gpu!r}; valid: {', '.join(GPUS)}")
    if instruction is not None and instruction not in INSTRUCTIONS:
        raise ValueError(f"instruction {instruction!r} does not exist on {g}; valid: None, "
                         f"{', '.join(repr(i) for i in INSTRUCTIONS)}")
    return g


def _in_class(g: str, fmt: Format | str) -> tuple[Format, str]:
    arch = ARCH[g]
    valid = _IN_NAMES[arch]
    if isinstance(fmt, str) and fmt.strip().lower() == "xf32":
        if "xf32" not in valid:
            raise ValueError(f"in_format xf32: {g} ({arch}) has no xf32 instruction; valid: "
                             f"{', '.join(valid)}")
        return FP32, "xf32"
    try:
        f = fmt if isinstance(fmt, Format) else _resolve_format(fmt)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"in_format {fmt!r}: {exc}; valid for {g}: {', '.join(valid)}") from exc
    cls = _class_of(f)
    if not cls or (f.name not in valid and cls not in valid):
        raise ValueError(f"in_format {f.name}: {g} ({arch}) matrix cores take {', '.join(valid)}")
    return f, cls


def mfma(gpu: str, in_format: Format | str, out_format: Format | str = "fp32",
         instruction: Any = None) -> Mfma | Sequential:
    """The model of ``gpu``'s MFMA instruction family for ``in_format`` operands (``tensor_core`` for AMD).

    ``gpu``: MI100, MI250X, MI300X (case-insensitive); ``in_format``: fp32, fp16, bf16 (all), xf32 (fp32
    operands truncated to tf32), E4M3FNUZ and E5M2FNUZ (MI300X; mixed pairs via ``for_inputs``), fp64
    (MI250X, MI300X: the fp64 FMA chain, ``Sequential(FP64)``); ``out_format``: fp32 (fp64 for fp64
    inputs); ``instruction``: ``None`` or ``"mfma"``.
    """
    g = check_instruction(gpu, instruction)
    fin, cls = _in_class(g, in_format)
    want = FP64 if cls == "fp64" else FP32
    try:
        fout = out_format if isinstance(out_format, Format) else _resolve_format(out_format)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"out_format {out_format!r}: {exc}; valid for {g}: {want.name.lower()}") from exc
    if fout != want:
        raise ValueError(f"out_format {fout.name}: {g} MFMA instructions for {fin.name} inputs accumulate in "
                         f"{want.name.lower()}; valid: {want.name.lower()}")
    if cls == "fp64":
        return fp64_fma_chain(f"{g}-mfma-fp64-fp64")
    row = _TABLE[(ARCH[g], cls)]
    iname = "xf32" if cls == "xf32" else fin.name if cls == "fp8" else cls
    return Mfma(RULE_NAMES[row.rule], row.group, in_format=fin, name=f"{g}-mfma-{iname}-fp32",
                source=row.source, **dict.fromkeys(row.switches, True))
