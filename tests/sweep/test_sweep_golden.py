"""Golden shards (``golden generate --case/--where``), their merge, and a golden sweep's cells (no Dask)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fp8ref.cli import main
from fp8ref.golden import SetError, generate, merge, verify
from fp8ref.sweep import Sweep
from fp8ref.sweep import results as rs
from fp8ref.sweep.cell import Task, execute
from fp8ref.sweep.kinds import kind_of

from .helpers import files

AMAX = "scaling/amax-*"


def test_a_shard_keeps_the_selected_cases_and_records_how(tmp_path: Path, capsys) -> None:
    m = generate(tmp_path / "a", ["scaling"], cases=["scaling/scale_bias-*"], where={"margin": 3})
    assert [c["id"] for c in m["cases"]] and all(c["params"]["margin"] == 3 for c in m["cases"])
    assert all(c["id"].startswith("scaling/scale_bias-") for c in m["cases"])
    assert (
        m["command"]
        == "fp8ref golden generate DIR --suite scaling --case 'scaling/scale_bias-*' --where margin=3"
    )
    # the CLI: the same shard, byte for byte
    assert (
        main(
            [
                "golden",
                "generate",
                str(tmp_path / "b"),
                "--suite",
                "scaling",
                "--case",
                "scaling/scale_bias-*",
                "--where",
                "margin=3",
            ]
        )
        == 0
    )
    assert files(tmp_path / "a") == files(tmp_path / "b")
    # JSON comparison: 3 is not 3.0 nor true; a selection that keeps nothing writes nothing
    assert (
        main(["golden", "generate", str(tmp_path / "c"), "--suite", "scaling", "--where", "margin=3.0"]) == 2
    )
    assert (
        "--suite scaling --where margin=3.0 keeps no case of the suite(s) scaling" in capsys.readouterr().err
    )
    assert not (tmp_path / "c").exists()


def test_merged_whole_shards_are_the_generated_set(tmp_path: Path) -> None:
    whole = generate(tmp_path / "whole", ["scaling"])
    generate(tmp_path / "s1", ["scaling"], cases=[AMAX, "scaling/scale_bias-*"])
    generate(tmp_path / "s2", ["scaling"], cases=["scaling/E*"])
    merged = merge(tmp_path / "m", [tmp_path / "s1", tmp_path / "s2"], command=whole["command"])
    assert merged == whole
    assert files(tmp_path / "m") == files(tmp_path / "whole")
    rep = verify(tmp_path / "m")
    assert rep.exit_code == 0 and rep.passed == len(whole["cases"])


def test_merge_refuses_conflicts_corruption_and_a_used_folder(tmp_path: Path) -> None:
    generate(tmp_path / "s1", ["scaling"], cases=[AMAX])
    generate(tmp_path / "s2", ["scaling"], cases=[AMAX])
    # the same case twice, same bytes: kept once
    m = merge(tmp_path / "m", [tmp_path / "s1", tmp_path / "s2"])
    assert len(m["cases"]) == len(json.loads((tmp_path / "s1" / "manifest.json").read_text())["cases"])
    assert m["command"].startswith("merged from: fp8ref golden generate DIR --suite scaling --case")
    # a tensor file changed after generation: refused before anything is written
    first = json.loads((tmp_path / "s2" / "manifest.json").read_text())["cases"][0]["file"]
    (tmp_path / "s2" / first).write_bytes((tmp_path / "s2" / first).read_bytes()[:-1] + b"\0")
    with pytest.raises(SetError, match="does not match its manifest entry"):
        merge(tmp_path / "m2", [tmp_path / "s1", tmp_path / "s2"])
    assert not (tmp_path / "m2").exists()
    # a conflicting entry for one id
    man = json.loads((tmp_path / "s2" / "manifest.json").read_text())
    man["cases"][0]["params"]["axis"] = 7
    (tmp_path / "s2" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(SetError, match="differs between"):
        merge(tmp_path / "m3", [tmp_path / "s1", tmp_path / "s2"])
    with pytest.raises(ValueError, match="exists and is not an empty folder"):
        merge(tmp_path / "m", [tmp_path / "s1"])


def test_golden_cells_are_shards_and_the_sweep_merges_them(tmp_path: Path) -> None:
    s = Sweep(kind="golden", grid={"case": [AMAX, "scaling/scale_bias-*"]}, fixed={"suite": "scaling"})
    out = tmp_path / "sweep"
    rs.layout(out)
    recs = {}
    for c in s.cells:
        recs[c.name] = execute(Task("golden", c.name, c.params, str(out)))
        assert recs[c.name]["status"] == "ok" and recs[c.name]["cases"] > 0
        alone = tmp_path / c.name
        assert (
            main(recs[c.name]["command"].split()[1:3] + [str(alone)] + recs[c.name]["command"].split()[4:])
            == 0
        )
        assert files(out / c.dir) == files(alone)
    logs = []
    kind_of("golden").finish(out, s.cells, recs, logs.append)
    rep = verify(out / "golden")
    assert rep.exit_code == 0 and rep.passed == sum(r["cases"] for r in recs.values())
    assert "merged 2 shard(s)" in logs[0]
    # merging again (a resumed sweep) replaces the set it merged; a foreign set there is left alone
    kind_of("golden").finish(out, s.cells, recs, logs.append)
    assert verify(out / "golden").exit_code == 0
    man = json.loads((out / "golden" / "manifest.json").read_text())
    man["command"] = "fp8ref golden generate DIR"
    (out / "golden" / "manifest.json").write_text(json.dumps(man))
    kind_of("golden").finish(out, s.cells, recs, logs.append)
    assert "was not merged by fp8ref sweep; not replaced" in logs[-1]
