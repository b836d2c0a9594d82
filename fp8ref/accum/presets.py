"""Named models: ``tensor_core`` (GPU and instruction resolution over the vendors' tables) and the presets.

The parameters live in the vendors' tables (:mod:`fp8ref.accum.nvidia`, records of
:mod:`fp8ref.accum.rows`), each row with its source; ``fp8ref hwcheck`` replays the published GPU
measurements through them (docs/accumulation.md §5).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from fp8ref.accum import amd, nvidia
from fp8ref.accum.blockscaled import BlockScaled
from fp8ref.accum.models import BlockFMA, Exact, Promoted, Sequential
from fp8ref.accum.rows import INSTRUCTIONS, Row, ScaledRow, Vendor
from fp8ref.formats import BF16, E4M3, E4M3FNUZ, FP16, FP32, FP64, Format
from fp8ref.formats import format as _resolve_format

# The vendors whose instruction tables tensor_core reads, in order. A vendor's module defines one
# fp8ref.accum.rows.Vendor (GPUs -> family, family -> default instruction, (family, instruction) -> input
# formats, the Row / ScaledRow tables); adding its record here is the only change another vendor needs.
VENDORS: tuple[Vendor, ...] = (nvidia.VENDOR,)

# AMD's MFMA instructions are not block FMAs: their GPUs resolve through fp8ref.accum.amd (its own table of
# rules, docs/accumulation.md §10), before the block-FMA vendor tables.
_BLOCK_FMA_IN_FORMATS = tuple(dict.fromkeys(f for v in VENDORS for fs in v.inputs.values() for f in fs))
GPUS = tuple(g for v in VENDORS for g in v.gpus) + amd.GPUS
IN_FORMATS = tuple(dict.fromkeys(_BLOCK_FMA_IN_FORMATS + amd.IN_NAMES))
K32_PAIRS_ORDER = nvidia.K32_PAIRS_ORDER
OUT_FORMATS = ("fp32", "fp16", "fp64")  # the output formats of the instruction tables


def _gpu_key(gpu: str) -> tuple[str, Vendor]:
    if not isinstance(gpu, str):
        raise TypeError(f"gpu must be a string, got {type(gpu).__name__}")
    for v in VENDORS:
        for g in v.gpus:
            if g.lower() == gpu.strip().lower():
                return g, v
    raise ValueError(f"gpu: unknown gpu {gpu!r}; valid: {', '.join(GPUS)}")


def _in_key(fmt: Format | str) -> tuple[Format, str]:
    f = fmt if isinstance(fmt, Format) else _resolve_format(fmt)
    for name in _BLOCK_FMA_IN_FORMATS:
        if _resolve_format(name) == f:
            return f, name
    raise ValueError(f"in_format {f.name} has no tensor-core model; valid: "
                     f"{', '.join(_BLOCK_FMA_IN_FORMATS)}")


def _out_key(fmt: Format | str) -> tuple[Format, str]:
    f = fmt if isinstance(fmt, Format) else _resolve_format(fmt)
    if f == FP32:
        return f, "fp32"
    if f == FP16:
        return f, "fp16"
    if f == FP64:
        return f, "fp64"
    raise ValueError(f"out_format {f.name} has no tensor-core model; valid: {', '.join(OUT_FORMATS)}")


def instruction_of(gpu: str, instruction: str | None = None) -> tuple[str, str, Vendor]:
    """``(GPU name, instruction, vendor)``: ``instruction=None`` is the family's default (the instruction the
    vendor's GEMM library uses); an instruction the GPU lacks raises ``ValueError`` listing its own."""
    g, vendor = _gpu_key(gpu)
    fam = vendor.gpus[g]
    have = vendor.instructions(fam)
    if instruction is None:
        return g, vendor.default_instruction[fam], vendor
    if not isinstance(instruction, str) or instruction.strip().lower() not in INSTRUCTIONS:
        raise ValueError(f"instruction: unknown instruction {instruction!r}; valid: "
                         f"{', '.join(INSTRUCTIONS)}")
    ins = instruction.strip().lower()
    if ins not in have:
        raise ValueError(f"instruction: {g} has no {ins!r} instruction; valid for {g}: {', '.join(have)}")
    return g, ins, vendor


