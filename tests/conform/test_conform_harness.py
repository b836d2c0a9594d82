"""The conformance harness: the reference passes, the peers' known deviations are found and named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fp8ref
from fp8ref.backends import Backend, Capabilities, Unsupported
from fp8ref.cli import main
from fp8ref.conform import distance, histogram, run
from fp8ref.golden import generate

GOLDEN = Path(__file__).resolve().parents[2] / "golden"


@pytest.fixture(scope="module")
def gset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed default set (generated afresh where a checkout has none)."""
    if (GOLDEN / "manifest.json").is_file():
        return GOLDEN
    root = tmp_path_factory.mktemp("conform") / "set"
    generate(root)
    return root


def test_ulp_distance_rules() -> None:
    e = np.array([0x38, 0x7F, 0x00, 0x80, 0x7E, 0xFF, 0x01], np.uint8)
    g = np.array([0x39, 0xFF, 0x80, 0x00, 0x7F, 0xFF, 0x81], np.uint8)
    assert distance(e, g, "E4M3").tolist() == [1, np.inf, 1, 1, np.inf, 0, 3]
    # FNUZ: 0x80 is NaN, there is no -0: -min_subnormal (0x81) is one step below +0
    assert distance(np.array([0x00], np.uint8), np.array([0x81], np.uint8), "E4M3FNUZ").tolist() == [1]
    one = np.float32(1)
    up = np.nextafter(one, np.float32(2))
    f = distance(np.float32([1, 0, np.nan]), np.float32([up, -0.0, np.nan]), None)
    assert f.tolist() == [1, 1, 0]
    assert histogram(np.array([0, 1, 1, 3, 9, np.inf, 5e6])) == {"1": 2, "3-4": 1, "9-16": 1, ">1048576": 1,
                                                                 "nan": 1}


def test_reference_passes_everything_it_runs(gset: Path) -> None:
    rep = run("reference", gset, suites=["casts", "scaling"])
    assert rep.passed
    for s in rep.suites.values():
        assert s.failed == s.errors == 0 and s.exact_elements == s.elements
    assert all(c.status == "exact" for c in rep.cases)
    assert rep.not_run == {"scale_bias": 16}  # recipe arithmetic, no backend operation
    assert rep.suites["casts"].exact == rep.suites["casts"].cases


def _measured(name: str):
    """The backend's measurement of its peer (fp8ref.backends.peer_probe) on the installed version."""
    from fp8ref import backends

    return backends.get(name).measured


def test_ml_dtypes_deviations_are_named(gset: Path) -> None:
    """The deviations conform finds are the ones measured on the installed ml_dtypes: E5M2 NaN 0x7E|sign
    (0.6 and 0.7), double rounding of float64 input (0.6 only)."""
    probe = _measured("ml_dtypes")
    twice = probe.behaviour("E4M3").float64 == "via_float32"
    nan_code = probe.behaviour("E5M2").nan_codes != probe.reference_of("E5M2").nan_codes
    rep = run("ml_dtypes", gset, suites=["casts"])
    assert rep.passed == (probe.deviations() == ())
    cats = rep.suites["casts"].categories
    assert (cats.get("double_rounding", 0) > 0) == twice  # float64 -> float32 -> FP8
    assert (cats.get("nan_payload", 0) > 0) == nan_code  # E5M2 NaN 0x7E|sign
    by_id = {c.id: c for c in rep.cases}
    assert by_id["casts/E4M3/quantize-f32-nearest_even-sat"].status == "exact"
    assert by_id["casts/E4M3/quantize-f32-toward_zero-sat"].status == "skipped"
    f64 = by_id["casts/E4M3/quantize-f64-nearest_even-sat"]
    if not twice:
        assert f64.status == "exact"
        return
    assert f64.status == "fail" and set(f64.categories) == {"double_rounding"} and f64.max_ulps == 1
    w = f64.worst[0]
    assert w.category == "double_rounding" and "x" in w.inputs
    nonsat = by_id["casts/E4M3/quantize-f64-nearest_even-nonsat"]
    # 464.00000000000006 -> float32 464 -> tie to even 448, where the single rounding overflows to NaN
    assert any(w.inputs.get("x", "").startswith("464.00000000000006") and w.got.startswith("0x7e")
               for w in nonsat.worst)


