"""Tests for fairspec.tasks.kinds: the one registry of task kinds, and tasks/ below the spec."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from fairspec.resources import resource_root
from fairspec.tasks import ANSWER_KINDS, TASK_KINDS, DatasetSource, TaskKindInfo, task_kind
from fairspec.tasks.kinds import (
    COMMON_FIELDS,
    default_extractor,
    default_prompt,
    default_training_template,
    extractors_summary,
    fields_summary,
)

TASKS_PACKAGE = Path(__file__).resolve().parents[2] / "fairspec" / "tasks"


def test_the_registry_holds_the_three_kinds_in_order() -> None:
    assert tuple(TASK_KINDS) == ("math", "boolean", "multiple_choice")
    assert {name: kind.extractor for name, kind in TASK_KINDS.items()} == {
        "math": "number", "boolean": "boolean", "multiple_choice": "choice"}
    assert all(kind.name == name for name, kind in TASK_KINDS.items())
    assert all(kind.extractor in ANSWER_KINDS for kind in TASK_KINDS.values())


def test_required_and_optional_fields() -> None:
    assert COMMON_FIELDS == ("question", "answer")
    assert task_kind("math").required_fields == ("question", "answer")
    assert task_kind("boolean").required_fields == ("question", "answer")
    assert task_kind("multiple_choice").required_fields == ("question", "answer", "options")
    assert dict(task_kind("multiple_choice").optional_fields) == {
        "context": "the passage the question is about"}
    assert fields_summary() == "question and answer (and options for multiple_choice)"
    assert extractors_summary() == "number (math), boolean (boolean), choice (multiple_choice)"


def test_unknown_kind_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"unknown task kind 'maths'; expected one of math, "
                                         r"boolean, multiple_choice"):
        task_kind("maths")
    with pytest.raises(ValueError, match="unknown task kind"):
        default_extractor("number")
    with pytest.raises(ValueError, match="unknown extractor 'numeric'"):
        TaskKindInfo(name="x", extractor="numeric", prompt_folder="math")


def test_entries_are_frozen_and_hashable() -> None:
    kind = task_kind("multiple_choice")
    with pytest.raises(dataclasses.FrozenInstanceError):
        kind.extractor = "regex"  # type: ignore[misc]
    with pytest.raises(TypeError):
        kind.field_chars["options"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        TASK_KINDS["new"] = kind  # type: ignore[index]
    assert len({kind, task_kind("multiple_choice"), task_kind("math")}) == 2


@pytest.mark.parametrize("name", list(TASK_KINDS))
def test_every_kind_has_its_builtin_prompts(name: str) -> None:
    kind = task_kind(name)
    root = resource_root()
    assert (root / "prompts" / kind.prompt_folder / "exam.j2").is_file()
    for role in ("exam", "rationale", "feedback", "review"):
        ref = default_prompt(role, name)
        assert ref == kind.default_prompt(role)
        assert (root / ref.removeprefix("builtin:")).is_file()
    for role in ("rationale", "feedback"):
        ref = default_training_template(role, name)
        assert ref == kind.default_training_template(role)
        assert (root / ref.removeprefix("builtin:")).is_file()
    assert kind.field_chars.get("question", 0) > 0


def test_prompt_defaults_are_the_papers() -> None:
    assert default_prompt("exam", "math") == "builtin:prompts/math/exam.j2"
    assert default_prompt("feedback", "math") == "builtin:prompts/feedback.j2"
    assert default_prompt("exam", "boolean") == "builtin:prompts/strategyqa/exam.j2"
    assert default_prompt("review", "multiple_choice") == "builtin:prompts/logiqa/review.j2"
    assert default_training_template("rationale", "boolean") == \
        "builtin:templates/strategyqa/rationale.j2"
    assert default_training_template("feedback", "math") == "builtin:templates/feedback.j2"


def test_gold_through_the_kind_uses_its_extractor_or_the_one_given() -> None:
    math, choice = task_kind("math"), task_kind("multiple_choice")
    assert math.parse_gold("#### 1,080") == 1080.0
    assert math.gold_display(145.0) == "145"
    assert math.parse_gold(" 42 ", extractor="regex") == "42"
    assert choice.parse_gold("c", ["x", "y", "z"]) == 2
    assert choice.gold_display(2, ["x", "y", "z"]) == "C. z"
    assert task_kind("boolean").gold_display(task_kind("boolean").parse_gold("False")) == "false"


def test_spec_language_task_kinds_come_from_the_registry() -> None:
    from fairspec.dsl.schema import Spec

    defs = Spec.model_json_schema()["$defs"]
    assert defs["Task"]["properties"]["kind"]["enum"] == list(TASK_KINDS)
    extractor = defs["Answer"]["properties"]["extractor"]["anyOf"][0]
    assert extractor["enum"] == list(ANSWER_KINDS)


def test_dataset_source_from_mapping() -> None:
    assert DatasetSource.from_mapping({"path": "data/"}) == DatasetSource(path="data/")
    source = DatasetSource.from_mapping(
        {"hf": "openai/gsm8k", "config": "main", "split": "train", "sha256": None})
    assert source == DatasetSource(hf="openai/gsm8k", config="main", revision=None, path=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        source.hf = "x"  # type: ignore[misc]


def _imported_modules(module: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            found.add("fairspec.tasks")  # a relative import stays in the package
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_tasks_imports_nothing_above_layer_one() -> None:
    above = ("fairspec.dsl", "fairspec.spec", "fairspec.plan", "fairspec.teachers",
             "fairspec.answering", "fairspec.report", "fairspec.stages", "fairspec.run",
             "fairspec.cli", "fairspec.progress_view")
    modules = sorted(TASKS_PACKAGE.rglob("*.py"))
    assert modules
    for module in modules:
        bad = sorted(name for name in _imported_modules(module)
                     if name == "fairspec" or name.startswith(above))
        assert not bad, f"{module.name} imports {bad}"
