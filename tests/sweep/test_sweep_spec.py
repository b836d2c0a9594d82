"""Sweep specs: TOML, grids, cell names, and refusal of bad specs before anything is written (no Dask)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from fp8ref.cli import main
from fp8ref.sweep import Sweep
from fp8ref.sweep.spec import SpecError, cell_name, dumps_toml

from .helpers import TINY


def _spec(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.toml"
    p.write_text(text)
    return p


def test_cells_are_the_product_in_spec_order_named_from_their_axes() -> None:
    s = Sweep(kind="train", grid={"bias": [-4, 4], "n-head": [2, 4]}, fixed={"recipe": "fp8-cscale", **TINY})
    assert [c.name for c in s.cells] == [
        "bias=-4__n_head=2",
        "bias=-4__n_head=4",
        "bias=4__n_head=2",
        "bias=4__n_head=4",
    ]
    assert s.cells[1].params == {"recipe": "fp8-cscale", **TINY, "bias": -4, "n_head": 4}
    assert s.cells[1].dir == "cells/bias=-4__n_head=4"


def test_several_grids_are_a_union_without_duplicates() -> None:
    s = Sweep(
        kind="train",
        grid=[
            {"recipe": ["fp8-cscale"], "bias": [0, 8], "seed": [0, 1]},
            {"recipe": ["fp32", "fp8-amax"], "seed": [0, 1]},
            {"recipe": ["fp32"], "seed": [1]},  # already given by the grid before
        ],
        fixed=TINY,
    )
    names = [c.name for c in s.cells]
    assert len(names) == 8 and len(set(names)) == 8
    assert names[4:] == [
        "recipe=fp32__seed=0",
        "recipe=fp32__seed=1",
        "recipe=fp8-amax__seed=0",
        "recipe=fp8-amax__seed=1",
    ]


def test_cell_names_are_safe_stable_and_distinct() -> None:
    assert cell_name({"a": 1, "b": "x"}, ["b", "a"]) == "a=1__b=x"
    assert cell_name({}, []) == "cell"
    odd = cell_name({"recipe": "fp8-cscale:4"}, ["recipe"])
    assert odd.startswith("recipe=fp8-cscale_4~") and "/" not in odd and ":" not in odd
    assert odd == cell_name({"recipe": "fp8-cscale:4"}, ["recipe"])
    assert odd != cell_name({"recipe": "fp8-cscale_4"}, ["recipe"])  # no clash through rewriting
    path = cell_name({"checkpoint": "/runs/x/fp32"}, ["checkpoint"], ["checkpoint"])
    assert path.startswith("checkpoint=fp32~") and len(path) < 60
    assert cell_name({"s": "a" * 300}, ["s"]).count("a") < 40


def test_toml_round_trip(tmp_path: Path) -> None:
    s = Sweep(
        kind="train",
        grid=[{"bias": [-4, 0], "lr": [0.001, 1e-05]}, {"seed": [3]}],
        fixed={"recipe": "fp8-cscale", "fp8_layers": 'qkv,"mlp_in"\\\x7f', "no_plots": True, "steps": 2},
    )
    text = dumps_toml(s)
    assert tomllib.loads(text)["grid"][0]["lr"] == [0.001, 1e-05]
    back = Sweep.from_toml(_spec(tmp_path, text))
    assert (back.kind, back.grid, back.fixed) == (s.kind, s.grid, s.fixed)


def test_relative_paths_are_made_absolute_against_the_spec_folder(tmp_path: Path) -> None:
    p = _spec(tmp_path, 'kind = "train"\n[fixed]\nrecipe = "fp32"\ndata = "corpus.txt"\n')
    assert Sweep.from_toml(p).fixed["data"] == str(tmp_path.resolve() / "corpus.txt")


@pytest.mark.parametrize(
    "text, message",
    [
        ('kind = "bake"', "kind: 'bake' is not a sweep kind; valid: train, ptq, golden, conform"),
        ("[grid]\nseed = [0]", "missing kind"),
        ('kind = "train"\nextra = 1', "unknown top-level key(s) extra"),
        ('kind = "train"\n[grid]\nseed = 0', "grid.seed: a grid axis is a list of values"),
        ('kind = "train"\n[grid]\nseed = []', "grid.seed: an empty list"),
        ('kind = "train"\n[grid]\nseed = [1, 1]', "grid.seed: lists 1 twice"),
        ('kind = "train"\n[grid]\nseed = [[1]]', "values must be strings, integers, floats or booleans"),
        ('kind = "train"\n[grid]\nseed = [1]\n[fixed]\nseed = 2', "grid and fixed both set seed"),
        ('kind = "train"\n[grid]\nn-head = [2]\nn_head = [4]', "option 'n_head' is given twice"),
        ('kind = "train"\n[fixed]\nbias = [1, 2]', "fixed.bias: one value expected"),
        ('kind = "train"\n[grid\n', "not valid TOML"),
    ],
)
def test_structural_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        Sweep.from_toml(_spec(tmp_path, text))
    assert message in str(err.value)


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"bogus": [1]}, "grid axis bogus: fp8ref train has no option 'bogus'; valid options: accumulate,"),
        (
            {"formats": ["ocp", "ieee"]},
            "grid axis formats = 'ieee' (cell formats=ieee): fp8ref train refuses it: "
            "argument --formats: invalid choice: 'ieee' (choose from 'fnuz', 'ocp')",
        ),
        ({"recipe": ["fp8-amax", "fp8-nope"]}, "grid axis recipe = 'fp8-nope'"),
        (
            {"n_head": [2, 3]},
            "grid axis n_head = 3 (cell n_head=3): fp8ref train refuses it: n_embd (32) must be "
            "divisible by n_head (3)",
        ),
        ({"accumulate": ["exact", "bogus"]}, "grid axis accumulate = 'bogus'"),
        ({"steps": [0]}, "grid axis steps = 0 (cell steps=0): fp8ref train refuses it: steps must be >= 1"),
        ({"lr": ["fast"]}, "argument --lr: invalid float value: 'fast'"),
        ({"no_plots": [1]}, "option no_plots is a flag: give true or false, got 1"),
        ({"out": ["x"]}, "grid axis out: the sweep gives each cell its own folder"),
        ({"compare": ["fp32"]}, "give the recipes as a grid axis"),
    ],
)
def test_train_cells_are_checked_by_the_train_command(grid: dict, message: str) -> None:
    fixed = {k: v for k, v in {"recipe": "fp8-amax", **TINY}.items() if k not in grid}
    with pytest.raises(SpecError) as err:
        Sweep(kind="train", grid=grid, fixed=fixed).cells  # noqa: B018
    assert message in str(err.value)


def test_a_train_sweep_needs_a_recipe() -> None:
    with pytest.raises(SpecError, match="a train sweep needs recipe"):
        Sweep(kind="train", grid={"seed": [0]}, fixed=TINY).cells  # noqa: B018


def test_other_kinds_are_checked_by_their_commands(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"fp8ref infer refuses it: .*nowhere does not exist"):
        Sweep(kind="ptq", grid={"checkpoint": [str(tmp_path / "nowhere")]}).cells  # noqa: B018
    with pytest.raises(SpecError, match="a ptq sweep needs checkpoint"):
        Sweep(kind="ptq", grid={"biases": ["0:4"]}).cells  # noqa: B018
    with pytest.raises(SpecError, match=r"grid axis backend = 'no-such'.*valid: reference"):
        Sweep(kind="conform", grid={"backend": ["reference", "no-such"]}).cells  # noqa: B018
    with pytest.raises(SpecError, match=r"grid axis suite = 'bake'.*invalid choice: 'bake'"):
        Sweep(kind="golden", grid={"suite": ["bake"]}).cells  # noqa: B018
    with pytest.raises(
        SpecError, match=r"no case of suite\(s\) scaling has a parameter colour; their parameters: "
    ):
        Sweep(kind="golden", grid={"colour": ["red"]}, fixed={"suite": "scaling"}).cells  # noqa: B018
    with pytest.raises(SpecError, match=r"grid axis format = 'E9M9'.*values of format: \"E4M3\""):
        Sweep(kind="golden", grid={"format": ["E4M3", "E9M9"]}, fixed={"suite": "scaling"}).cells  # noqa: B018


def test_cli_refuses_a_bad_spec_in_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    spec = _spec(tmp_path, 'kind = "train"\n[grid]\nformats = ["ocp", "ieee"]\n[fixed]\nrecipe = "fp32"\n')
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fp8ref sweep: grid axis formats = 'ieee'")
    assert not out.exists()


def test_cli_dry_run_lists_the_cells_and_writes_nothing(tmp_path: Path, capsys) -> None:
    spec = _spec(
        tmp_path, 'kind = "train"\n[grid]\nbias = [0, 4]\n[fixed]\nrecipe = "fp8-cscale"\nsteps = 4\n'
    )
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "fp8ref train --recipe=fp8-cscale --steps=4 --bias=4 --quiet --out=DIR/cells/bias=4" in out
    assert out.strip().endswith("2 cells (train); 2 to run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give one of SPEC.toml, --resume DIR or --report DIR"),
        (["s.toml", "--report", "x"], "SPEC.toml and --report cannot be combined"),
        (["--resume", "nowhere"], "--resume nowhere: not a sweep folder"),
        (["--report", "nowhere"], "--report nowhere: not a sweep folder"),
        (["--report", "x", "--workers", "2"], "--report computes nothing; --workers do not apply"),
        (["s.toml", "--workers", "0"], "--workers must be >= 1"),
        (["nowhere.toml"], "nowhere.toml: cannot read the spec"),
    ],
)
def test_cli_usage_errors(tmp_path: Path, monkeypatch, capsys, argv: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *argv]) == 2
    assert message in capsys.readouterr().err


def test_import_stays_light_and_the_command_is_listed() -> None:
    code = (
        "import sys, fp8ref, fp8ref.sweep; from fp8ref.sweep import Sweep; "
        "Sweep(kind='train', grid={'seed': [0]}); "
        "print(sorted(m for m in ('dask', 'distributed', 'numba', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
    help_text = subprocess.run(
        [sys.executable, "-m", "fp8ref", "--help"], capture_output=True, text=True
    ).stdout
    assert "sweep" in help_text
    assert json.loads(json.dumps(Sweep(kind="golden").fixed)) == {}