def test_torch_cpu_deviations(gset: Path) -> None:
    pytest.importorskip("torch")
    probe = _measured("torch-cpu")
    b, r = probe.behaviour("E4M3"), probe.reference_of("E4M3")
    rep = run("torch-cpu", gset, suites=["casts"])
    by_id = {c.id: c for c in rep.cases}
    dq = by_id["casts/E4M3/dequantize-f32"]
    assert (dq.categories == {"nan_payload": 2}) == (b.nan_bits("float32") != r.nan_bits("float32"))
    nonsat = by_id["casts/E4M3/quantize-f32-nearest_even-nonsat"]
    assert ("overflow" in nonsat.categories) == (b.overflow == "max")  # torch 2.13 saturates E4M3
    twice = by_id["casts/E4M3/quantize-f64-nearest_even-sat"].categories.get("double_rounding", 0) > 0
    assert twice == (b.float64 == "via_float32")


class _OffByOne(Backend):
    """A deliberately wrong backend: round-to-nearest-even codes, plus one ulp on every code 0x40."""

    name = "off-by-one"
    capabilities = Capabilities(formats=("E4M3",), rounding=("nearest_even",), saturate=(True,),
                                ops=("quantize",))

    def quantize(self, x, fmt, *, rounding="nearest_even", saturate=False, srbits=None, srnumbits=None,
                 seed=None, out=None):
        f = self.check_quantize(fmt, rounding, saturate)
        c = fp8ref.quantize(x, f, rounding=rounding, saturate=saturate)
        return np.where(c == 0x40, np.uint8(0x41), c).astype(np.uint8)


def test_tolerance_and_skips(gset: Path) -> None:
    be = _OffByOne()
    strict = run(be, gset, suites=["casts"])
    loose = run(be, gset, suites=["casts"], tolerance=1)
    assert not strict.passed and loose.passed
    s = loose.suites["casts"]
    assert s.within > 0 and s.failed == 0 and s.histogram == {"1": s.elements - s.exact_elements}
    reasons = {c.reason for c in strict.cases if c.status == "skipped"}
    assert any("dequantize is not implemented" in r for r in reasons)
    assert any("E5M2" in r for r in reasons)
    with pytest.raises(Unsupported):
        be.quantize(np.zeros(2), "E5M2")


def test_cli_table_json_and_exit_codes(gset: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["conform", "--backend", "reference", "--golden", str(gset), "--suite", "casts",
                 "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "casts" in text and "result: PASS" in text
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["suites"]["casts"]["failed"] == 0
    probe = _measured("ml_dtypes")
    deviates = probe.deviations() != ()
    rc = main(["conform", "--backend", "ml_dtypes", "--golden", str(gset), "--suite", "casts"])
    assert rc == int(deviates)
    text = capsys.readouterr().out
    assert ("result: FAIL" if deviates else "result: PASS") in text
    assert ("double_rounding" in text) == (probe.behaviour("E4M3").float64 == "via_float32")
    assert main(["conform", "--backend", "no-such-backend", "--golden", str(gset)]) == 2
    assert main(["conform", "--backend", "reference", "--golden", str(tmp_path / "none")]) == 2
    assert "invalid golden set" in capsys.readouterr().err


def test_torch_cpu_matmul_accumulation_is_identified(gset: Path) -> None:
    pytest.importorskip("torch")
    rep = run("torch-cpu", gset, suites=["matmul"])
    acc = rep.accumulation
    assert acc is not None and acc["claimed"] == "fp32"
    names = [r["model"] for r in acc["ranking"]]
    assert set(names) >= {"exact", "fp32", "h100-fp8", "h100-fp8-fastaccum"}
    assert acc["ranking"][0]["bit_exact"] >= acc["ranking"][-1]["bit_exact"]
    assert "nfma" in acc["probe"] or "error" in acc["probe"]
    # block and MX scales are refused by torch._scaled_mm: skipped, not failed
    by_id = {c.id: c for c in rep.cases}
    assert by_id["matmul/mx-e8m0-fp32"].status == "skipped"
    assert by_id["matmul/k300-block1x128-fp32"].status == "skipped"
    assert by_id["matmul/k300-tensor-fp32"].status in ("exact", "fail", "within")


def test_cli_trainer_side_by_side_reference_is_identical(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.json"
    assert main(["conform", "--trainer", "--backend", "reference", "--steps", "1", "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "identical" in text
    data = json.loads(out.read_text())
    assert data["identical"] is True and data["first_divergence"] is None


class _Crashing(_OffByOne):
    name = "crashing"

    def quantize(self, *args, **kwargs):
        raise ZeroDivisionError("kernel bug")


def test_a_crashing_backend_is_reported_as_errors(gset: Path) -> None:
    rep = run(_Crashing(), gset, suites=["casts"])
    s = rep.suites["casts"]
    assert not rep.passed and s.errors > 0 and s.exact == 0
    assert any("ZeroDivisionError: kernel bug" in c.reason for c in rep.cases if c.status == "error")
