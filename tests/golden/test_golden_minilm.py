"""The optional ``minilm`` suite: real first-layer inputs of all-MiniLM-L6-v2 (skipped without the model's
packages). It is not part of the default set, so golden/ stays byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fp8ref.golden import SUITES, compute, generate, load_case
from fp8ref.golden.ops import ALL_SUITES, OPTIONAL_SUITES, op_suite
from fp8ref.golden.suites import minilm as suite

REPO = Path(__file__).resolve().parents[2]


def test_minilm_is_optional_and_outside_the_default_set() -> None:
    assert "minilm" in OPTIONAL_SUITES and "minilm" not in SUITES and ALL_SUITES[-1] == "minilm"
    assert op_suite("minilm_linear") == "minilm"
    committed = REPO / "golden" / "manifest.json"
    if committed.is_file():
        assert "minilm" not in json.loads(committed.read_text())["suites"]


@pytest.fixture(scope="module")
def minilm_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fp8ref.models import minilm

    missing = minilm.missing_packages()
    if missing:
        pytest.skip(f"the minilm suite needs {', '.join(missing)}: {minilm.INSTALL}")
    root = tmp_path_factory.mktemp("golden-minilm")
    generate(root, ["minilm"])
    return root


def test_minilm_suite_holds_the_real_first_layer(minilm_set: Path) -> None:
    from fp8ref.models import minilm

    m = json.loads((minilm_set / "manifest.json").read_text())
    assert m["suites"] == ["minilm"] and m["command"] == "fp8ref golden generate DIR --suite minilm"
    ids = [e["id"] for e in m["cases"]]
    assert ids == [f"minilm/L0.{k}/{f}" for k in ("query", "key", "value", "attn_out", "mlp_in", "mlp_out")
                   for f in ("ocp", "fnuz")]
    model = minilm.load()
    e = m["cases"][0]
    case = load_case(minilm_set, e)
    assert np.array_equal(case.inputs["w"], model.params["L0.query.w"])
    assert case.inputs["x"].shape == (model.tokenize(e["params"]["sentences"]).batch.n_tokens, 384)
    assert case.formats["amax_x_codes"] == "E4M3" and int(case.outputs["cscale_bias_w"]) == 2
    assert sum(e["bytes"] for e in m["cases"]) < 48 * 1024 * 1024


@pytest.mark.parametrize("index", [0, 11])  # L0.query/ocp (every hardware model), L0.mlp_out/fnuz
def test_minilm_cases_recompute_bit_for_bit(minilm_set: Path, index: int) -> None:
    e = json.loads((minilm_set / "manifest.json").read_text())["cases"][index]
    case = load_case(minilm_set, e)
    res = compute(case.op, case.params, case.inputs)
    assert set(res.outputs) == set(case.outputs)
    for k, v in case.outputs.items():
        assert np.asarray(res.outputs[k]).tobytes() == v.tobytes(), k
    ys = [k for k in case.outputs if k.startswith("amax_y_")]
    assert len(ys) == len(suite.ACCUMULATE[e["params"]["formats"]])
