"""Named models: the tensor-core parameter table and the presets.

Parameters from the Khattak–Mikaitis tensor-core models (github north-numerical-computing/MATLAB-tensor-core
@ b12b5a7, ``models/*TC.m``), corroborated by MMA-Sim (microsoft/MMA-Sim ``nv_ptx.py``), Fasi et al.
(PeerJ CS 7:e330) and the HPEC'25 probes; ``fp8ref hwcheck`` replays the published GPU measurements through
them (docs/accumulation.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fp8ref.accum import amd
from fp8ref.accum.models import BlockFMA, Exact, Promoted, Sequential
from fp8ref.formats import BF16, E4M3, E4M3FNUZ, E5M2, FP16, FP32, TF32, Format
from fp8ref.formats import format as _resolve_format

GPUS = ("V100", "A100", "A2", "Ada", "L40S", "H100", "H200", "B200") + amd.GPUS
IN_FORMATS = ("fp16", "bf16", "tf32", "E4M3", "E5M2")

_MTC = "Khattak & Mikaitis, MATLAB-tensor-core @ b12b5a7 models/"


@dataclass(frozen=True)
class _Row:
    """One line of the parameter table (per GPU family, input class, output)."""

    nfma: int
    frac_bits: int
    out_frac_bits: int
    rounding: str
    e_floor: int | None
    source: str
    confirmed: bool = True
    c_mode: str = "aligned"
    k_order: tuple[int, ...] | None = None


# mma.sync m16n8k32 FP8 -> fp16 on H100/H200/B200 runs as two k16 fp16 block FMAs: the first takes the
# pairs k = 0,1, 4,5, 8,9, ... (bit 1 of k clear), the second k = 2,3, 6,7, ... (docs/accumulation.md §5)
K32_PAIRS_ORDER = tuple(k for k in range(32) if not k & 2) + tuple(k for k in range(32) if k & 2)
_FP8_F16 = ("FP8 -> fp16 mma.sync (fp8ref hwcheck, docs/accumulation.md §5): the operands as fp16, two k16 "
            "fp16 block FMAs (NFMA 16, F 25, RNE; pairs k=4j,4j+1 first, then k=4j+2,4j+3) chained from 0, "
            "then one fp16 RNE addition of c; reproduces every E4M3/E5M2 fp16-output measurement")

# (family, input class, output) -> parameters. Input classes: "half" = fp16/bf16, "tf32", "fp8".
# fp16 output exists for fp16 inputs and (unconfirmed) FP8 inputs only.
_TABLE: dict[tuple[str, str, str], _Row] = {
    ("volta", "fp16", "fp32"): _Row(4, 23, 23, "rz", -1024, _MTC + "V100TC.m"),
    ("volta", "fp16", "fp16"): _Row(4, 23, 10, "rne", -19, _MTC + "V100TC.m"),
    ("ampere", "half", "fp32"): _Row(8, 24, 23, "rz", -132, _MTC + "A100TC.m"),
    ("ampere", "fp16", "fp16"): _Row(8, 24, 10, "rne", -20, _MTC + "A100TC.m"),
    ("ampere", "tf32", "fp32"): _Row(4, 24, 23, "rz", -132, _MTC + "A100TC.m"),
    ("ada", "half", "fp32"): _Row(8, 24, 23, "rz", -132, _MTC + "AdaTC.m / L40STC.m"),
    ("ada", "fp16", "fp16"): _Row(8, 24, 10, "rne", -20, _MTC + "AdaTC.m / L40STC.m"),
    ("ada", "tf32", "fp32"): _Row(4, 24, 23, "rz", -132, _MTC + "AdaTC.m / L40STC.m"),
    ("ada", "fp8", "fp32"): _Row(16, 13, 13, "rz", -132, _MTC + "AdaTC.m / L40STC.m"),
    ("ada", "fp8", "fp16"): _Row(16, 13, 10, "rne", -132, "MMA-Sim nv_ptx.py (f16 output = RNE of "
                                 "the F=13 sum), c rounded to fp16; reproduces every Ada E4M3/E5M2 "
                                 "fp16-output measurement (fp8ref hwcheck)"),
    ("hopper", "half", "fp32"): _Row(16, 25, 23, "rz", -133, _MTC + "H100TC.m / H200TC.m"),
    ("hopper", "fp16", "fp16"): _Row(16, 25, 10, "rne", -21, _MTC + "H100TC.m / H200TC.m"),
    ("hopper", "tf32", "fp32"): _Row(8, 25, 23, "rz", -133, _MTC + "H100TC.m / H200TC.m"),
    ("hopper", "fp8", "fp32"): _Row(32, 13, 13, "rz", -133, _MTC + "H100TC.m (wgmma, e8m13 output); "
                                    "MMA-Sim; SageAttention2; DeepSeek-V3 §3.3.2"),
    ("hopper", "fp8", "fp16"): _Row(16, 25, 10, "rne", -21, _FP8_F16 + " of H100 and H200", c_mode="last",
                                    k_order=K32_PAIRS_ORDER),
    ("blackwell", "half", "fp32"): _Row(16, 25, 23, "rz", -133, _MTC + "B200TC.m"),
    ("blackwell", "fp16", "fp16"): _Row(16, 25, 10, "rne", -21, _MTC + "B200TC.m"),
    ("blackwell", "tf32", "fp32"): _Row(8, 25, 23, "rz", -133, _MTC + "B200TC.m"),
    ("blackwell", "fp8", "fp32"): _Row(
        32, 25, 23, "rz", -133, "fp8ref (docs/accumulation.md §5): the k32 products summed at F=25 and "
        "rounded toward zero, then one fp32 RNE addition of c; reproduces every B200 E4M3/E5M2 measurement "
        "(published B200TC/B200TCRN models: 64 %/94 %)", c_mode="separate"),
    ("blackwell", "fp8", "fp16"): _Row(16, 25, 10, "rne", -21, _FP8_F16 + " of B200", c_mode="last",
                                       k_order=K32_PAIRS_ORDER),
}

_FAMILY = {"V100": "volta", "A100": "ampere", "A2": "ampere", "Ada": "ada", "L40S": "ada", "H100": "hopper",
           "H200": "hopper", "B200": "blackwell"}
_INPUTS = {"volta": ("fp16",), "ampere": ("fp16", "bf16", "tf32"), "ada": IN_FORMATS, "hopper": IN_FORMATS,
           "blackwell": IN_FORMATS}


def _gpu_key(gpu: str) -> str:
    if not isinstance(gpu, str):
        raise TypeError(f"gpu must be a string, got {type(gpu).__name__}")
    for g in GPUS:
        if g.lower() == gpu.strip().lower():
            return g
    raise ValueError(f"unknown gpu {gpu!r}; valid: {', '.join(GPUS)}")


def _in_key(fmt: Format | str) -> tuple[Format, str]:
    f = fmt if isinstance(fmt, Format) else _resolve_format(fmt)
    names = {FP16: "fp16", BF16: "bf16", TF32: "tf32", E4M3: "E4M3", E5M2: "E5M2"}
    if f not in names:
        raise ValueError(f"in_format {f.name} has no tensor-core model; valid: {', '.join(IN_FORMATS)}")
    return f, names[f]


def _out_key(fmt: Format | str) -> tuple[Format, str]:
    f = fmt if isinstance(fmt, Format) else _resolve_format(fmt)
    if f == FP32:
        return f, "fp32"
    if f == FP16:
        return f, "fp16"
    raise ValueError(f"out_format {f.name} has no tensor-core model; valid: fp32, fp16")


def tensor_core(gpu: str, in_format: Format | str, out_format: Format | str = "fp32", *,
                instruction: str | None = None) -> BlockFMA | amd.Mfma:
    """The block-FMA model of one MMA instruction path of ``gpu`` for ``in_format`` inputs.

    ``gpu``: V100, A100, A2, Ada, L40S, H100, H200, B200 (case-insensitive); ``in_format``: fp16, bf16,
    tf32, E4M3, E5M2; ``out_format``: fp32 or fp16. Combinations the GPU does not have raise ``ValueError``.
    Every model of the table reproduces the published measurements of its GPU (``confirmed=True``).
    AMD ``gpu`` MI100, MI250X, MI300X: :func:`fp8ref.accum.amd.mfma` (``instruction`` ``None`` or
    ``"mfma"``; docs/accumulation.md §10).
    """
    if isinstance(gpu, str) and amd.gpu_key(gpu) is not None:
        return amd.mfma(gpu, in_format, out_format, instruction)
    g = _gpu_key(gpu)
    if instruction is not None:
        raise ValueError(f"instruction {instruction!r}: valid for {g}: None")
    fin, iname = _in_key(in_format)
    fout, oname = _out_key(out_format)
    fam = _FAMILY[g]
    if iname not in _INPUTS[fam]:
        raise ValueError(f"{g} tensor cores take {', '.join(_INPUTS[fam])} inputs, not {iname}")
    cls = "fp8" if iname in ("E4M3", "E5M2") else ("tf32" if iname == "tf32" else "half")
    key = (fam, cls, oname)
    if oname == "fp16":
        if iname == "bf16" or iname == "tf32":
            raise ValueError(f"{g}: {iname} inputs have no fp16-output instruction (fp16 output needs fp16 "
                             "or FP8 inputs)")
        key = (fam, "fp16" if iname == "fp16" else "fp8", "fp16")
    elif iname == "fp16" and (fam, "fp16", "fp32") in _TABLE:
        key = (fam, "fp16", "fp32")
    if key not in _TABLE:
        raise ValueError(f"{g}: no model for {iname} inputs with {oname} output")
    row = _TABLE[key]
    return BlockFMA(row.nfma, row.frac_bits, row.out_frac_bits, row.rounding, row.e_floor, in_format=fin,
                    out_format=fout, c_mode=row.c_mode, k_order=row.k_order, name=f"{g}-{iname}-{oname}",
                    confirmed=row.confirmed, source=row.source)


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
        "mi300x-fp8": replace(tensor_core("MI300X", E4M3FNUZ), name="mi300x-fp8"),
    }
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
