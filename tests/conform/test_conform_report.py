"""What the table says when nothing was compared (skipped suites) and when no model explains a backend."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import fp8ref
from fp8ref.backends import Backend, Capabilities
from fp8ref.conform import format_table, run

from .small_set import copy_cases

MM = ("matmul/k40-e4m3xe5m2-rowwise-exact", "matmul/k40-e4m3xe5m2-rowwise-fp32")
TRAINER = ("trainer/step000/h.0.attn.qkv",)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cases(tmp_path_factory.mktemp("report") / "set",
                      ids=("casts/E4M3/quantize-f32-nearest_even-sat", *MM, *TRAINER))


def _row(text: str, suite: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(suite + " "))


def test_skipped_suites_say_skipped_and_why(mixed: Path) -> None:
    """ml_dtypes has no scaled_mm and no amax: its matmul and trainer rows used to read '0 elements ...
    100.00%'."""
    text = format_table(run("ml_dtypes", mixed))
    for suite in ("matmul", "trainer"):
        row = _row(text, suite)
        assert "100.00%" not in row and re.search(r" -\s+-  all skipped: ", row), row
    assert _row(text, "matmul").endswith("all skipped: scaled_mm is not implemented")
    assert _row(text, "trainer").endswith("all skipped: amax is not implemented")
    assert "100.00%" in _row(text, "casts")
    assert text.rstrip().endswith("result: PASS (3 of 4 cases skipped)")


class _Unexplained(Backend):
    """Claims fp32 accumulation; returns 3 x (the exact product) + 1: no model reproduces any element."""

    name = "unexplained"
    capabilities = Capabilities(ops=("scaled_mm",), mm_formats=(("E4M3", "E5M2"), ("E4M3", "E4M3")),
                                granularities=(("tensor", "tensor"), ("row", "column")),
                                out_dtypes=("float32",), accumulation="fp32")

    def scaled_mm(self, a, b, scale_a=1.0, scale_b=1.0, *, a_format="E4M3", b_format="E4M3", bias=None,
                  out_dtype=np.float32, scale_result=None, accumulate=None, strict_torch=False):
        self.check_accumulate(accumulate)
        out = fp8ref.scaled_mm(a, b, scale_a, scale_b, a_format=a_format, b_format=b_format, bias=bias,
                               out_dtype=out_dtype, accumulate="exact")
        return (out * np.float32(3) + np.float32(1)).astype(np.float32)


def test_no_model_explains_a_backend_that_no_preset_reproduces(mixed: Path) -> None:
    rep = run(_Unexplained(), mixed, suites=["matmul"], isolate=False)
    acc = rep.accumulation
    assert acc["best"] is None and not acc["explains_all"]
    assert all(r["bit_exact"] == 0 for r in acc["ranking"])
    text = format_table(rep)
    assert "best explained by" not in text
    assert (f"matmul accumulation: claimed 'fp32'; no model explains it: none of the {len(acc['ranking'])} "
            "presets reproduces a single element bit for bit") in text


def test_a_partial_explanation_says_so(mixed: Path) -> None:
    rep = run("reference", mixed, suites=["matmul"], infer_accumulation=True)
    text = format_table(rep)
    assert "best explained by 'exact' (every element bit-exact)" in text
    a = dict(rep.accumulation)
    a["explains_all"] = False
    rep.accumulation = a
    top = a["ranking"][0]
    assert (f"best explained by 'exact' ({top['bit_exact']}/{top['elements']} elements bit-exact); no model "
            "reproduces every element") in format_table(rep)
