"""Run benchmarks on two commits of fp8ref, one right after the other, and keep both outputs.

Usage: python benchmarks/compare_commits.py BEFORE AFTER [--bench cast,scaling,matmul,accum,train]
       [--rounds 1] [--out DIR]

Each commit is checked out into its own temporary ``git worktree`` (removed afterwards); every benchmark
script of the AFTER commit's ``benchmarks/`` is run with ``PYTHONPATH`` set to one checkout, then to the
other (BEFORE first in odd rounds, AFTER first in even ones), in this interpreter, so that both see the same
machine load. Each script's output goes to ``DIR/<bench>.<before|after>.<round>.txt`` (default DIR:
``ab-results``; an existing DIR must be empty) and is printed. A script the BEFORE commit cannot run (a
feature it lacks) prints its error and the comparison goes on.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALL = ("import", "cast", "scaling", "matmul", "accum", "train")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _run(script: Path, tree: Path, log: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree))
    res = subprocess.run([sys.executable, str(script)], cwd=tree, env=env, capture_output=True, text=True)
    text = res.stdout + (f"\n[exit {res.returncode}]\n{res.stderr[-2000:]}" if res.returncode else "")
    log.write_text(text)
    print(f"==== {log.name}\n{text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--bench", default=",".join(ALL), help=f"comma-separated, of {', '.join(ALL)}")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("ab-results"))
    args = ap.parse_args(argv)
    benches = [b.strip() for b in args.bench.split(",") if b.strip()]
    unknown = sorted(set(benches) - set(ALL))
    if unknown or not benches:
        ap.error(f"--bench: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(ALL)}")
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        ap.error(f"--out {args.out}: exists and is not an empty folder")
    try:
        revs = {"before": _git("rev-parse", "--verify", args.before + "^{commit}"),
                "after": _git("rev-parse", "--verify", args.after + "^{commit}")}
    except subprocess.CalledProcessError as exc:
        ap.error(f"not a commit: {exc.stderr.strip()}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fp8ref-ab-") as tmp:
        trees = {k: Path(tmp) / k for k in revs}
        for k, rev in revs.items():
            _git("worktree", "add", "--detach", str(trees[k]), rev)
        try:
            for r in range(1, args.rounds + 1):
                order = ("before", "after") if r % 2 else ("after", "before")
                for b in benches:
                    script = trees["after"] / "benchmarks" / f"bench_{b}.py"
                    for k in order:
                        _run(script, trees[k], args.out / f"{b}.{k}.{r}.txt")
        finally:
            for k in revs:
                _git("worktree", "remove", "--force", str(trees[k]))
    print(f"before {revs['before'][:10]}, after {revs['after'][:10]}; outputs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
