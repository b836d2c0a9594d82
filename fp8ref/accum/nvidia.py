"""NVIDIA's tensor-core instructions: GPUs, families, default instructions and the parameter table.

Sources, cited per row: Khattak & Mikaitis, MATLAB-tensor-core @ b12b5a7 ``models/*TC.m`` (MTC, with the GPU
measurements ``fp8ref hwcheck`` replays); MMA-Sim (github microsoft/MMA-Sim @ c785138,
``mmasim/simulator/nv_ptx.py``, ``arithmetic.py``, ``mmasim/isa/nv_ptx/*.py``; arXiv 2511.10909); DeepGEMM
issue 176 (25 fractional bits of ``tcgen05.mma kind::f8f6f4`` on B200, measured); the PTX ISA (instruction
shapes). docs/accumulation.md §4 is the same table in prose.
"""

from __future__ import annotations

from fp8ref.accum.models import fp64_fma_chain
from fp8ref.accum.rows import Row, ScaledRow, Vendor

_MTC = "Khattak & Mikaitis, MATLAB-tensor-core @ b12b5a7 models/"
_SIM = "MMA-Sim @ c785138 mmasim/simulator/nv_ptx.py"
_SIM_FLOOR = "; E_floor -126: MMA-Sim aligns with the accumulator's exponent, at least -126 (also for c = 0)"

# mma.sync m16n8k32 FP8 -> fp16 on H100/H200/B200 runs as two k16 fp16 block FMAs: the first takes the
# pairs k = 0,1, 4,5, 8,9, ... (bit 1 of k clear), the second k = 2,3, 6,7, ... (docs/accumulation.md §5)
K32_PAIRS_ORDER = tuple(k for k in range(32) if not k & 2) + tuple(k for k in range(32) if k & 2)
_FP8_F16 = ("FP8 -> fp16 mma.sync (fp8ref hwcheck, docs/accumulation.md §5): the operands as fp16, two k16 "
            "fp16 block FMAs (NFMA 16, F 25, RNE; pairs k=4j,4j+1 first, then k=4j+2,4j+3) chained from 0, "
            "then one fp16 RNE addition of c; reproduces every E4M3/E5M2 fp16-output measurement")

HALF = ("fp16", "bf16", "tf32")
FP8 = HALF + ("E4M3", "E5M2")
F8F6F4 = ("E4M3", "E5M2", "E2M1", "E2M3", "E3M2")
# input format -> the classes its rows may be keyed by, most specific first
CLASSES = {"fp16": ("fp16", "half"), "bf16": ("bf16", "half"), "tf32": ("tf32",), "E4M3": ("fp8", "f8f6f4"),
           "E5M2": ("fp8", "f8f6f4"), "E2M1": ("f8f6f4",), "E2M3": ("f8f6f4",), "E3M2": ("f8f6f4",),
           "fp64": ("fp64",)}


# mma.sync .f64 (sm_80 m8n8k4; sm_90a m16n8k4 / k8 / k16): MMA-Sim's nv_ptx.mma takes fp64 operands through
# arithmetic.fma (libm fma) product by product in k order, starting from c
_FP64 = {("fp64", "fp64"): Row(1, 52, 52, "rne", None, _SIM + " (f64: sum = fma(a_k, b_k, sum) for k in "
                               "order from c; isa/nv_ptx/nv_mma.py: sm_80 m8n8k4, sm_90a m16n8k4/k8/k16 "
                               ".f64)", build=lambda row, fin, fout, name: fp64_fma_chain(name))}


def _same(fam: str, instr: str, rows: dict[tuple[str, str], Row]) -> dict[tuple[str, str, str, str], Row]:
    return {(fam, instr, cls, out): row for (cls, out), row in rows.items()}


def _blackwell_like(src: str, floor: int) -> dict[tuple[str, str], Row]:
    """The f16/bf16/tf32 rows of Hopper and Blackwell (k16 / k8 fused whole, F = 25)."""
    return {("half", "fp32"): Row(16, 25, 23, "rz", floor, src),
            ("fp16", "fp16"): Row(16, 25, 10, "rne", -21 if floor == -133 else floor, src),
            ("tf32", "fp32"): Row(8, 25, 23, "rz", floor, src)}