def instructions(gpu: str) -> tuple[str, ...]:
    """The instruction names ``tensor_core`` takes for ``gpu`` (its family's instructions)."""
    if _amd(gpu):
        return amd.INSTRUCTIONS
    g, vendor = _gpu_key(gpu)
    return vendor.instructions(vendor.gpus[g])


def block_scaled(gpu: str, instruction: str | None = None) -> tuple[tuple[str, int, str], ...]:
    """``(in_format, block_size, scale_format)`` of every block-scaled model of ``gpu``'s ``instruction``."""
    if _amd(gpu):
        amd.check_instruction(gpu, instruction)
        return ()  # no block-scaled MFMA is modelled
    g, ins, vendor = instruction_of(gpu, instruction)
    return tuple((f, b, s) for row in vendor.scaled.get((vendor.gpus[g], ins), ()) for f in row.formats
                 for b, s in row.scales)


def _row(vendor: Vendor, g: str, ins: str, iname: str, oname: str) -> Row:
    fam = vendor.gpus[g]
    valid = vendor.inputs[(fam, ins)]
    if iname not in valid:
        raise ValueError(f"in_format: {g} {ins} takes {', '.join(valid)} inputs, not {iname}")
    for cls in (iname, *vendor.classes.get(iname, ())):
        if (fam, ins, cls, oname) in vendor.table:
            return vendor.table[(fam, ins, cls, oname)]
    outs = [o for o in OUT_FORMATS if any((fam, ins, c, o) in vendor.table
                                                for c in (iname, *vendor.classes.get(iname, ())))]
    raise ValueError(f"out_format: {g} {ins} has no model for {iname} inputs with {oname} output; valid: "
                     f"{', '.join(outs) or 'none'}")


def _scaled_row(vendor: Vendor, g: str, ins: str, iname: str, block_size: Any, scale_format: Any
                ) -> tuple[ScaledRow, int, Format]:
    """The block-scaled kind for ``in_format`` and the (block size, scale format) asked for; a missing one of
    the two takes the kind's first pair that matches the other."""
    kinds = vendor.scaled.get((vendor.gpus[g], ins), ())
    if not kinds:
        raise ValueError(f"block_size/scale_format: {g} {ins} has no block-scaled instruction; block-scaled "
                         f"instructions: {', '.join(_scaled_places())}")
    sname = None
    if scale_format is not None:
        sf = scale_format if isinstance(scale_format, Format) else _resolve_format(scale_format)
        sname = {"E8M0": "E8M0", "E4M3": "E4M3"}.get(sf.name)
        if sname is None:
            raise ValueError(f"scale_format: {sf.name} is no block-scale format; valid: E8M0 (UE8M0), E4M3 "
                             "(UE4M3)")
    if block_size is not None and (not isinstance(block_size, (int, np.integer))
                                   or isinstance(block_size, bool)):
        raise ValueError(f"block_size must be an int (16 or 32), got {block_size!r}")
    # E2M1 x E2M1 selects kind::mxf4nvf4 (K = 64) where the GPU has it, the other formats kind::mxf8f6f4
    for row in sorted(kinds, key=lambda r: r.kind != "mxf4nvf4"):
        if iname not in row.formats:
            continue
        pairs = [(b, s) for b, s in row.scales if (block_size is None or b == block_size)
                 and (sname is None or s == sname)]
        if not pairs:
            valid = ", ".join(f"block_size={b} scale_format={s}" for b, s in row.scales)
            raise ValueError(f"block_size/scale_format: {g} {ins} kind::{row.kind} takes {valid}; got "
                             f"block_size={block_size} scale_format={sname}")
        b, s = pairs[0]
        return row, b, _resolve_format(s)
    valid = sorted({f for r in kinds for f in r.formats})
    raise ValueError(f"in_format: {g} {ins} block-scaled instructions take {', '.join(valid)}, not {iname}")


