"""The stage order of ARCHITECTURE.md, enforced: later stages import earlier ones, never the
reverse, and no module imports itself back through others. Every ``lepton.*`` import counts,
also those inside functions and under ``TYPE_CHECKING``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lepton"


def stage_order() -> list[set[str]]:
    """The ``stages`` block of ARCHITECTURE.md: one line per stage, lowest first."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = re.search(r"```stages\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md must hold the stage order in a ```stages block"
    return [set(line.split("#")[0].replace("/", " ").split())
            for line in block.group(1).splitlines() if line.split("#")[0].strip()]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The lepton modules ``name`` imports (``from a import b`` counts as ``a.b`` when that
    is a module, else as ``a``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lepton"


GRAPH = {name: imports(name, path, modules()) for name, path in modules().items()}


def test_every_package_has_a_stage():
    named = set().union(*stage_order())
    missing = sorted({stage_of(m) for m in GRAPH} - named)
    assert not missing, f"add {missing} to the stages block of ARCHITECTURE.md"


def test_no_stage_imports_a_later_one():
    rank = {stage: i for i, line in enumerate(stage_order()) for stage in line}
    wrong = sorted(f"{module} imports {target}" for module, targets in GRAPH.items()
                   for target in targets if rank[stage_of(target)] > rank[stage_of(module)])
    assert not wrong, "later stages import earlier ones, never the reverse:\n" + "\n".join(wrong)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circles():
    assert circles(GRAPH) == []


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_circle_finder_finds_circles(graph, expected):
    assert circles(graph) == expected


def test_the_import_reader_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from lepton.core import saving\n    import lepton.serve\n")
    known = {"lepton.core": source, "lepton.core.saving": source, "lepton.serve": source}
    assert imports("lepton.x.mod", source, known) == {"lepton.core.saving", "lepton.serve"}
