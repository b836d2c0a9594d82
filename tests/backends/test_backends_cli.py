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
    assert "deviation:" in out
    assert "torch-cuda" in out


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
