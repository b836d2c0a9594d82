"""Every backend result is checked against its operation's contract before it is compared: a wrong dtype,
shape or range is a failure of the case naming expected and observed, never converted into a pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fp8ref.conform import run
from fp8ref.conform.contract import CheckedBackend, ContractViolation, check_result

from . import misbehaving as mb
from .small_set import copy_cases

QUANTIZE = "casts/E4M3/quantize-f32-nearest_even-sat"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_cases(tmp_path_factory.mktemp("contract") / "set")


def _by_id(rep):
    return {c.id: c for c in rep.cases}


def test_the_well_behaved_test_backend_passes(small: Path) -> None:
    rep = run(mb.Casts(), small, isolate=False)
    assert rep.passed and all(c.status == "exact" for c in rep.cases)


@pytest.mark.parametrize("backend, words", [
    (mb.Int64Plus256(), "quantize returned dtype int64; expected uint8 codes of shape (1642,)"),
    (mb.FloatPlus04(), "quantize returned dtype float64; expected uint8 codes of shape (1642,)"),
    (mb.WrongShape(), "quantize returned shape (1641,); expected uint8 codes of shape (1642,)"),
    (mb.ListCodes(), "quantize returned builtins.list; expected uint8 codes of shape (1642,) "
                     "(a NumPy array)"),
])
def test_wrong_quantize_results_fail_the_case(small: Path, backend, words: str) -> None:
    """int64 codes + 256 and float codes + 0.4 are the right codes after astype(uint8): they must fail."""
    rep = run(backend, small, isolate=False)
    c = _by_id(rep)[QUANTIZE]
    assert c.status == "fail" and c.reason == f"contract violation: {words}"
    assert not rep.passed and rep.suites["casts"].failed == 1
    assert _by_id(rep)["casts/E4M3/dequantize-f32"].status == "exact"  # the other ops are fine


def test_wrong_dequantize_dtype_and_negative_amax(small: Path) -> None:
    c = _by_id(run(mb.Float64Values(), small, isolate=False))["casts/E4M3/dequantize-f32"]
    assert c.status == "fail"
    assert c.reason == ("contract violation: dequantize returned dtype float64; expected float32 values of "
                        "shape (256,)")
    c = _by_id(run(mb.NegativeAmax(), small, isolate=False))["scaling/amax-f32-axis0"]
    assert c.status == "fail" and "amax returned a negative value" in c.reason


def test_check_result_rules() -> None:
    x = np.zeros((2, 3), np.float32)
    check_result("quantize", np.zeros((2, 3), np.uint8), (x, "E4M3"), {})
    with pytest.raises(ContractViolation, match="codes 0..15"):  # a 4-bit format has 16 codes
        check_result("quantize", np.full((2, 3), 16, np.uint8), (x, "E2M1"), {})
    out = np.zeros((2, 3), np.uint8)
    check_result("quantize", out, (x, "E4M3"), {"out": out})
    check_result("amax", np.float32(1), (x,), {})
    check_result("amax", np.zeros(3, np.float32), (x,), {"axis": 0})
    check_result("amax", np.float32(np.nan), (x,), {})  # NaN propagates
    with pytest.raises(ContractViolation, match="builtins.float"):
        check_result("amax", 1.0, (x,), {})
    with pytest.raises(ContractViolation, match=r"shape \(2,\)"):
        check_result("amax", np.zeros(3, np.float32), (x,), {"axis": 1})
    a, b = np.zeros((4, 8), np.uint8), np.zeros((8, 5), np.uint8)
    check_result("scaled_mm", np.zeros((4, 5), np.float32), (a, b), {})
    import ml_dtypes

    check_result("scaled_mm", np.zeros((4, 5), ml_dtypes.bfloat16), (a, b), {"out_dtype": "bfloat16"})
    check_result("scaled_mm", np.zeros((4, 5), ml_dtypes.float8_e4m3fn), (a, b), {"out_dtype": "E4M3"})
    check_result("scaled_mm", np.zeros((4, 5), np.uint8), (a, b), {"out_dtype": "E4M3"})
    with pytest.raises(ContractViolation, match=r"dtype float32; expected float16 of shape \(4, 5\)"):
        check_result("scaled_mm", np.zeros((4, 5), np.float32), (a, b), {"out_dtype": np.float16})
    with pytest.raises(ContractViolation, match=r"shape \(5, 4\)"):
        check_result("scaled_mm", np.zeros((5, 4), np.float32), (a, b), {})
    # tensor_core_gemm: float32 results, float64 for an fp64 output however its name is spelled
    A, B, C = np.zeros((4, 8)), np.zeros((8, 5)), np.zeros((4, 5))
    for out, dtype, wrong in (("fp32", np.float32, np.float64), ("fp64", np.float64, np.float32),
                              ("FP64", np.float64, np.float32)):
        args = ("A100", "mma", "fp64", "fp64", out, A, B, C)
        check_result("tensor_core_gemm", np.zeros((4, 5), dtype), args, {})
        with pytest.raises(ContractViolation, match=f"expected {np.dtype(dtype).name} values"):
            check_result("tensor_core_gemm", np.zeros((4, 5), wrong), args, {})


def test_checked_backend_names_the_operation_in_progress() -> None:
    checked = CheckedBackend(mb.Raises())
    with pytest.raises(ZeroDivisionError):
        checked.quantize(np.zeros(2, np.float32), "E4M3")
    assert checked.op == "quantize"
    checked.dequantize(np.zeros(2, np.uint8), "E4M3")
    assert checked.op is None
