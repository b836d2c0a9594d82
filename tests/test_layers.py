"""The import graph of ``fp8ref/`` follows the layer order of docs/architecture.md.

The order is written once, in the ``layers`` block of docs/architecture.md; this test reads it from there.
Every ``import`` and ``from ... import`` statement of every module counts, at module level or inside a
function (lazy imports are still dependencies); only imports under ``if TYPE_CHECKING:`` (type hints, never
executed) are left out. Two rules:

1. no module imports a module of a higher layer;
2. there is no import cycle between modules (inside a layer either).

``import fp8ref`` / ``from fp8ref import NAME`` resolve through the package's lazy table
(``fp8ref/__init__.py``'s ``_LAZY_BY_MODULE``) to the module that defines NAME.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "fp8ref"
DOC = ROOT / "docs" / "architecture.md"


def _layers() -> list[tuple[str, list[str]]]:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"```layers\n(.*?)```", text, re.S)
    assert m, "docs/architecture.md has no ```layers block"
    out = []
    for line in m.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, pats = line.partition(":")
        out.append((name.strip(), pats.split()))
    return out


LAYERS = _layers()


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}
# ``fp8ref`` itself is the public facade: it imports formats and resolves the other public names lazily
# (importlib, through ``_LAZY``); an import of it is resolved to the module that defines the name.
FACADE = "fp8ref"


def layer_of(module: str) -> int:
    """The layer index of ``module``: a pattern naming the whole module (``fp8ref.cli``, ``fp8ref.*.cli``)
    before a package prefix (``fp8ref.nn`` for ``fp8ref.nn.train``), then the longer pattern."""
    best: tuple[int, int, int] | None = None
    for i, (_, pats) in enumerate(LAYERS):
        for pat in pats:
            whole = module == pat or fnmatch.fnmatchcase(module, pat)
            if whole or module.startswith(pat + "."):
                score = (int(whole), len(pat.replace("*", "")))
                if best is None or score > best[:2]:
                    best = (*score, i)
    if best is None:
        raise AssertionError(f"{module} is in no layer of docs/architecture.md")
    return best[2]


def _lazy_table() -> dict[str, str]:
    tree = ast.parse((PKG / "__init__.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_LAZY_BY_MODULE" for t in targets):
                by_module = ast.literal_eval(node.value)
                return {name: module for module, names in by_module.items() for name in names}
    raise AssertionError("fp8ref/__init__.py has no _LAZY_BY_MODULE table")


LAZY = _lazy_table()


def _resolve(base: str, name: str | None) -> str:
    """The fp8ref module that ``from base import name`` (or ``import base``) depends on."""
    if name is not None and f"{base}.{name}" in MODULES:
        return f"{base}.{name}"
    if base == "fp8ref":
        if name is not None and name in LAZY:
            return LAZY[name]
        if name is None:  # ``import fp8ref``: the facade reaches every lazy target
            return max(set(LAZY.values()), key=layer_of)
        return "fp8ref"
    while base not in MODULES and "." in base:
        base = base.rsplit(".", 1)[0]
    return base


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports for type hints only, never executed)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)
    return out


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    deps: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "fp8ref" or a.name.startswith("fp8ref."):
                    deps.add(_resolve(a.name, None))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != "fp8ref" and not base.startswith("fp8ref."):
                continue
            for a in node.names:
                deps.add(_resolve(base, a.name))
    deps.discard(module)
    return {d for d in deps if d in MODULES or d == "fp8ref"}


GRAPH = {m: imports_of(m) for m in MODULES if m != FACADE}


def test_every_module_has_a_layer() -> None:
    for m in MODULES:
        if m != FACADE:
            layer_of(m)


def test_no_import_runs_up_the_layer_order() -> None:
    bad = []
    for m, deps in sorted(GRAPH.items()):
        if m == FACADE:
            continue
        for d in sorted(deps):
            if d == FACADE:
                continue
            if layer_of(d) > layer_of(m):
                bad.append(f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})")
    assert not bad, "imports up the layer order:\n" + "\n".join(bad)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    # a package's __init__ re-exporting its own submodules is not a cycle of modules: drop those edges
    cycles = []
    for comp in _cycles():
        cycles.append(" <-> ".join(comp))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import fp8ref.cast.api", {"fp8ref.cast.api"}),
        ("from fp8ref.accum import tiled", {"fp8ref.accum.tiled"}),
        ("from fp8ref import quantize", {"fp8ref.cast"}),
    ],
)
def test_the_reader_sees_each_form_of_import(source: str, expected: set[str], tmp_path: Path) -> None:
    tree = ast.parse(f"def f():\n    {source}\n")
    node = tree.body[0].body[0]  # type: ignore[attr-defined]
    if isinstance(node, ast.Import):
        got = {_resolve(a.name, None) for a in node.names}
    else:
        got = {_resolve(node.module, a.name) for a in node.names}
    assert got == expected
