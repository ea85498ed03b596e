"""The modules of resilin.* import each other without a cycle, counting every import a module
names (also those only for type checking, which tie the modules together just the same)."""

from __future__ import annotations

import ast
from pathlib import Path

import resilin

ROOT = Path(resilin.__file__).resolve().parent.parent  # the checkout: resilin/, api/, storage/, ...


def _package_dirs() -> dict[str, Path]:
    """Each resilin package and where its source is (the top-level folders install under resilin.*)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {name: ROOT / path for name, path in config["package-dir"].items()}
    return {pkg: dirs.get(pkg, ROOT / pkg.replace(".", "/")) for pkg in config["packages"]}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, directory in _package_dirs().items():
        for path in directory.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The resilin modules ``name`` imports (a name imported from a package counts as its module
    when there is one, else as the package)."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan), if there are any."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_import_graph_of_resilin_has_no_cycle():
    found = modules()
    assert "resilin.cluster.lifecycle" in found and "resilin.api.server" in found
    known = set(found)
    graph = {name: imports_of(name, path, known) for name, path in found.items()}
    assert cycles(graph) == []


def test_a_cycle_would_be_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
