"""The golden suite ``tensorcore``: one case per distinct instruction model of the vendor tables, checkable
with ``fp8ref conform`` (the reference backend reproduces it; a backend without ``tensor_core_gemm``
skips)."""

from __future__ import annotations

from fp8ref import accum
from fp8ref.cli import main
from fp8ref.golden.suites import tensorcore
from tests.accum.helpers import all_models, scaled_models


def test_cases_cover_every_model_of_the_tables():
    """Every model of the tables (walked by the accumulation tests' own helpers) has a case."""
    models = {repr(tensorcore.model_of(p)) for p in tensorcore.combinations()}
    table = [m for label, m in all_models() if label.count(":") == 3] + [m for _, m in scaled_models()]
    assert len(table) > 100
    for m in table:
        assert repr(m) in models, m.name
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


def test_tensor_core_pair_is_for_inputs_where_the_formats_differ():
    assert accum.tensor_core_pair("MI300X", "xf32", "xf32") == accum.tensor_core("MI300X", "xf32")
    mixed = accum.tensor_core_pair("MI300X", "E4M3FNUZ", "E5M2FNUZ")
    assert mixed == accum.tensor_core("MI300X", "E4M3FNUZ").for_inputs("E4M3FNUZ", "E5M2FNUZ")
    assert mixed.format_b.name == "E5M2FNUZ"
    nv = accum.tensor_core_pair("H100", "E4M3", "E5M2", instruction="wgmma")
    assert nv == accum.tensor_core("H100", "E4M3", instruction="wgmma").for_inputs("E4M3", "E5M2")