def _scaled_places() -> list[str]:
    return [f"{g} {ins}" for v in VENDORS for g, fam in v.gpus.items() for (f2, ins) in v.scaled if f2 == fam]


def _amd(gpu: Any) -> bool:
    return isinstance(gpu, str) and amd.gpu_key(gpu) is not None


def tensor_core(gpu: str, in_format: Format | str, out_format: Format | str = "fp32", *,
                instruction: str | None = None, block_size: int | None = None,
                scale_format: Format | str | None = None) -> Any:
    """The model of one matrix instruction of ``gpu`` for ``in_format`` inputs (docs/accumulation.md §4).

    ``gpu``: one of :data:`GPUS` (case-insensitive). ``instruction``: ``"mma"``, ``"wgmma"``, ``"tcgen05"``
    (``"mfma"`` for AMD GPUs); ``None`` is the instruction the vendor's GEMM library uses on that GPU
    (wgmma on H100/H200, tcgen05 on B200, mma elsewhere). ``block_size`` (16 or 32) and ``scale_format``
    (``"E8M0"`` or ``"E4M3"``) select a block-scaled instruction (``kind::mxf8f6f4``, or
    ``kind::mxf4nvf4`` for E2M1): a :class:`~fp8ref.accum.blockscaled.BlockScaled` model whose ``dot`` /
    ``gemm`` take ``scale_a`` / ``scale_b``. ``in_format="fp64"`` with ``out_format="fp64"`` (the f64
    instructions, from A100 on and on MI250X / MI300X): the fp64 FMA chain ``Sequential(FP64)``; an
    ``instruction=None`` whose default lacks fp64 takes ``mma``. Otherwise a ``BlockFMA``. Combinations the
    GPU does not have raise ``ValueError`` naming the argument and the valid choices. AMD ``gpu`` (MI100,
    MI250X, MI300X): the :class:`~fp8ref.accum.amd.Mfma` model of :func:`fp8ref.accum.amd.mfma`
    (``instruction`` ``None`` or ``"mfma"``; no block-scaled instruction; docs/accumulation.md §10).
    """
    if _amd(gpu):
        if block_size is not None or scale_format is not None:
            raise ValueError(f"block_size/scale_format: {amd.gpu_key(gpu)} has no block-scaled instruction; "
                             f"block-scaled instructions: {', '.join(_scaled_places())}")
        return amd.mfma(gpu, in_format, out_format, instruction)
    g, ins, vendor = instruction_of(gpu, instruction)
    fin, iname = _in_key(in_format)
    fout, oname = _out_key(out_format)
    fam = vendor.gpus[g]
    if instruction is None and iname not in vendor.inputs[(fam, ins)]:
        # the GEMM library's instruction for inputs the default lacks (fp64 on H100 / B200: DMMA, mma)
        ins = next((i for i in vendor.instructions(fam) if iname in vendor.inputs[(fam, i)]), ins)
    if block_size is not None or scale_format is not None:
        if oname != "fp32":
            raise ValueError(f"out_format: block-scaled instructions accumulate in fp32 only, not {oname}")
        srow, bs, sf = _scaled_row(vendor, g, ins, iname, block_size, scale_format)
        return BlockScaled(srow.kind, srow.k, bs, sf, srow.frac_bits, group=srow.group, formats=srow.formats,
                           in_format=fin, name=f"{g}-{ins}-{srow.kind}-{iname}-{sf.name}x{bs}",
                           source=srow.source)
    row = _row(vendor, g, ins, iname, oname)
    default = ins == vendor.default_instruction[vendor.gpus[g]]
    name = f"{g}-{iname}-{oname}" if default else f"{g}-{ins}-{iname}-{oname}"
    if row.build is not None:
        return row.build(row, fin, fout, name)
    return BlockFMA(row.nfma, row.frac_bits, row.out_frac_bits, row.rounding, row.e_floor, in_format=fin,
                    out_format=fout, c_mode=row.c_mode, k_order=row.k_order, name=name,
                    confirmed=row.confirmed, source=row.source)



