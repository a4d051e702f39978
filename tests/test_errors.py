"""One exception tree and one error boundary: every error class fairspec raises on purpose is
in ``fairspec/errors.py``, drawn in its docstring as it is; the command line maps any of them
to its exit status with no traceback; docs/architecture.md's layer table is the package's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import fairspec
import fairspec.errors as errors
from fairspec.cli import cli

PACKAGE = Path(fairspec.__file__).resolve().parent
REPO = PACKAGE.parent
_TREE_LINE = re.compile(r"^    ([│ ]*)(?:├── |└── )?(\w+)\b")


def drawn_tree() -> dict[str, str | None]:
    """class -> its parent, as the docstring of fairspec/errors.py draws them."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        found = _TREE_LINE.match(line)
        if not found or not hasattr(errors, found.group(2)):
            continue
        depth = 0 if "── " not in line else len(found.group(1)) // 4 + 1
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[found.group(2)] = stack[-1][1] if stack else None
        stack.append((depth, found.group(2)))
    return parents


def real_tree() -> dict[str, str | None]:
    """class -> its FairspecError parent, for every subclass in fairspec.errors."""
    found: dict[str, str | None] = {"FairspecError": None}
    todo = [errors.FairspecError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__ == errors.__name__:
                found[sub.__name__] = cls.__name__
                todo.append(sub)
    return found


def test_the_docstring_draws_the_real_hierarchy():
    assert drawn_tree() == real_tree()
    assert len(real_tree()) >= 20  # the parse found the tree, not an empty one


def test_every_error_class_is_in_errors_py():
    """No module outside errors.py defines an exception fairspec raises on purpose (a class
    whose base ends in Error/Exception/Failed/...), except the internal ones the docstring
    names (raised and caught in their own module)."""
    internal = {"Overrun", "_TooBig"}
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name in internal:
                continue
            bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
            if bases & ({"Exception", "BaseException", "KeyError", "ValueError", "RuntimeError"}
                        | {name for name in real_tree()}):
                outside.append(f"{path.relative_to(REPO)}: {node.name}")
    assert outside == []
    for name in internal:
        assert name in errors.__doc__


@pytest.mark.parametrize("exc", [errors.DataError("bad row 3"), errors.BudgetReached("stop"),
                                 errors.PlanError("no GPU")])
def test_the_command_line_maps_any_error_to_its_exit_status_without_a_traceback(
        exc, monkeypatch, tmp_path):
    """An error raised past the commands' own code (here, from `fairspec report`) is caught by
    the group's one boundary."""
    import fairspec.report as report

    def fails(run_dir):
        exc.add_note("a note added on the way up")
        raise exc

    monkeypatch.setattr(report, "write_report", fails)
    done = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert done.exit_code == exc.exit_status
    assert "Traceback" not in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)  # exited, not raised
    assert str(exc) in done.output and "a note added on the way up" in done.output


def test_an_error_after_the_plan_is_compiled_is_handled_too(monkeypatch):
    """`fairspec plan` once caught errors only around compiling: one from the estimate was a
    traceback."""
    import fairspec.plan.estimate as estimate

    def fails(*args, **kwargs):
        raise errors.DataError("the exam's mistakes.jsonl is not JSON at line 4")

    monkeypatch.setattr(estimate, "estimate_run", fails)
    done = CliRunner().invoke(cli, ["plan", str(REPO / "specs" / "quickstart.yaml")])
    assert done.exit_code == 2, done.output
    assert "error: the exam's mistakes.jsonl is not JSON at line 4" in done.output
    assert not isinstance(done.exception, errors.DataError)


def test_the_architecture_page_lists_the_packages_layers():
    package = {name: int(row.group(1))
               for row in re.finditer(r"^    (\d+)\s{2,}\w+\s{2,}([\w ]+?)\s*$", fairspec.__doc__, re.M)
               for name in row.group(2).split()}
    assert len(package) > 20
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    documented: dict[str, int] = {}
    for row in re.finditer(r"^\| (\d+) \w+ \| ([^|]+) \|", page, re.M):
        for name in re.findall(r"`(\w+)`", row.group(2)):
            documented[name] = int(row.group(1))
    assert documented == package
