"""``golden generate DIR``: the destination is checked first, and only files of an fp8ref golden set that
fp8ref wrote there are ever removed (a foreign manifest.json used to make it delete every file it listed
and every empty sub-folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fp8ref.cli import main
from fp8ref.golden import generate, verify
from fp8ref.golden import manifest as mf
from fp8ref.golden.suites import casts

_REAL_BUILD = casts.build


@pytest.fixture(autouse=True)
def few_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    """The casts suite cut to four cases, so that each generate takes milliseconds."""
    monkeypatch.setattr(casts, "build", lambda: _REAL_BUILD()[:4])


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _foreign(root: Path) -> None:
    """A folder of another tool: its own manifest.json listing its files, an empty folder."""
    root.mkdir()
    (root / "data").mkdir()
    (root / "data" / "precious.safetensors").write_bytes(b"x" * 64)
    (root / "empty-folder").mkdir()
    (root / "manifest.json").write_text(json.dumps(
        {"cases": [{"file": "data/precious.safetensors"}], "tool": "someone-else"}))


def test_foreign_manifest_is_refused_and_nothing_is_removed(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "d"
    _foreign(root)
    before = _files(root)
    with pytest.raises(ValueError, match="not a readable fp8ref golden set"):
        generate(root, ["casts"])
    assert main(["golden", "generate", str(root), "--suite", "casts"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"fp8ref golden generate: {root} holds a manifest.json")
    assert _files(root) == before


def test_manifest_of_another_generator_is_refused(tmp_path: Path) -> None:
    """A well-formed fp8ref-schema manifest that fp8ref's generate did not write (its command says so)."""
    root = tmp_path / "d"
    generate(root, ["casts"])
    m = json.loads((root / "manifest.json").read_text())
    m["command"] = "other-tool export"
    (root / "manifest.json").write_bytes(mf.dumps(m))
    before = _files(root)
    with pytest.raises(ValueError, match="was not written by 'fp8ref golden generate'"):
        generate(root, ["casts"])
    assert _files(root) == before


def test_regenerating_removes_only_the_set_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "d"
    generate(root, ["casts"])
    (root / "notes.txt").write_text("mine")
    (root / "mine").mkdir()
    (root / "casts" / "mine").mkdir()
    (root / "casts" / "E4M3" / "extra.bin").write_bytes(b"1")
    first = json.loads((root / "manifest.json").read_text())
    # the next set has other cases: the old files go, the folders they leave empty go, nothing else
    monkeypatch.setattr(casts, "build", lambda: _REAL_BUILD()[-3:])
    generate(root, ["casts"])
    second = json.loads((root / "manifest.json").read_text())
    for e in first["cases"]:
        assert not (root / e["file"]).exists()
    for e in second["cases"]:
        assert (root / e["file"]).is_file()
    assert (root / "notes.txt").read_text() == "mine" and (root / "mine").is_dir()
    assert (root / "casts" / "mine").is_dir() and (root / "casts" / "E4M3" / "extra.bin").exists()
    assert verify(root).exit_code == 0


def test_empty_folders_left_by_the_old_set_are_removed(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "d"
    generate(root, ["casts"])
    old_dirs = {(root / e["file"]).parent for e in json.loads((root / "manifest.json").read_text())["cases"]}
    e5m2 = [c for c in _REAL_BUILD() if c.id.startswith("casts/E5M2/")][:2]
    monkeypatch.setattr(casts, "build", lambda: e5m2)
    generate(root, ["casts"])
    assert old_dirs == {root / "casts" / "E4M3"}
    assert not (root / "casts" / "E4M3").exists() and (root / "casts" / "E5M2").is_dir()


def test_changed_or_linked_set_files_are_not_replaced(tmp_path: Path) -> None:
    root = tmp_path / "d"
    generate(root, ["casts"])
    m = json.loads((root / "manifest.json").read_text())
    changed = root / m["cases"][0]["file"]
    changed.write_bytes(changed.read_bytes() + b"edited")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="differs from what the set's manifest says fp8ref wrote"):
        generate(root, ["casts"])
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    # a listed path that is a symbolic link: neither it nor its target is touched
    changed.unlink()
    target = tmp_path / "elsewhere.safetensors"
    target.write_bytes(b"precious")
    os.symlink(target, changed)
    with pytest.raises(ValueError, match="symbolic link"):
        generate(root, ["casts"])
    assert changed.is_symlink() and target.read_bytes() == b"precious"
    inside = root / "inside.bin"  # a link to a file inside DIR: unlinking the resolved path would delete it
    inside.write_bytes(b"mine")
    changed.unlink()
    os.symlink(inside, changed)
    with pytest.raises(ValueError, match="symbolic link"):
        generate(root, ["casts"])
    assert inside.read_bytes() == b"mine"


def test_unlisted_file_in_the_way_is_not_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "d"
    generate(root, ["casts"])
    nxt = _REAL_BUILD()[-1]
    in_the_way = root / nxt.file
    in_the_way.parent.mkdir(parents=True, exist_ok=True)
    in_the_way.write_bytes(b"not fp8ref's")
    monkeypatch.setattr(casts, "build", lambda: [nxt])
    with pytest.raises(ValueError, match="exists and is not a file of the golden set"):
        generate(root, ["casts"])
    assert in_the_way.read_bytes() == b"not fp8ref's" and verify(root).exit_code == 0


def test_files_without_a_manifest_are_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty and holds no golden set"):
        generate(tmp_path, ["casts"])
    assert _files(tmp_path) == {"precious.txt"}


@pytest.mark.parametrize("where", ["file", "readonly"])
def test_destination_is_checked_before_any_work(tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def no_work():
        raise AssertionError("cases were built before the destination was checked")

    monkeypatch.setattr(casts, "build", no_work)
    if where == "file":
        dest = tmp_path / "taken"
        dest.write_text("x")
        match = "exists and is not a folder"
    else:
        dest = Path("/proc/fp8ref-golden-test")  # a read-only file system, even for root
        match = "cannot write there"
    assert main(["golden", "generate", str(dest), "--suite", "casts"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"fp8ref golden generate: {dest.parent}") and match in err[0]