def tensor_core_pair(gpu: str, in_format: Format | str, in_format_b: Format | str,
                     out_format: Format | str = "fp32", *, instruction: str | None = None,
                     block_size: int | None = None, scale_format: Format | str | None = None) -> Any:
    """:func:`tensor_core` for operands of ``in_format`` x ``in_format_b`` (``.for_inputs`` where the two
    differ; equal names keep the model as it is, so AMD's ``"xf32"``, an instruction's input and not a
    ``Format``, works). The golden suite ``tensorcore`` and the reference backend build their models here."""
    m = tensor_core(gpu, in_format, out_format, instruction=instruction, block_size=block_size,
                    scale_format=scale_format)
    return m if in_format_b == in_format else m.for_inputs(in_format, in_format_b)

def _presets() -> dict[str, object]:
    h100 = tensor_core("H100", E4M3)
    h200 = tensor_core("H200", E4M3)
    ada = tensor_core("Ada", E4M3)
    l40s = tensor_core("L40S", E4M3)
    b200 = tensor_core("B200", E4M3)
    p: dict[str, object] = {
        "exact": Exact(FP32, name="exact"),
        "fp32": Sequential(FP32, name="fp32"),
        "fp16": Sequential(FP16, name="fp16"),
        "bf16": Sequential(BF16, name="bf16"),
        "h100-fp8-fastaccum": replace(h100, name="h100-fp8-fastaccum"),
        "h100-fp8": Promoted(h100, 128, name="h100-fp8", source="DeepSeek-V3 §3.3.2 (N_C=128); CUTLASS "
                             "GmmaFP8Accumulation (mma_promotion_interval=4 wgmma k32)"),
        "h200-fp8-fastaccum": replace(h200, name="h200-fp8-fastaccum"),
        "h200-fp8": Promoted(h200, 128, name="h200-fp8"),
        "ada-fp8-fastaccum": replace(ada, name="ada-fp8-fastaccum"),
        "ada-fp8": Promoted(ada, 128, name="ada-fp8"),
        "l40s-fp8-fastaccum": replace(l40s, name="l40s-fp8-fastaccum"),
        "l40s-fp8": Promoted(l40s, 128, name="l40s-fp8"),
        "b200-fp8": replace(b200, name="b200-fp8"),
        "b200-fp8-mma": replace(tensor_core("B200", E4M3, instruction="mma"), name="b200-fp8-mma"),
        "rtx5090-fp8": replace(tensor_core("RTX5090", E4M3), name="rtx5090-fp8"),
        "h100-fp8-wgmma-fp16": replace(tensor_core("H100", E4M3, "fp16"), name="h100-fp8-wgmma-fp16"),
        "mi300x-fp8": replace(tensor_core("MI300X", E4M3FNUZ), name="mi300x-fp8"),
    }
    # block-scaled GEMM paths (cuBLASLt / CUTLASS MXFP8, MXFP4, NVFP4 on tcgen05 and sm_120 mma)
    for name, gpu, fmt, block, scale in (("b200-mxfp8", "B200", "E4M3", 32, "E8M0"),
                                         ("b200-mxfp4", "B200", "E2M1", 32, "E8M0"),
                                         ("b200-nvfp4", "B200", "E2M1", 16, "E4M3"),
                                         ("rtx5090-mxfp8", "RTX5090", "E4M3", 32, "E8M0"),
                                         ("rtx5090-mxfp4", "RTX5090", "E2M1", 32, "E8M0"),
                                         ("rtx5090-nvfp4", "RTX5090", "E2M1", 16, "E4M3")):
        p[name] = replace(tensor_core(gpu, fmt, block_size=block, scale_format=scale), name=name)
    return p


PRESETS: dict[str, object] = _presets()


def get(name: str):
    """The model named ``name`` (see ``PRESETS``); unknown names raise ``ValueError`` listing valid ones."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in PRESETS:
        raise ValueError(f"unknown accumulation model {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[key]
