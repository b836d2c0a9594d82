"""The golden suite ``tensorcore``: one case per distinct instruction model of the vendor tables, checkable
with ``fp8ref conform`` (the reference backend reproduces it; a backend without ``tensor_core_gemm``
skips)."""

from __future__ import annotations

from fp8ref import accum
from fp8ref.cli import main
from fp8ref.golden.suites import tensorcore


def test_cases_cover_every_model_of_the_tables():
    models = {repr(tensorcore.model_of(p)) for p in tensorcore.combinations()}
    for g in accum.GPUS:
        for ins in accum.instructions(g):
            for f in accum.IN_FORMATS:
                for o in ("fp32", "fp16"):
                    try:
                        m = accum.tensor_core(g, f, o, instruction=ins)
                    except ValueError:
                        continue
                    assert repr(m) in models, (g, ins, f, o)
            for f, bs, sf in accum.block_scaled(g, ins):
                m = accum.tensor_core(g, f, instruction=ins, block_size=bs, scale_format=sf)
                assert repr(m) in models, (g, ins, f, bs, sf)
    cases = tensorcore.build()
    assert len(cases) == len(models) and all(c.inputs["a"].shape[0] == tensorcore.M for c in cases)


def test_conform_reference_backend_reproduces_the_suite(capsys):
    assert main(["conform", "--backend", "reference", "--suite", "tensorcore", "--no-infer",
                 "--no-isolate"]) == 0
    out = capsys.readouterr().out
    assert "tensorcore" in out and "100.00%" in out and "skipped" not in out.split("tensorcore", 1)[1][:80]


def test_conform_backend_without_the_op_skips(capsys):
    assert main(["conform", "--backend", "ml_dtypes", "--suite", "tensorcore", "--no-infer",
                 "--no-isolate"]) == 0
    assert "tensor_core_gemm is not implemented" in capsys.readouterr().out
