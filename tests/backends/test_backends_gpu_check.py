"""benchmarks/gpu_check.py: the CPU dry run exercises every section but the CUDA calls."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("fp8ref_gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dry_report(gpu_check, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "report.json"
    report = gpu_check.run(out, dry_run=True, budget=600.0, quick=True)
    assert json.loads(out.read_text())["schema"] == "fp8ref-gpu-check"
    return report, out


def test_every_section_runs(dry_report) -> None:
    report, _ = dry_report
    assert report["errors"] == []
    assert set(report["sections"]) == {"casts", "scaled_mm", "probes", "trainer", "throughput",
                                       "block_scaled"}
    for name, sec in report["sections"].items():
        assert "error" not in sec and "skipped" not in sec, name
    assert report["dry_run"] and report["environment"]["dry_run"]
    assert set(report["timings_s"]) >= {"casts", "scaled_mm", "probes", "trainer", "throughput",
                                        "block_scaled", "total"}


def test_casts_follow_the_measured_torch_rule(dry_report) -> None:
    from fp8ref import backends

    probe = backends.get("torch-cpu").measured  # the dry run's casts are torch-cpu's
    casts = dry_report[0]["sections"]["casts"]
    assert casts["bit_exact_vs_documented_rule"]
    assert casts["e4m3_saturates_by_itself"] == (probe.behaviour("E4M3").overflow == "max")
    assert casts["measured"] == list(probe.summary())
    formats = {r["format"] for r in casts["rows"]}
    assert formats == {"E4M3", "E5M2", "E4M3FNUZ", "E5M2FNUZ"}
    f64 = [r for r in casts["rows"] if r["input"] == "float64 beside midpoints"]
    for r in f64:  # the double rounding shows exactly where it was measured
        assert (r["mismatch_vs_reference"] > 0) == (probe.behaviour(r["format"]).float64 == "via_float32")
    assert all(d["non_nan_bit_mismatches"] == 0 and d["nan_positions_match"] for d in casts["dequantize"])


def test_scaled_mm_and_probes_recover_the_simulated_models(dry_report) -> None:
    s = dry_report[0]["sections"]
    for label, model in (("use_fast_accum=False", "h100-fp8"), ("use_fast_accum=True", "h100-fp8-fastaccum")):
        v = s["scaled_mm"]["variants"][label]
        assert v["claimed"] == model and v["claim_matches"]
        assert v["models"][model]["bit_exact_fraction"] == 1.0
        inf = s["probes"]["variants"][label]["inferred"]
        assert (inf["nfma"], inf["frac_bits"], inf["out_frac_bits"], inf["rounding"]) == (32, 13, 13, "rz")
        assert inf["validated"] > 0 and inf["mismatched"] == 0
        assert inf["promotion"] == (128 if model == "h100-fp8" else None)
        assert model in s["probes"]["variants"][label]["matching_presets"]
        promo = next(p for p in s["probes"]["variants"][label]["published"] if p["id"] == "PROMO")
        assert promo["got"] == promo["expected"][model]
    # fast accumulation loses the small products of the "dominant" inputs at large K
    fast = s["scaled_mm"]["variants"]["use_fast_accum=True"]["models"]
    assert fast["h100-fp8"]["bit_exact_fraction"] < 1.0


def test_block_scaled_paths_recover_the_simulated_presets(gpu_check, dry_report) -> None:
    rows = dry_report[0]["sections"]["block_scaled"]["rows"]
    assert {r["recipe"] for r in rows} == {"mxfp8", "mxfp4", "nvfp4"}
    for r in rows:
        assert "error" not in r and r["claimed"] == f"b200-{r['recipe']}"
        assert r["models"][r["claimed"]]["bit_exact_fraction"] == 1.0
    s = np.arange(130 * 9).reshape(130, 9)
    flat = gpu_check.swizzle_128x4(s)
    assert flat.size == 256 * 12 and np.array_equal(gpu_check.unswizzle_128x4(flat, 130, 9), s)
    # cuBLAS layout: scale (i, j) of the first 128x4 tile sits at 16 * (i % 32) + 4 * (i // 32) + j
    assert flat[16 * 5 + 4 * 2 + 3] == s[64 + 5, 3]


def test_trainer_and_throughput(dry_report) -> None:
    s = dry_report[0]["sections"]
    for r in s["trainer"].values():
        assert r["status"] == "ok" and r["identical"] and r["steps_run"] == 1
    rows = s["throughput"]["rows"]
    assert rows and "bf16_matmul_tflops" in rows[0] and "fp8_tensorwise_promoted_vs_bf16" in rows[0]


def test_render_and_cli(gpu_check, dry_report, capsys, tmp_path) -> None:
    report, path = dry_report
    md = gpu_check.render_markdown(report)
    for heading in ("## Casts", "## `_scaled_mm`", "## Probes", "## Trainer", "## Throughput", "dry run"):
        assert heading in md
    assert gpu_check.main(["--render", str(path)]) == 0
    assert "# GPU results" in capsys.readouterr().out
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        assert gpu_check.main(["--out", str(tmp_path / "x.json")]) == 2
        assert "use --dry-run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_check.main(["--dry-run", "--sections", "casts,nope"])


def test_budget_skips_sections(gpu_check, tmp_path) -> None:
    report = gpu_check.run(tmp_path / "r.json", dry_run=True, budget=0.0, quick=True)
    assert all("skipped" in sec for sec in report["sections"].values())


def test_render_reports_incomplete_sections(gpu_check, dry_report) -> None:
    report = json.loads(json.dumps(dry_report[0]))
    report["sections"]["probes"] = {"error": "RuntimeError: boom"}
    report["sections"]["throughput"] = {"skipped": "time budget of 1 s spent (2 s)"}
    md = gpu_check.render_markdown(report)
    assert "## Sections that did not complete" in md
    assert "probes: RuntimeError: boom" in md and "throughput: time budget" in md
