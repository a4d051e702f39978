"""Count the test suite's assertions and test functions, statically, to compare two revisions.

    .venv/bin/python bench/count_tests.py [tests/]

An assertion is an ``assert`` statement or a ``pytest.raises`` / ``pytest.warns`` block
(``with`` or call form), counted in every ``.py`` file under the folder (the tests and their
helpers in ``tests/support``). Test functions are the ``test_*`` functions and methods. The
number of collected tests (parametrized cases included) is pytest's own count:
``.venv/bin/python -m pytest --collect-only -q | tail -1``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

RAISING = {"raises", "warns"}


def _is_raising_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in RAISING and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "pytest")


def count(folder: Path) -> dict[str, int]:
    totals = {"files": 0, "test_functions": 0, "assert": 0, "pytest_raises": 0}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        totals["files"] += 1
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert):
                totals["assert"] += 1
            elif _is_raising_call(node):
                totals["pytest_raises"] += 1
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                totals["test_functions"] += 1
    totals["assertions"] = totals["assert"] + totals["pytest_raises"]
    return totals


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests"
    for key, value in count(folder).items():
        print(f"{key:>15}: {value}")


if __name__ == "__main__":
    main()
