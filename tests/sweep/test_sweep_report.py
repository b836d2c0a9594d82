"""``fp8ref sweep --report`` on synthetic sweep folders: the table's numbers, the notes, the figures."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from fp8ref.cli import main
from fp8ref.sweep import Sweep, report
from fp8ref.sweep import results as rs

PNG = b"\x89PNG\r\n\x1a\n"


def _folder(tmp_path: Path, sweep: Sweep, record) -> Path:
    """A sweep folder whose cells completed with ``record(cell) -> dict | None`` (None: not run)."""
    out = tmp_path / "sweep"
    rs.layout(out)
    (out / rs.SPEC).write_text(sweep.to_toml())
    for c in sweep.expand():
        extra = record(c)
        if extra is not None:
            rec = {
                "name": c.name,
                "params": c.params,
                "status": "ok",
                "dir": c.dir,
                "error": None,
                "wall_s": 1.5,
                "worker": "tcp://w:1",
                **extra,
            }
            rs.write_json_atomic(rs.done_path(out, c.name), rec)
    return out


def _loss(c) -> float:
    p = c.params
    base = {"fp32": 1.30, "fp8-amax": 1.31}.get(p["recipe"], 1.32 + 0.1 * abs(p.get("bias", 4) - 4))
    return base + 0.01 * p["seed"] + (0.002 if p.get("formats") == "fnuz" else 0.0)


def test_train_report_table_and_figure(tmp_path: Path, capsys) -> None:
    s = Sweep(
        kind="train",
        grid=[
            {"recipe": ["fp8-cscale"], "bias": [0, 4, 8], "formats": ["ocp", "fnuz"], "seed": [0, 1, 2]},
            {"recipe": ["fp32"], "seed": [0, 1, 2]},
            {"recipe": ["fp8-amax"], "formats": ["ocp", "fnuz"], "seed": [0, 1, 2]},
        ],
        fixed={"steps": 300},
    )

    def record(c):
        p = c.params
        if p.get("bias") == 8 and p["seed"] == 2 and p["formats"] == "ocp":
            return {
                "status": "failed",
                "error": "fp8ref train: training diverged at step 7",
                "final_val_loss": None,
                "label": "fp8-cscale:8",
                "run_status": "diverged",
            }
        if p.get("bias") == 0 and p["seed"] == 1 and p["formats"] == "fnuz":
            return None  # not run yet
        label = f"fp8-cscale:{p['bias']}" if p["recipe"] == "fp8-cscale" else p["recipe"]
        return {"final_val_loss": _loss(c), "label": label, "run_status": "complete"}

    out = _folder(tmp_path, s, record)
    assert main(["sweep", "--report", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == ["summary.csv", "summary.md", "loss_vs_bias.png"]
    md = (out / "report" / "summary.md").read_text()
    assert "kind `train`; 27 cells: 25 ok, 1 failed, 1 not run." in md
    ocp4 = [1.32 + 0.01 * k for k in range(3)]
    row = next(line for line in md.splitlines() if line.startswith("| tiny | ocp | fp8-cscale | 4 |"))
    cols = [x.strip() for x in row.split("|")[1:-1]]
    fp32 = statistics.mean(1.30 + 0.01 * k for k in range(3))
    assert cols[4:] == [
        "3 / 3",
        f"{statistics.mean(ocp4):.4f}",
        f"{statistics.stdev(ocp4):.4f}",
        "1.3200",
        "1.3400",
        f"{statistics.mean(ocp4) / fp32:.4f}",
    ]
    assert (
        "| tiny | ocp | fp8-cscale | 8 | 2 / 3 |" in md and "| tiny | fnuz | fp8-cscale | 0 | 2 / 3 |" in md
    )
    assert "| tiny | - | fp32 |  | 3 / 3 | 1.3100 |" in md
    assert (
        "- `bias=8__formats=ocp__recipe=fp8-cscale__seed=2`: fp8ref train: training diverged at step 7" in md
    )
    assert "No fp32 level" not in md
    rows = list(csv.DictReader(open(out / "report" / "summary.csv")))
    assert len(rows) == 27 and rows[0]["name"] == "bias=0__formats=ocp__recipe=fp8-cscale__seed=0"
    assert rows[0]["bias"] == "0" and float(rows[0]["final_val_loss"]) == pytest.approx(1.72)
    assert {r["status"] for r in rows} == {"ok", "failed", "not run"}
    pytest.importorskip("matplotlib")
    png = (out / "report" / "loss_vs_bias.png").read_bytes()
    assert png.startswith(PNG) and len(png) > 20_000


def test_train_report_says_which_cells_are_missing(tmp_path: Path) -> None:
    s = Sweep(
        kind="train", grid={"bias": [0, 4], "seed": [0, 1]}, fixed={"recipe": "fp8-cscale", "preset": "small"}
    )
    out = _folder(
        tmp_path, s, lambda c: {"final_val_loss": _loss(c), "label": f"fp8-cscale:{c.params['bias']}"}
    )
    files = report(out)
    md = (out / "report" / "summary.md").read_text()
    assert 'No fp32 level for panel small: add cells with recipe = "fp32"' in md
    assert 'No FP8-AMAX level for panel small: add cells with recipe = "fp8-amax"' in md
    assert [f.name for f in files][:2] == ["summary.csv", "summary.md"]


@pytest.mark.parametrize("kind", ["golden", "conform"])
def test_pass_fail_reports(tmp_path: Path, kind: str) -> None:
    if kind == "golden":
        s = Sweep(kind="golden", grid={"suite": ["casts", "scaling"], "format": ["E4M3", "E5M2"]})

        def record(c):
            if c.params["suite"] == "casts" and c.params["format"] == "E5M2":
                return {"status": "failed", "error": "fp8ref golden generate: boom"}
            return {"cases": 7, "suites": [c.params["suite"]], "bytes": 100}
    else:
        s = Sweep(kind="conform", grid={"backend": ["reference", "ml_dtypes"]})

        def record(c):
            ok = c.params["backend"] == "reference"
            return {
                "passed": ok,
                "cases": 5,
                "exact": 5 if ok else 3,
                "within": 0,
                "failed": 0 if ok else 2,
                "skipped": 0,
                "errors": 0,
            }

    out = _folder(tmp_path, s, record)
    report(out)
    md = (out / "report" / "summary.md").read_text()
    if kind == "golden":
        assert (
            "| format=E4M3__suite=casts | 7 cases |" in md and "| format=E5M2__suite=casts | failed |" in md
        )
    else:
        assert "| backend=reference | pass (5 exact, 0 within, 0 skipped) |" in md
        assert "| backend=ml_dtypes | FAIL (2 failed, 0 errors) |" in md
    pytest.importorskip("matplotlib")
    assert (out / "report" / "pass_fail.png").read_bytes().startswith(PNG)


def test_ptq_report(tmp_path: Path) -> None:
    ckpt = tmp_path / "run"  # the report reads records only: the checkpoint need not exist
    s = Sweep(kind="ptq", grid={"checkpoint": [str(ckpt)], "formats": ["ocp", "fnuz"]})
    out = _folder(
        tmp_path,
        s,
        lambda c: {
            "formats": c.params["formats"],
            "fp32": 1.3,
            "amax": 1.31,
            "cscale": {"-2": 1.5, "0": 1.32, "2": 1.31},
            "window": [],
            "plateau": [0, 2],
        },
    )
    report(out)
    md = (out / "report" / "summary.md").read_text()
    assert "| ok | ocp | 1.3000 | 1.3100 | [] | [0, 2] |" in md
    pytest.importorskip("matplotlib")
    assert (out / "report" / "ptq_loss_vs_bias.png").read_bytes().startswith(PNG)
