"""Real hardware: every measured line of the tensor-core validation data replayed through the models."""

from __future__ import annotations

import subprocess
import sys

from fp8ref.accum import hwcheck
from fp8ref.cli import main


def test_hwcheck_every_modelled_set_matches(hwdata_dir):
    results = hwcheck.run(hwdata_dir, max_mismatches=2)
    assert len(results) == 48
    for r in results:
        key = (r.gpu, r.fmt, r.out)
        assert r.confirmed and r.matched == r.total == 5000, (key, r.matched, r.total, r.mismatches)
    text = hwcheck.report(results)
    assert "0 modelled set(s) failing" in text and "48 reproduced 100 %" in text


def test_hwcheck_cli_exit_status(hwdata_dir, capsys, tmp_path):
    assert main(["hwcheck", str(hwdata_dir), "--limit", "200"]) == 0
    out = capsys.readouterr().out
    assert "UNEXPLAINED" not in out and "B200  E4M3  fp32      200/200" in out
    assert "H100  E4M3  fp16      200/200" in out and "0 unexplained" in out
    # a folder whose measurements disagree with the model fails
    bad = tmp_path / "A100" / "fp16"
    bad.mkdir(parents=True)
    src = hwdata_dir / "A100" / "fp16"
    for f in ("a_A100_fp16.txt", "b_A100_fp16.txt", "c_A100_fp32.txt"):
        (bad / f).write_text("\n".join((src / f).read_text().splitlines()[:10]) + "\n")
    d = (src / "d_A100_fp32.txt").read_text().splitlines()[:10]
    d[3] = d[3][:-1] + ("1" if d[3][-1] == "0" else "0")
    (bad / "d_A100_fp32.txt").write_text("\n".join(d) + "\n")
    assert main(["hwcheck", str(tmp_path)]) == 1
    assert "9/10" in capsys.readouterr().out
    assert main(["hwcheck", str(tmp_path / "missing")]) == 2


def test_probe_cli_runs():
    r = subprocess.run([sys.executable, "-m", "fp8ref", "probe", "--model", "H100:E4M3:fp32", "--max-k", "64",
                        "--promotion-k", "256"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "NFMA                32" in r.stdout and "final rounding      rz" in r.stdout
    r = subprocess.run([sys.executable, "-m", "fp8ref", "probe", "--model", "nope"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "valid:" in r.stderr


def test_probe_cli_list(capsys):
    assert main(["probe", "--list"]) == 0
    out = capsys.readouterr().out
    assert "P7" in out and "Fasi et al." in out
    assert main(["probe", "--list", "--model", "H100:E4M3"]) == 0
    out = capsys.readouterr().out
    assert "expected: 1.0" in out and "A1 " not in out  # only the model's formats


def test_help_agrees_with_behaviour(capsys):
    """hwcheck's help says what the table says (every model confirmed); probe's usage shows --model as
    required, except with --list, as _probe enforces."""
    import pytest

    from fp8ref.accum import presets

    with pytest.raises(SystemExit):
        main(["hwcheck", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(row.confirmed for v in presets.VENDORS for row in v.table.values())
    assert "unexplained" not in text.replace("UNEXPLAINED", "")
    assert "FP8 inputs with fp16 output on Hopper and B200 included) reproduce 100 %" in text
    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert usage[0].startswith("usage: fp8ref probe --model MODEL ")
    assert usage[1].strip() == "fp8ref probe --list [--model MODEL]"
    assert main(["probe"]) == 2
    assert "--model MODEL is required (or --list" in capsys.readouterr().err


def test_sets_are_replayed_with_the_instruction_they_were_measured_with():
    from fp8ref.accum import hwcheck

    assert hwcheck.measured_instruction("H100", "E4M3", "fp32") == "wgmma"
    assert hwcheck.measured_instruction("H200", "E5M2", "fp16") == "mma"
    assert hwcheck.measured_instruction("B200", "E4M3", "fp32") == "mma"  # not tcgen05, the B200 default
    assert hwcheck.measured_instruction("A100", "fp16", "fp32") == "mma"
