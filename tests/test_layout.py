"""The tests' own layout: tests/<pkg>/test_<module>.py mirrors fairspec/<pkg>/<module>.py, and no two
test files share a file name (with --import-mode=importlib pytest would accept two, but a failure
report, ``-k`` and ``--lf`` name a test by its file, and two files of one name are two guesses)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "fairspec"
#: folders of tests/ that mirror no package: fault injection across the stages, and helpers
CROSS_CUTTING = {"reliability", "support"}


def collected_files(root: Path = TESTS) -> list[Path]:
    """The files pytest collects under ``root`` (its default ``python_files``)."""
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts
                  and (p.name.startswith("test_") or p.name.endswith("_test.py")))


def shared_names(paths: list[Path]) -> dict[str, list[str]]:
    """File name -> the paths that have it, for every name held by more than one path."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        by_name[path.name].append(path.as_posix())
    return {name: sorted(held) for name, held in by_name.items() if len(held) > 1}


def test_the_check_finds_a_shared_name() -> None:
    paths = [Path("tests/a/test_x.py"), Path("tests/b/test_x.py"), Path("tests/test_y.py")]
    assert shared_names(paths) == {"test_x.py": ["tests/a/test_x.py", "tests/b/test_x.py"]}


def test_no_two_test_files_share_a_name() -> None:
    found = collected_files()
    assert len(found) > 20 and Path(__file__).resolve() in found
    shared = shared_names([p.relative_to(TESTS.parent) for p in found])
    assert not shared, f"test files with the same name (rename one): {shared}"


def test_each_test_folder_names_a_part_of_the_package() -> None:
    for folder in sorted({p.parent for p in collected_files()} - {TESTS}):
        top = folder.relative_to(TESTS).parts[0]
        assert top in CROSS_CUTTING or (PACKAGE / top).is_dir() or (PACKAGE / f"{top}.py").is_file(), (
            f"tests/{top}/ mirrors nothing in fairspec/ (a package or a module of that name)")
