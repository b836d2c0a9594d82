"""``fp8ref backends``: the listing, JSON output, filters and errors."""

from __future__ import annotations

import json

import pytest

from fp8ref.cli import main


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "reference  [available; builtin]" in out
    assert "accumulation:   exact (any model via accumulate=)" in out
    assert "ml_dtypes  [available; builtin]" in out
    assert "torch-cuda" in out


def test_the_measured_peer_behaviour_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    """The deviations listed for ml_dtypes are the ones measured on the installed version, and the
    measurement itself is shown: the float64 line says what the probe found."""
    import ml_dtypes

    from fp8ref import backends

    probe = backends.get("ml_dtypes").measured
    assert main(["backends", "ml_dtypes"]) == 0
    out = capsys.readouterr().out
    assert f"measured:       ml_dtypes {ml_dtypes.__version__}, against the exact reference" in out
    for d in probe.deviations():
        assert f"deviation:      {d}" in out
    kind = probe.behaviour("E4M3").float64
    words = {"once": "rounded once", "via_float32": "rounded to float32 first"}[kind]
    assert f"float64 input [E4M3, E5M2, E4M3FNUZ, E5M2FNUZ]: {words}" in out
    assert ("double rounding" in out) == (kind == "via_float32")
    assert main(["backends", "--json", "ml_dtypes", "reference"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["reference"]["measured"] is None
    m = rows["ml_dtypes"]["measured"]
    assert m["deviations"] == rows["ml_dtypes"]["capabilities"]["deviations"] == list(probe.deviations())
    assert m["formats"]["E5M2"]["nan_codes"] == [f"0x{c:02x}" for c in probe.behaviour("E5M2").nan_codes]
    assert m["reference"]["E5M2"]["nan_codes"] == ["0x7f", "0xff"]


def test_json_and_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--json", "reference", "ml_dtypes"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["reference", "ml_dtypes"]
    assert rows[1]["capabilities"]["ops"] == ["quantize", "dequantize"]
    assert rows[0]["capabilities"]["granularities"][0] == ["tensor", "tensor"]
    assert main(["backends", "--json", "--available"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["available"] for r in rows)


def test_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "nope"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_unavailable_rows_carry_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["backends", "--json", "torch-cuda"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["available"] is False and "CUDA" in row["reason"] and row["capabilities"] is None
