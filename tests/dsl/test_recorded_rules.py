"""Validate checks recorded answers before anything runs: files exist, columns are in them
(placeholders filled for each teacher), and the options make sense together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairspec.dsl import load_spec
from fairspec.errors import SpecError

ROWS = [{"id": 0, "question": "q", "answer": "a", "pred": "1",
         "gpt_rationale": ["r", 4, 5], "gem_rationale": ["r", 3, 3],
         "gpt_feedback": "f", "gem_feedback": "f"}]
SPEC = """\
fairspec: 1
name: rec
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini}
  fields: {question: question_concat, answer: Answer}
student:
  model: builtin:smollm2-135m-instruct
  hardware: {device: cpu}
  exam:
    engine: recorded
    recorded: {path: rows.json, answer: answer, prediction: pred, only_mistakes: true}
teachers:
  - name: gpt
    provider: recorded
    model: gpt-3.5-turbo
    recorded: &files
      rationale: {path: rows.json, column: "{teacher}_rationale", item: 0}
      feedback: {path: rows.json, column: "{teacher}_feedback"}
      review: {path: rows.json, column: "{author}_rationale", item: reviewer_rank}
  - {name: gem, provider: recorded, model: gemini-1.0-pro, recorded: *files}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    return tmp_path


def problems(folder: Path, text: str) -> list:
    path = folder / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.problems


def only(found: list) -> tuple[int, str, str]:
    assert len(found) == 1, [p.format() for p in found]
    return found[0].line, found[0].path, found[0].message


def test_the_spec_validates(folder: Path) -> None:
    (folder / "spec.yaml").write_text(SPEC)
    loaded = load_spec(folder / "spec.yaml")
    assert loaded.spec.teachers[1].recorded.review.item == "reviewer_rank"


def test_a_column_not_in_the_file_is_reported_at_its_line(folder: Path) -> None:
    found = problems(folder, SPEC.replace('"{teacher}_feedback"', '"{teacher}_fb"'))
    # both teachers read the anchored block: each is reported, at the line that wrote it
    assert {(p.line, p.path) for p in found} == {(19, "teachers[0].recorded.feedback.column"),
                                                 (19, "teachers[1].recorded.feedback.column")}
    assert {p.message for p in found} == {"no column 'gpt_fb' in rows.json",
                                          "no column 'gem_fb' in rows.json"}
    line, path, message = only(problems(folder, SPEC.replace("answer: answer,", "answer: said,")))
    assert (line, path) == (12, "student.exam.recorded.answer") and "'said'" in message


def test_a_missing_file(folder: Path) -> None:
    line, path, message = only(problems(folder, SPEC.replace(
        "recorded: {path: rows.json, answer", "recorded: {path: nowhere.json, answer")))
    assert path == "student.exam.recorded.path" and "no such file" in message


@pytest.mark.parametrize(("change", "where", "words"), [
    (("engine: recorded\n    recorded: {path: rows.json, answer: answer, prediction: pred, "
      "only_mistakes: true}", "engine: recorded"), "student.exam.engine", "needs student.exam.recorded"),
    (("engine: recorded", "engine: hf"), "student.exam.recorded", "only with engine: recorded"),
    (("      feedback: {path: rows.json, column: \"{teacher}_feedback\"}\n", ""),
     "teachers[0].recorded", "no recorded feedback answers and no fallback"),
    (("item: 0}", "item: reviewer_rank}"), "teachers[0].recorded.rationale.item", "review only"),
    (("model: gpt-3.5-turbo\n", "model: gpt-3.5-turbo\n    base_url: http://127.0.0.1:9/v1\n"),
     "teachers[0].base_url", "fallback"),
    (('"{author}_rationale"', '"{who}_rationale"'), "teachers[0].recorded.review.column",
     "placeholders"),
])
def test_options_that_cannot_work_together(folder: Path, change, where: str, words: str) -> None:
    found = problems(folder, SPEC.replace(*change))
    assert any(p.path == where and words in p.message for p in found), [p.format() for p in found]


def test_a_recorded_reviewer_of_a_live_author_is_an_error(folder: Path) -> None:
    text = SPEC.replace("  - {name: gem, provider: recorded, model: gemini-1.0-pro, recorded: *files}\n",
                        "  - {name: gem, provider: openai, model: gpt-4o, api_key_env: OPENAI_API_KEY}\n")
    found = problems(folder, text)
    assert any(p.path == "teachers[0].recorded.review" and "gem writes live ones" in p.message
               for p in found), [p.format() for p in found]
