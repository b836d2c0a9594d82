"""``fp8ref embed`` and ``fp8ref infer --model``: outputs, and one-line errors (exit 2, no traceback) for
every bad request, checked before any work. Most tests run the tiny random BERT in place of the real model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fp8ref.cli import main
from fp8ref.models import cli as mcli
from fp8ref.models import minilm, sentences

from . import tiny

TSV = "weather\train today\nweather\tcold wind at night\nfood\twe like bread\nfood\tsoup and tea\n"


@pytest.fixture
def with_tiny(monkeypatch: pytest.MonkeyPatch, tiny_model: Any) -> Any:
    monkeypatch.setattr(mcli, "load_model", lambda name: tiny_model)
    return tiny_model


@pytest.fixture
def tsv(tmp_path: Path) -> Path:
    p = tmp_path / "s.tsv"
    p.write_text(TSV)
    return p


def _one_line_error(capsys: pytest.CaptureFixture, rc: int, prefix: str) -> str:
    out = capsys.readouterr()
    assert rc == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), out.err
    assert "Traceback" not in out.err
    return lines[0]


def test_embed_writes_report_embeddings_and_plot(
    with_tiny: Any, tsv: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    rc = main(
        [
            "embed",
            "--model",
            "minilm",
            "--sentences",
            str(tsv),
            "--recipe",
            "fp8-amax,fp8-cscale:2",
            "--accumulate",
            "exact,fp32",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "sentences: 4 from" in text and "2 topics" in text
    assert "fp8-amax/exact" in text and "fp8-cscale:2/fp32" in text and "fp32 same-topic retrieval" in text
    rep = json.loads((out / "embed.json").read_text())
    assert [r["label"] for r in rep["runs"]] == [
        "fp8-amax/exact",
        "fp8-amax/fp32",
        "fp8-cscale:2/exact",
        "fp8-cscale:2/fp32",
    ]
    r0 = rep["runs"][0]
    assert set(r0["sqnr_db"]["linear"]) == {n for n, _ in with_tiny.config.linear_layers()}
    assert len(r0["sqnr_db"]["hidden"]) == with_tiny.config.num_hidden_layers and len(r0["cosine"]) == 4
    assert 0.5 < r0["cosine_min"] <= r0["cosine_mean"] <= 1 and 0 <= r0["nn_agreement"] <= 1
    assert r0["scale_bias"]["L0.query"]["w"] and rep["runs"][2]["scale_bias"]["L0.query"]["x"] == [2]
    embs = np.load(out / "embeddings.npz")
    assert sorted(embs.files) == sorted(["fp32"] + [r["label"].replace("/", "__") for r in rep["runs"]])
    assert np.array_equal(embs["fp32"], with_tiny.embed(list(sentences.read(tsv).sentences)))
    assert (out / "embed_metrics.png").stat().st_size > 10_000


def test_embed_says_which_sentences_were_truncated(
    with_tiny: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    p = tmp_path / "s.txt"
    p.write_text("rain today\n" + " ".join(tiny.WORDS[:40]) + "\n")
    rc = main(
        ["embed", "--model", "minilm", "--sentences", str(p), "--out", str(tmp_path / "o"), "--no-plots"]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "note: 1 sentence(s) longer than the model's 12 tokens were truncated to 12" in text
    assert "(file lines 2)" in text
    assert json.loads((tmp_path / "o" / "embed.json").read_text())["sentences"]["truncated"] == [2]


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--recipe", "fp8-bogus"], TSV, "fp8ref embed: --recipe: recipe: 'fp8-bogus' is not one of"),
        (["--recipe", "fp8-amax,fp8-amax"], TSV, "fp8ref embed: --recipe lists a recipe twice"),
        (["--accumulate", "h999"], TSV, "fp8ref embed: --accumulate: unknown accumulation model 'h999'"),
        ([], b"caf\xe9\n", "fp8ref embed: "),
        ([], "\n# nothing\n", "fp8ref embed: "),
        (["--max-tokens", "0"], TSV, "fp8ref embed: --max-tokens must be >= 1"),
    ],
)
def test_embed_bad_requests_are_one_line(
    with_tiny: Any, tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], content: Any, message: str
) -> None:
    p = tmp_path / "s.tsv"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out"
    rc = main(["embed", "--model", "minilm", "--sentences", str(p), "--out", str(out), *args])
    line = _one_line_error(capsys, rc, message)
    if content == b"caf\xe9\n":
        assert "not UTF-8" in line and "offset 3" in line
    if "nothing" in str(content):
        assert "holds no sentences" in line
    assert not out.exists()


def test_embed_unwritable_out_fails_before_loading(
    monkeypatch: pytest.MonkeyPatch, tsv: Path, capsys: pytest.CaptureFixture
) -> None:
    def boom(name: str) -> None:
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(mcli, "load_model", boom)
    rc = main(["embed", "--model", "minilm", "--sentences", str(tsv), "--out", "/proc/fp8ref-test/out"])
    line = _one_line_error(capsys, rc, "fp8ref embed: /proc")
    assert "cannot" in line or "not" in line


def test_embed_missing_package_names_the_install_line(
    monkeypatch: pytest.MonkeyPatch, tsv: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(minilm, "missing_packages", lambda: ["tokenizers"])
    rc = main(["embed", "--model", "minilm", "--sentences", str(tsv), "--out", str(tmp_path / "o")])
    line = _one_line_error(capsys, rc, "fp8ref embed: the minilm model needs tokenizers")
    assert line.endswith(minilm.INSTALL)


def test_embed_corrupted_weights_are_one_line(
    monkeypatch: pytest.MonkeyPatch, tsv: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("tokenizers")
    z = tiny.write_zip(tmp_path / "model.zip")
    monkeypatch.setattr(minilm, "package_zip", lambda: minilm.PackagedZip(z, "A" * 43, z.stat().st_size, "x"))
    monkeypatch.setattr(minilm, "missing_packages", lambda: [])
    minilm._load_package.cache_clear()
    try:
        rc = main(["embed", "--model", "minilm", "--sentences", str(tsv), "--out", str(tmp_path / "o")])
    finally:
        minilm._load_package.cache_clear()
    line = _one_line_error(capsys, rc, "fp8ref embed: ")
    assert "SHA-256" in line and "reinstall" in line


def test_embed_with_a_backend(
    with_tiny: Any, tsv: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("torch")
    rc = main(
        [
            "embed",
            "--model",
            "minilm",
            "--sentences",
            str(tsv),
            "--backend",
            "torch-cpu",
            "--out",
            str(tmp_path / "o"),
            "--no-plots",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "backend torch-cpu" in text and "fp8-amax/backend" in text
    run = json.loads((tmp_path / "o" / "embed.json").read_text())["runs"][0]
    assert run["cosine_min"] > 0.9 and run["accumulate"] is None
    rc = main(
        [
            "embed",
            "--model",
            "minilm",
            "--sentences",
            str(tsv),
            "--backend",
            "nope",
            "--out",
            str(tmp_path / "o2"),
        ]
    )
    _one_line_error(capsys, rc, "fp8ref embed: --backend")


def test_infer_model_sweep(
    with_tiny: Any, monkeypatch: pytest.MonkeyPatch, tsv: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(mcli, "_sentences", lambda path: sentences.read(tsv))
    out = tmp_path / "ptq"
    rc = main(["infer", "--model", "minilm", "--biases=-30,0,2", "--formats", "ocp", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    res = json.loads((out / "ptq.json").read_text())
    assert list(res["families"]) == ["ocp"] and res["biases"] == [-30, 0, 2]
    fam = res["families"]["ocp"]
    assert set(fam["cscale"]) == {"-30", "0", "2"} and -30 not in fam["cosine_window"]
    assert fam["cscale"]["-30"]["cosine_mean"] < fam["cscale"]["0"]["cosine_mean"]  # weights flush to zero
    assert "ocp: CSCALE window (retrieval within 0.5 % of fp32)" in text
    assert (out / "ptq_minilm.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["infer", "somerun", "--model", "minilm"], "fp8ref infer: give a checkpoint or --model, not both"),
        (["infer"], "fp8ref infer: give a checkpoint"),
        (["infer", "--model", "gpt5"], "fp8ref infer: --model 'gpt5' is not a known model; valid: minilm"),
        (
            ["infer", "--model", "minilm", "--fp8-layers", "qkv"],
            "fp8ref infer: --fp8-layers apply to checkpoints",
        ),
        (["infer", "--model", "minilm", "--accumulate", "h999"], "fp8ref infer: --accumulate: unknown"),
        (["infer", "--model", "minilm", "--out", "/proc/fp8ref-test/x"], "fp8ref infer: /proc"),
    ],
)
def test_infer_model_bad_requests(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    monkeypatch.setattr(mcli, "load_model", lambda name: (_ for _ in ()).throw(AssertionError("loaded")))
    _one_line_error(capsys, main(args), message)


def test_embed_the_real_model(minilm_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "s.tsv"
    p.write_text(
        "sport\tThe striker scored twice.\nsport\tThe goalkeeper saved a penalty.\n"
        "sky\tJupiter is the largest planet.\nsky\tThe comet's tail points away from the sun.\n"
    )
    rc = main(
        ["embed", "--model", "minilm", "--sentences", str(p), "--out", str(tmp_path / "o"), "--no-plots"]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "6 layers, 384 channels, 36 linear layers" in text
    run = json.loads((tmp_path / "o" / "embed.json").read_text())["runs"][0]
    assert run["label"] == "fp8-amax/exact" and run["cosine_min"] > 0.99 and run["retrieval"] == 1.0