def _f8f6f4(src: str) -> dict[tuple[str, str], Row]:
    """kind::f8f6f4 (tcgen05) and sm_120 mma k32: the 32 products and c aligned together at F = 25, one
    rounding (RZ to fp32, RNE to fp16)."""
    return {("f8f6f4", "fp32"): Row(32, 25, 23, "rz", -126, src + _SIM_FLOOR),
            ("f8f6f4", "fp16"): Row(32, 25, 10, "rne", -126, src + _SIM_FLOOR)}


_HOPPER = _blackwell_like(_MTC + "H100TC.m / H200TC.m; " + _SIM + " (mma and wgmma: k16/k8 fused)", -133)
_BLACKWELL = _blackwell_like(_MTC + "B200TC.m; " + _SIM + " (mma and tcgen05: k16/k8 fused)", -133)

TABLE: dict[tuple[str, str, str, str], Row] = {
    **_same("volta", "mma", {
        ("fp16", "fp32"): Row(4, 23, 23, "rz", -1024, _MTC + "V100TC.m; " + _SIM + " (Volta F=23)"),
        ("fp16", "fp16"): Row(4, 23, 10, "rne", -19, _MTC + "V100TC.m")}),
    **_same("turing", "mma", {
        ("fp16", "fp32"): Row(8, 24, 23, "rz", -126, _SIM + " (Turing m16n8k8 f16: F=24, k8 fused; no "
                              "measurements)" + _SIM_FLOOR),
        ("fp16", "fp16"): Row(8, 24, 10, "rne", -126, _SIM + " (Turing m16n8k8 f16 -> f16: F=24, RNE)"
                              + _SIM_FLOOR)}),
    **_same("ampere", "mma", {
        ("half", "fp32"): Row(8, 24, 23, "rz", -132, _MTC + "A100TC.m"),
        ("fp16", "fp16"): Row(8, 24, 10, "rne", -20, _MTC + "A100TC.m"),
        ("tf32", "fp32"): Row(4, 24, 23, "rz", -132, _MTC + "A100TC.m"), **_FP64}),
    **_same("ada", "mma", {
        ("half", "fp32"): Row(8, 24, 23, "rz", -132, _MTC + "AdaTC.m / L40STC.m"),
        ("fp16", "fp16"): Row(8, 24, 10, "rne", -20, _MTC + "AdaTC.m / L40STC.m"),
        ("tf32", "fp32"): Row(4, 24, 23, "rz", -132, _MTC + "AdaTC.m / L40STC.m"),
        ("fp8", "fp32"): Row(16, 13, 13, "rz", -132, _MTC + "AdaTC.m / L40STC.m"),
        ("fp8", "fp16"): Row(16, 13, 10, "rne", -132, _SIM + " (f16 output = RNE of the F=13 sum), c "
                             "rounded to fp16; reproduces every Ada E4M3/E5M2 fp16-output measurement "
                             "(fp8ref hwcheck)"), **_FP64}),
    **_same("hopper", "mma", {
        **_HOPPER, **_FP64,
        ("fp8", "fp16"): Row(16, 25, 10, "rne", -21, _FP8_F16 + " of H100 and H200", c_mode="last",
                             k_order=K32_PAIRS_ORDER)}),
    **_same("hopper", "wgmma", {
        **_HOPPER,
        ("fp8", "fp32"): Row(32, 13, 13, "rz", -133, _MTC + "H100TC.m (wgmma, e8m13 output); " + _SIM
                             + " wgmma; SageAttention2; DeepSeek-V3 §3.3.2"),
        ("fp8", "fp16"): Row(32, 13, 10, "rne", -126, _SIM + " wgmma (k32 fused at F=13, RNE to fp16; no "
                             "measurements: the fp16-output data are mma.sync)" + _SIM_FLOOR)}),
    **_same("blackwell", "mma", {
        **_BLACKWELL, **_FP64,
        ("fp8", "fp32"): Row(32, 25, 23, "rz", -133, "fp8ref (docs/accumulation.md §5): the k32 products "
                             "summed at F=25 and rounded toward zero, then one fp32 RNE addition of c; "
                             "reproduces every B200 E4M3/E5M2 measurement (MTC's CUDA driver is "
                             "mma_fp8_output_fp32.cu; published B200TC/B200TCRN models: 64 %/94 %)",
                             c_mode="separate"),
        ("fp8", "fp16"): Row(16, 25, 10, "rne", -21, _FP8_F16 + " of B200", c_mode="last",
                             k_order=K32_PAIRS_ORDER)}),
    **_same("blackwell", "tcgen05", {
        **_BLACKWELL,
        **_f8f6f4(_SIM + " tcgen05mma (kind::f8f6f4 k32 fused, c inside); DeepGEMM issue 176 (25 fractional "
                  "bits on B200, measured)")}),
    **_same("rtx-blackwell", "mma", {
        ("half", "fp32"): Row(16, 25, 23, "rz", -126, _SIM + " (RTX Blackwell: F=25, k16 not split)"
                              + _SIM_FLOOR),
        ("fp16", "fp16"): Row(16, 25, 10, "rne", -126, _SIM + " (RTX Blackwell)" + _SIM_FLOOR),
        ("tf32", "fp32"): Row(8, 25, 23, "rz", -126, _SIM + " (RTX Blackwell)" + _SIM_FLOOR),
        **_f8f6f4(_SIM + " (sm_120a m16n8k32 f8f6f4, k32 fused, c inside); huweim/emulation_sys (RTX 5090 "
                  "FP8: 25 bits)"), **_FP64}),
}

