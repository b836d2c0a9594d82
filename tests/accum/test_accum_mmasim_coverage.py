"""Every instruction MMA-Sim models has a model here: its own instruction lists (``mmasim/isa``: mma and
mma.block_scale per NVIDIA architecture, wgmma, tcgen05 and tcgen05 block-scale, AMD MFMA per CDNA
generation) walked qualifier by qualifier, each resolved through ``fp8ref.accum.tensor_core``. Runs where
MMA-Sim is importable (github.com/microsoft/MMA-Sim, pure Python: put its checkout on PYTHONPATH)."""

from __future__ import annotations

import itertools

import pytest

from fp8ref import accum

GPU = {"Volta": "V100", "Turing": "T4", "Ampere": "A100", "Ada Lovelace": "Ada", "Hopper": "H100",
       "Blackwell": "B200", "RTX Blackwell": "RTX5090"}
AMD_GPU = {"CDNA1": "MI100", "CDNA2": "MI250X", "CDNA3": "MI300X"}
NAME = {"f16": "fp16", "bf16": "bf16", "tf32": "tf32", "f64": "fp64", "f32": "fp32", "e4m3": "E4M3",
        "e5m2": "E5M2", "e2m1": "E2M1", "e3m2": "E3M2", "e2m3": "E2M3"}
SCALE = {"ue8m0": "E8M0", "ue4m3": "E4M3"}


def _sim(module: str):
    return pytest.importorskip(module, reason="MMA-Sim is not importable (github.com/microsoft/MMA-Sim, pure "
                                              "Python; put its checkout on PYTHONPATH to run this check)")


def _nvidia(gpu: str, ins: str, a: str, b: str, d: str, **scaled):
    """The model of (a x b -> d); a mixed pair from the model of a format the kind takes both ways (E2M1
    alone selects kind::mxf4nvf4, so an E2M1 x E4M3 pair starts from the E4M3 model)."""
    first = b if a == "e2m1" and b != "e2m1" else a
    m = accum.tensor_core(gpu, NAME[first], NAME[d], instruction=ins, **scaled)
    return m if a == b else m.for_inputs(NAME[a], NAME[b])


def _accepted(cls, arch: str, qualifiers):
    out = []
    for q in qualifiers:
        try:
            cls(arch, q)
        except AssertionError:
            continue
        out.append(q)
    return out


def test_every_mma_instruction():
    nv = _sim("mmasim.isa.nv_ptx.nv_mma")
    n = 0
    for arch, quals in nv.arch_mma_qualifiers.items():
        for q in quals:
            _shape, d, a, b, _c = q.split(".")
            _nvidia(GPU[arch], "mma", a, b, d)
            n += 1
    for arch, quals in nv.arch_mma_block_scale_qualifiers.items():
        for q in quals:
            _shape, block, d, a, b, _c, s = q.split(".")
            _nvidia(GPU[arch], "mma", a, b, d, block_size=int(block[5:]), scale_format=SCALE[s])
            n += 1
    assert n > 100


def test_every_wgmma_and_tcgen05_instruction():
    wg = _sim("mmasim.isa.nv_ptx.nv_wgmma")
    tc = _sim("mmasim.isa.nv_ptx.nv_tcgen05mma")
    types = ("f16", "bf16", "tf32", "e4m3", "e5m2", "e2m1")
    combos = itertools.product((64, 128), (8, 16, 32), ("f32", "f16"), types, types)
    plain = [f"m{m}n8k{k}.{d}.{a}.{b}" for m, k, d, a, b in combos]
    wgmma = _accepted(wg.wgmma, "Hopper", plain)
    tcgen05 = _accepted(tc.tcgen05mma, "Blackwell", plain)
    assert len(wgmma) > 5 and len(tcgen05) > 5
    for gpu, ins, quals in (("H100", "wgmma", wgmma), ("B200", "tcgen05", tcgen05)):
        for q in quals:
            _shape, d, a, b = q.split(".")
            _nvidia(gpu, ins, a, b, d)
    scaled = [f"m128n8k{k}.block{bs}.f32.{a}.{b}.{s}" for k, bs, a, b, s in
              itertools.product((32, 64), (16, 32), types, types, SCALE)]
    for q in _accepted(tc.tcgen05mma_block_scale, "Blackwell", scaled):
        _shape, block, d, a, b, s = q.split(".")
        _nvidia("B200", "tcgen05", a, b, d, block_size=int(block[5:]), scale_format=SCALE[s])


def _mfma_formats(q: str) -> tuple[str, str]:
    tail = q.split("_", 1)[1]
    if "xf32" in tail:
        return "xf32", "xf32"
    if "fp8" in tail or "bf8" in tail:
        a, b = tail.split("_")[-2:]
        fnuz = {"fp8": "E4M3FNUZ", "bf8": "E5M2FNUZ"}
        return fnuz[a], fnuz[b]
    for t, name in (("f64", "fp64"), ("f32", "fp32"), ("bf16", "bf16"), ("f16", "fp16")):
        if tail.endswith(t) or tail.endswith(t + "_1k"):
            return name, name
    raise AssertionError(f"unparsed MFMA qualifier {q}")


def test_every_mfma_instruction():
    amd = _sim("mmasim.isa.amd")
    n = 0
    for arch, quals in amd.arch_mfma_qualifiers.items():
        for q in quals:
            fa, fb = _mfma_formats(q)
            out = {"f32": "fp32", "f64": "fp64"}[q.split("_")[0]]
            m = accum.tensor_core(AMD_GPU[arch], fa, out)
            if fa != fb:
                m = m.for_inputs(m.in_format, accum.tensor_core(AMD_GPU[arch], fb).in_format)
            n += 1
    assert n > 50
