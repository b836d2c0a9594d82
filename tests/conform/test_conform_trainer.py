"""compare_trainer: identical runs, an injected one-ulp deviation found exactly, refusals reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fp8ref import backends
from fp8ref.backends.reference import ReferenceBackend
from fp8ref.conform.trainer import compare_trainer, format_report, ulp_distance

SMALL = dict(batch_size=4, block_size=16)


class _FlipOne(ReferenceBackend):
    """The reference, except that the scaled_mm calls numbered in ``at`` return out[0, 0] one ulp larger."""

    name = "flip-one"

    def __init__(self, at: set[int]) -> None:
        super().__init__()
        self.at = at
        self.calls = 0

    def scaled_mm(self, *args, **kwargs):
        out = super().scaled_mm(*args, **kwargs)
        if self.calls in self.at:
            out = out.copy()
            out[0, 0] = np.nextafter(out[0, 0], np.float32(np.inf))
        self.calls += 1
        return out


class _NoMM(ReferenceBackend):
    name = "no-mm"

    def scaled_mm(self, *args, **kwargs):
        raise self.unsupported("scaled_mm", "no GEMM here")


def _fp8_layers() -> list[str]:
    from fp8ref.nn.config import TrainConfig
    from fp8ref.nn.train import build_model, load_data

    cfg = TrainConfig.from_preset("tiny", recipe="fp8-amax", **SMALL)
    _, fp8 = build_model(cfg, load_data(cfg).vocab_size)
    return list(fp8)


def test_reference_against_itself_is_identical() -> None:
    r = compare_trainer("reference", steps=2, **SMALL)
    assert r["identical"] and r["status"] == "ok" and r["first_divergence"] is None
    assert r["steps_run"] == 2 and [s["differing_tensors"] for s in r["per_step"]] == [0, 0]
    assert all(s["compared_tensors"] > 0 for s in r["per_step"])
    assert r["reference_accumulate"] == "exact"
    json.dumps(r)
    assert "identical" in format_report(r)


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_injected_deviations_are_located_in_execution_order(where: str) -> None:
    """Step 1 has n forward GEMMs (forward layer order), then dx and dw per layer in reverse order. One ulp
    is added to every y (forward) or every dw (backward) of step 1: the first divergence must be the first of
    them in execution order -- the first layer forward, the last layer backward."""
    layers = _fp8_layers()
    n = len(layers)
    if where == "forward":
        at, want = {3 * n + i for i in range(n)}, ("forward", layers[0], "y")
    else:
        at, want = {3 * n + n + 2 * i + 1 for i in range(n)}, ("backward", layers[-1], "dw")
    r = compare_trainer(_FlipOne(at), steps=2, **SMALL)
    fd = r["first_divergence"]
    assert fd is not None and not r["identical"]
    assert (fd["step"], fd["phase"], fd["layer"], fd["tensor"]) == (1, *want)
    assert fd["differing"] == 1 and fd["max_ulps"] == 1 and fd["index"] == [0, 0]
    assert fd["backend_value"] == float(np.nextafter(np.float32(fd["reference_value"]), np.float32(np.inf)))
    assert r["per_step"][0]["differing_tensors"] == 0
    assert "step 1" in format_report(r)


def test_unsupported() -> None:
    r = compare_trainer(_NoMM(), steps=2, isolate=False, **SMALL)
    assert r["status"] == "unsupported" and "no GEMM here" in r["reason"] and r["steps_run"] == 0
    assert not r["identical"]


def test_torch_cpu_runs_and_reports() -> None:
    pytest.importorskip("torch")
    r = compare_trainer("torch-cpu", steps=1, **SMALL)
    assert r["status"] == "ok" and r["reference_accumulate"] == "fp32" and r["steps_run"] == 1
    json.dumps(r)


def test_arguments() -> None:
    with pytest.raises(ValueError, match="steps"):
        compare_trainer("reference", steps=0)
    with pytest.raises(ValueError, match="fp32"):
        compare_trainer("reference", steps=1, recipe="fp32")
    with pytest.raises(ValueError, match="unknown backend"):
        compare_trainer("nope", steps=1)
    with pytest.raises(ValueError, match="schedule"):
        from fp8ref.nn.config import TrainConfig

        short = TrainConfig.from_preset("tiny", recipe="fp8-amax", steps=3)
        compare_trainer("reference", steps=5, config=short)
    with pytest.raises(TypeError, match="reference_accumulate"):
        compare_trainer("reference", steps=1, reference_accumulate=object(), **SMALL)


def test_ulp_distance() -> None:
    a = np.array([1.0, -0.0, np.nan, 2.0], np.float32)
    b = np.array([np.nextafter(np.float32(1), np.float32(2)), 0.0, np.nan, 2.0], np.float32)
    assert ulp_distance(a, b) == (2, 1, (0,))
    assert ulp_distance(a, a) == (0, 0, None)
    assert ulp_distance(np.array([np.nan], np.float32), np.array([1.0], np.float32))[1] == "nan"
    # FP8 codes: 0x38 (1.0) vs 0x3A (1.25) are 2 codes apart; 0x01 vs 0x81 straddle zero
    c1 = np.array([0x38, 0x01], np.uint8)
    c2 = np.array([0x3A, 0x81], np.uint8)
    assert ulp_distance(c1, c2, "E4M3") == (2, 2, (0,))
    assert ulp_distance(np.array([3]), np.array([5])) == (1, 2, (0,))
    assert backends.get("reference").name == "reference"


class _FailAt(ReferenceBackend):
    """The reference, except that the scaled_mm call numbered ``at`` does ``what``."""

    name = "fail-at"

    def __init__(self, at: int, what: str) -> None:
        super().__init__()
        self.at, self.what, self.calls = at, what, 0

    def scaled_mm(self, *args, **kwargs):
        n, self.calls = self.calls, self.calls + 1
        if n == self.at:
            if self.what == "raise":
                raise ZeroDivisionError("kernel bug")
            if self.what == "type":
                raise TypeError("bad operand")
            if self.what == "exit":
                import sys

                sys.exit(0)
            if self.what == "hard-exit":
                import os

                os._exit(0)
            if self.what == "float64":
                return super().scaled_mm(*args, **kwargs).astype(np.float64)
        return super().scaled_mm(*args, **kwargs)


class _KeyErrorInAmax(ReferenceBackend):
    name = "keyerror-in-amax"

    def amax(self, *args, **kwargs):
        raise KeyError("amax table")


@pytest.mark.parametrize("what, words", [
    ("raise", "ZeroDivisionError: kernel bug"),
    ("type", "TypeError: bad operand"),
    ("exit", "the backend called sys.exit(0)"),
    ("float64", "contract violation: scaled_mm returned dtype float64; expected float32 of shape"),
])
def test_every_backend_failure_is_reported_with_step_layer_and_op(what: str, words: str) -> None:
    """Any exception of the backend (not only the few classes caught before), sys.exit and a result of the
    wrong dtype end the comparison with a report naming step, phase, layer and op -- never a traceback.
    A step runs n forward GEMMs, then dx and dw per layer in reverse order (3n calls): call 3n + n + 1 is the
    dw of the last layer in step 1."""
    layers = _fp8_layers()
    n = len(layers)
    r = compare_trainer(_FailAt(4 * n + 1, what), steps=2, isolate=False, **SMALL)
    assert r["status"] == "error" and not r["identical"] and r["steps_run"] == 0
    assert r["where"] == {"step": 1, "phase": "backward", "layer": layers[-1], "op": "scaled_mm"}
    assert r["reason"].startswith(f"backend side, step 1, phase backward, layer {layers[-1]}, op scaled_mm: "
                                  f"{words}")
    json.dumps(r)
    r = compare_trainer(_FailAt(1, what), steps=1, isolate=False, **SMALL)
    assert r["where"] == {"step": 0, "phase": "forward", "layer": layers[1], "op": "scaled_mm"}


def test_an_exception_in_amax_and_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    r = compare_trainer(_KeyErrorInAmax(), steps=1, isolate=False, **SMALL)
    assert r["status"] == "error" and r["reason"].endswith("op amax: KeyError: 'amax table'")
    assert r["where"]["phase"] == "forward" and r["where"]["step"] == 0
    backends.register("keyerror-in-amax", _KeyErrorInAmax)
    try:
        from fp8ref.cli import main

        assert main(["conform", "--trainer", "--backend", "keyerror-in-amax", "--steps", "1"]) == 2
    finally:
        backends.unregister("keyerror-in-amax")
    out = capsys.readouterr().out
    assert "status: error: backend side, step 0, phase forward" in out and "KeyError" in out


def test_the_backend_side_runs_in_a_worker() -> None:
    """A backend that is not built in trains in a worker process: sys.exit there is still located; a
    process exit (no exception) ends the comparison with the operation it happened in."""
    layers = _fp8_layers()
    r = compare_trainer(_FailAt(1, "exit"), steps=1, **SMALL)
    assert r["isolated"] and r["status"] == "error"
    assert r["reason"] == (f"backend side, step 0, phase forward, layer {layers[1]}, op scaled_mm: "
                           "the backend called sys.exit(0)")
    r = compare_trainer(_FailAt(1, "hard-exit"), steps=1, **SMALL)
    assert r["status"] == "error" and not r["identical"]
    assert r["reason"] == "backend side: backend process exited with status 0 during op scaled_mm"
    assert r["where"]["op"] == "scaled_mm"
    assert not compare_trainer("reference", steps=1, **SMALL)["isolated"]