_MXF8 = ScaledRow("mxf8f6f4", 32, 0, 25, F8F6F4, ((32, "E8M0"),),
                  _SIM + " mma_block_scale / tcgen05mma_block_scale (k=32: nv_fused_dot_add with the two "
                  "UE8M0 exponents added to each product's exponent, F=25); arithmetic.py fused_dot_add")
_NVF4_SRC = (_SIM + " (k=64: F=35); arithmetic.py nv_fused_dot_add_with_block_scale (each 16 products "
             "summed exactly, times the two scales, aligned by the scale exponents; RZ to fp32)")
SCALED: dict[tuple[str, str], tuple[ScaledRow, ...]] = {
    ("blackwell", "tcgen05"): (_MXF8, ScaledRow("mxf4nvf4", 64, 16, 35, ("E2M1",),
                                                ((16, "E4M3"), (32, "E8M0"), (16, "E8M0")),
                                                _NVF4_SRC + "; isa/nv_ptx/nv_tcgen05mma.py (UE4M3 with "
                                                "block 16 only)")),
    ("rtx-blackwell", "mma"): (_MXF8, ScaledRow("mxf4nvf4", 64, 16, 35, ("E2M1",),
                                                ((16, "E4M3"), (32, "E8M0"), (16, "E8M0"), (32, "E4M3")),
                                                _NVF4_SRC + "; isa/nv_ptx/nv_mma.py (sm_120a qualifiers)")),
}

GPUS = {"V100": "volta", "T4": "turing", "A100": "ampere", "A2": "ampere", "Ada": "ada", "L40S": "ada",
        "H100": "hopper", "H200": "hopper", "B200": "blackwell", "RTX5090": "rtx-blackwell"}
DEFAULT_INSTRUCTION = {"volta": "mma", "turing": "mma", "ampere": "mma", "ada": "mma", "hopper": "wgmma",
                       "blackwell": "tcgen05", "rtx-blackwell": "mma"}
INPUTS = {("volta", "mma"): ("fp16",), ("turing", "mma"): ("fp16",), ("ampere", "mma"): HALF + ("fp64",),
          ("ada", "mma"): FP8 + ("fp64",), ("hopper", "mma"): FP8 + ("fp64",), ("hopper", "wgmma"): FP8,
          ("blackwell", "mma"): FP8 + ("fp64",), ("blackwell", "tcgen05"): HALF + F8F6F4,
          ("rtx-blackwell", "mma"): HALF + F8F6F4 + ("fp64",)}

VENDOR = Vendor(GPUS, DEFAULT_INSTRUCTION, INPUTS, TABLE, SCALED, CLASSES)
