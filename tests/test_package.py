"""Packaging: shipped files are found from a wheel, and library modules do not print (the import
layers are checked in tests/test_layers.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "fairspec"


@pytest.mark.slow
def test_wheel_ships_prompts_templates_specs_and_data(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True, timeout=300, capture_output=True,
    )
    (wheel,) = tmp_path.glob("fairspec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(REPO).as_posix() for p in (PACKAGE / "resources").rglob("*") if p.is_file()}
    assert shipped and shipped <= names
    assert "fairspec/resources/prompts/review.j2" in names


def test_library_modules_do_not_print():
    for module in PACKAGE.rglob("*.py"):
        if module.name == "cli.py":
            continue
        calls = [n for n in ast.walk(ast.parse(module.read_text()))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
        assert not calls, f"{module.relative_to(REPO)} calls print()"
