"""The package's layers (the table in fairspec/__init__.py): no module imports upwards, not
even inside a function or by name through importlib, and the import graph has no cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fairspec

PACKAGE = Path(fairspec.__file__).resolve().parent
_ROW = re.compile(r"^\s{4}(\d+)\s{2,}(\w+)\s{2,}([\w ]+?)\s*$")
_NAMED = re.compile(r"^fairspec(\.\w+)+(:\w+)?$")  # a module named in a string (importlib)


def layer_table(docstring: str) -> dict[str, int]:
    """component (top-level module or package of fairspec) -> its layer, from the docstring."""
    table: dict[str, int] = {}
    for line in docstring.splitlines():
        found = _ROW.match(line)
        if found and found.group(1).isdigit():
            for name in found.group(3).split():
                table[name] = int(found.group(1))
    return table


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every fairspec module ``path`` imports, anywhere in it (or names for importlib)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = module_name(path, root).split(".")
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = own if is_package else own[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # maybe submodules
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _NAMED.match(node.value):
            found.add(node.value.split(":")[0])
    return {name for name in found if name == root.name or name.startswith(root.name + ".")}


def graph(root: Path) -> dict[str, set[str]]:
    """module -> the modules of the package it imports (names that are not modules dropped)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    return {name: {i for i in imports_of(path, root) if i in modules and i != name}
            for name, path in modules.items()}


def component(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def violations(root: Path, table: dict[str, int]) -> list[str]:
    found = []
    edges = graph(root)
    for module, targets in sorted(edges.items()):
        own = component(module)
        if own is not None and own not in table:
            found.append(f"{module}: {own} is in no layer of the table")
            continue
        for target in sorted(targets):
            other = component(target)
            if own is None or other is None or other not in table:
                continue
            if table[other] > table[own]:
                found.append(f"{module} (layer {table[own]}) imports {target} "
                             f"(layer {table[other]}): upwards")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members) + [sorted(members)[0]])

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_table_names_every_part_of_the_package():
    table = layer_table(fairspec.__doc__ or "")
    assert table["errors"] == 0 and table["cli"] == max(table.values())
    parts = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    parts |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert parts - set(table) == set(), "add these to the layer table in fairspec/__init__.py"
    assert set(table) - parts == set(), "the layer table names modules that do not exist"


def test_no_module_imports_upwards_or_closes_a_cycle():
    assert violations(PACKAGE, layer_table(fairspec.__doc__ or "")) == []


def test_no_stage_names_the_spec():
    for module in (PACKAGE / "stages").rglob("*.py"):
        text = module.read_text(encoding="utf-8")
        assert not re.search(r"\b(Spec|LoadedSpec)\b|fairspec\.dsl", text), module.name


def test_the_check_catches_an_upward_import_and_a_cycle(tmp_path):
    """The checker itself can fail: a lower module importing a higher one (in a function,
    and by name through importlib), and two modules importing each other."""
    root = tmp_path / "fairspec"
    (root / "low").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "low" / "__init__.py").write_text("")
    (root / "low" / "a.py").write_text("def f():\n    from fairspec.high import b\n")
    (root / "low" / "c.py").write_text("import importlib\nM = importlib.import_module('fairspec.high')\n")
    (root / "high.py").write_text("from fairspec.low import c\n")
    (root / "low" / "x.py").write_text("from fairspec.low import y\n")
    (root / "low" / "y.py").write_text("from fairspec.low.x import z\n")
    table = {"low": 0, "high": 1}
    found = violations(root, table)
    assert "fairspec.low.a (layer 0) imports fairspec.high (layer 1): upwards" in found
    assert "fairspec.low.c (layer 0) imports fairspec.high (layer 1): upwards" in found
    assert any(v.startswith("import cycle:") and "fairspec.low.x" in v and "fairspec.low.y" in v
               for v in found)
    assert violations(root, {"low": 1, "high": 1})[-1].startswith("import cycle")
    assert "fairspec.high: high is in no layer of the table" in violations(root, {"low": 0})
