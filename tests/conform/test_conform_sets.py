"""A broken set is the set's fault (exit 2, naming the case and the field), never the backend's (exit 1)
and never a pass: unknown ops, unknown suites, missing or bad parameters, outputs the op does not give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fp8ref.cli import main
from fp8ref.conform import run
from fp8ref.conform.cases import PARAMS, plan
from fp8ref.golden import SUITES, SetError
from fp8ref.golden.manifest import load
from fp8ref.golden.ops import suite_module

from .small_set import GOLDEN, copy_cases

QUANTIZE = "casts/E4M3/quantize-f32-nearest_even-sat"


def _edited(tmp_path: Path, change) -> Path:
    def edit(entry: dict) -> None:
        if entry["id"] == QUANTIZE:
            change(entry)

    return copy_cases(tmp_path / "set", edit=edit)


def _conform(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["conform", "--backend", "reference", "--golden", str(root), *extra])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("change, words", [
    (lambda e: e.update(op="quantise"),
     "unknown op 'quantise' for suite 'casts'; its ops are quantize, dequantize"),
    (lambda e: e["params"].pop("format"), "op 'quantize' needs param 'format', which is missing"),
    (lambda e: e["params"].update(format="not-a-format"), "param 'format': unknown format"),
    (lambda e: e["params"].update(format="E9M9"), "param 'format': E9M9 has 19 bits"),
    (lambda e: e["params"].update(rounding="nearest"), "param 'rounding': unknown rounding mode 'nearest'"),
    (lambda e: e["params"].update(saturate="yes"), "param 'saturate': must be true or false, got 'yes'"),
    (lambda e: e["tensors"].update(y=e["tensors"].pop("x")), "needs input tensor 'x'"),
])
def test_a_broken_case_is_an_invalid_set(tmp_path: Path, capsys: pytest.CaptureFixture[str], change,
                                          words: str) -> None:
    root = _edited(tmp_path, change)
    code, out, err = _conform(root, capsys)
    assert code == 2 and out == ""  # nothing ran: the set is checked before the backend starts
    assert err.startswith(f"fp8ref conform: invalid golden set: case '{QUANTIZE}': ") and words in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_op_is_never_a_pass(tmp_path: Path) -> None:
    """An op the harness does not know used to be counted as 'not run' and the set passed."""
    root = copy_cases(tmp_path / "set", ids=(QUANTIZE,), edit=lambda e: e.update(op="no_such_op"))
    with pytest.raises(SetError, match="unknown op 'no_such_op'"):
        run("reference", root)


def test_unknown_suite_and_missing_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_cases(tmp_path / "set")
    code, _, err = _conform(root, capsys, "--suite", "matmul")
    assert code == 2 and "has no suite 'matmul' (it has casts, scaling)" in err
    data = json.loads((root / "manifest.json").read_text())
    data["suites"].append("tensor-cores")
    (root / "manifest.json").write_text(json.dumps(data))
    code, _, err = _conform(root, capsys)
    assert code == 2 and "suite(s) ['tensor-cores'] unknown" in err


def test_what_the_reference_cannot_compute_is_the_sets_fault(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A parameter of the right type that does not fit the data (axis 5 of a 2-D tensor): the backend fails,
    the reference fails too, so the set is invalid."""
    amax = "scaling/amax-f32-axis0"
    root = copy_cases(tmp_path / "set", ids=(amax,),
                      edit=lambda e: e["params"].update(axis=5))
    code, out, err = _conform(root, capsys)
    assert code == 2 and f"case '{amax}': the reference cannot compute it either" in err


def test_an_output_the_op_does_not_give(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A consistent set (hashes right) whose quantize case declares an output 'out' instead of 'codes'."""
    from fp8ref.golden import read_safetensors, write_safetensors
    from fp8ref.golden.manifest import sha256_hex

    root = copy_cases(tmp_path / "set", ids=(QUANTIZE,))
    f = root / f"{QUANTIZE}.safetensors"
    tensors, meta = read_safetensors(f)
    meta = {k: v for k, v in meta.items() if not k.startswith("format.")}
    data = write_safetensors(f, {"out": tensors["codes"].data, "x": tensors["x"].data},
                             formats={"out": tensors["codes"].format}, metadata=meta)
    manifest = json.loads((root / "manifest.json").read_text())
    e = manifest["cases"][0]
    e["tensors"]["out"] = e["tensors"].pop("codes")
    e.update(sha256=sha256_hex(data), bytes=len(data))
    (root / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = _conform(root, capsys)
    assert code == 2
    assert f"case '{QUANTIZE}': output 'out' is not an output of op 'quantize' (it gives codes)" in err


def test_every_backend_op_has_a_parameter_spec_and_the_committed_set_passes_it() -> None:
    for s in SUITES:
        assert set(suite_module(s).BACKEND_OPS) <= set(PARAMS), s
    if not (GOLDEN / "manifest.json").is_file():
        pytest.skip("no committed golden set in this checkout")
    manifest = load(GOLDEN)
    entries, not_run = plan(manifest, list(SUITES))
    # recipe arithmetic without a backend operation, checked by fp8ref golden verify
    no_backend = {"scale_bias": 16, "mx_quantize": 24, "nvfp4_quantize": 10}
    assert len(entries) + sum(not_run.values()) == len(manifest["cases"]) and not_run == no_backend


@pytest.mark.parametrize("trainer", [False, True])
def test_report_destination_is_checked_before_anything_runs(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            trainer: bool) -> None:
    import fp8ref.conform.harness as harness
    import fp8ref.conform.trainer as trainer_mod

    def must_not_run(*a, **k):
        raise AssertionError("computed before the destination was checked")

    monkeypatch.setattr(harness, "run", must_not_run)
    monkeypatch.setattr(trainer_mod, "compare_trainer", must_not_run)
    extra = ["--trainer", "--steps", "1"] if trainer else ["--golden", str(copy_cases(tmp_path / "set"))]
    for dest, named, problem in ((tmp_path, tmp_path, "is a folder, expected a file name"),
                                 (Path("/proc/fp8ref-no/r.json"), "/proc", "cannot write there")):
        code = main(["conform", "--backend", "reference", *extra, "--report", str(dest)])
        cap = capsys.readouterr()
        assert code == 2 and cap.out == ""
        assert cap.err.startswith(f"fp8ref conform: {named}: {problem}")
        assert len(cap.err.strip().splitlines()) == 1


def test_bad_option_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_cases(tmp_path / "set")
    for extra, words in ((["--timeout", "0"], "--timeout must be > 0 seconds"),
                         (["--timeout", "nan"], "--timeout must be > 0 seconds"),
                         (["--tolerance", "-1"], "--tolerance must be >= 0")):
        code, out, err = _conform(root, capsys, *extra)
        assert code == 2 and out == "" and err == f"fp8ref conform: {words}\n"
    code, out, err = _conform(root, capsys, "--no-isolate")
    assert code == 0 and "(in this process)" in out
    code, out, err = _conform(root, capsys, "--isolate", "--timeout", "90")
    assert code == 0 and "(in a worker process, 90 s per case)" in out
