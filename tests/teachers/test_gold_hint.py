"""The gold answer is a hint in P_fb and P_pr, where the paper puts it (Figures 3 and 4).

Each builtin feedback and review prompt is rendered (by ``fairspec.prompting``, as the
teach and review stages do) for a real row read by ``load_rows``: the line before the
teacher's turn must read ``Hint: The correct answer should be <gold>.``, right after the
student's answer (P_fb) or the rationale (P_pr). P_rt gets no hint: it would hand the
teacher the answer it is asked to reason towards.

A check that only looked for the gold text would miss a dropped hint on LogiQA, whose
gold (``C. <option text>``) is also one of the listed options; the last tests drop the hint
line from a copy of each template and show that :func:`assert_gold_hint` catches it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fairspec.prompting import review_prompt, teach_prompts
from fairspec.resources import resolve_path
from fairspec.tasks import DatasetSource, Row, load_rows, task_kind

REPO = Path(__file__).resolve().parents[2]
STUDENT_ANSWER = "Let's think step by step. 2 + 2 = 5.\nAnswer: 5"
RATIONALE = "Step 1: read the question.\nStep 2: work it out.\nAnswer: 42"
#: the teacher's turn that closes each prompt (Figures 3 and 4)
TURN = {"feedback": "Teacher's feedback:", "review": "Teacher's score:"}
#: what the hint follows: the student's answer in P_fb, the rationale in P_pr
BEFORE = {"feedback": STUDENT_ANSWER, "review": RATIONALE}

# kind -> (dataset path, "shared" when it is under ../shared/data, fields)
SOURCES = {
    "math": ("builtin:data/svamp-mini", None, {"question": "question_concat", "answer": "Answer"}),
    "boolean": ("strategyqa/hf_ChilleD_split/train.json", "shared",
                {"question": "question", "answer": "answer"}),
    "multiple_choice": ("logiqa/hf_lucasmccabe_equivalent/train.jsonl", "shared",
                        {"question": "query", "context": "context", "options": "options",
                         "answer": "correct_option"}),
}


def real_row(kind: str, request: pytest.FixtureRequest) -> tuple[Row, dict]:
    """Train row 0 of the kind's benchmark, and the exam's mistake record of it."""
    path, base, fields = SOURCES[kind]
    base_dir = request.getfixturevalue("shared_data") if base == "shared" else REPO
    (row,) = load_rows(DatasetSource(path=path), fields, task_kind(kind).extractor, "train", 1,
                       base_dir).rows
    mistake = {"index": row.index, "fields": row.fields, "gold": row.gold,
               "gold_text": row.gold_text, "output": STUDENT_ANSWER, "prediction": None,
               "correct": False}
    return row, mistake


def builtin_template(kind: str, role: str) -> str:
    return resolve_path(task_kind(kind).default_prompt(role), REPO).read_text(encoding="utf-8")


def rendered(role: str, templates: dict[str, str], mistake: dict) -> str:
    if role == "review":
        return review_prompt(templates["review"], mistake, RATIONALE)
    return teach_prompts(templates, mistake)[role]


def assert_gold_hint(prompt: str, role: str, gold_text: str) -> None:
    """The hint is the prompt's next-to-last line, right after what it follows."""
    hint = f"Hint: The correct answer should be {gold_text}."
    assert prompt.endswith(f"{BEFORE[role]}\n{hint}\n{TURN[role]}"), prompt[-400:]
    assert prompt.count(hint) == 1


def kinds() -> list:
    return [pytest.param(kind, id=kind) for kind in SOURCES]


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("role", ["feedback", "review"])
def test_builtin_prompt_gives_the_gold_answer_as_a_hint(kind, role, request):
    row, mistake = real_row(kind, request)
    templates = {r: builtin_template(kind, r) for r in ("rationale", "feedback", "review")}
    prompt = rendered(role, templates, mistake)
    assert_gold_hint(prompt, role, row.gold_text)
    if kind == "multiple_choice":  # the hint names the option by letter and text
        assert re.fullmatch(r"[A-D]\. .+", row.gold_text) and row.gold_text.split(". ", 1)[1] in \
            row.fields["options"]


@pytest.mark.parametrize("kind", kinds())
def test_the_rationale_prompt_has_no_hint(kind, request):
    _, mistake = real_row(kind, request)
    templates = {r: builtin_template(kind, r) for r in ("rationale", "feedback")}
    prompt = teach_prompts(templates, mistake)["rationale"]
    assert "Hint" not in prompt and "correct answer should be" not in prompt
    assert STUDENT_ANSWER not in prompt


def without_hint(template: str) -> str:
    """The template with its gold-answer line removed."""
    kept = [line for line in template.splitlines(keepends=True) if "gold_answer" not in line]
    assert len(kept) == len(template.splitlines(keepends=True)) - 1, "one hint line"
    return "".join(kept)


def moved_hint(template: str) -> str:
    """The template with its gold-answer line moved to the top."""
    lines = template.splitlines(keepends=True)
    (hint,) = [line for line in lines if "gold_answer" in line]
    return hint + "".join(line for line in lines if line is not hint)


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("role", ["feedback", "review"])
@pytest.mark.parametrize("change", [without_hint, moved_hint], ids=["dropped", "moved"])
def test_a_template_without_the_hint_in_place_fails_the_check(kind, role, change, request):
    row, mistake = real_row(kind, request)
    templates = {r: builtin_template(kind, r) for r in ("rationale", "feedback", "review")}
    templates[role] = change(templates[role])
    prompt = rendered(role, templates, mistake)
    with pytest.raises(AssertionError):
        assert_gold_hint(prompt, role, row.gold_text)
    if kind == "multiple_choice" and change is without_hint:
        assert row.gold_text in prompt  # the listed option: "gold in prompt" would not see it


def test_an_empty_gold_text_fails_the_check(request):
    """A rendering that passed no gold answer (or an empty one) leaves the hint blank."""
    row, mistake = real_row("math", request)
    templates = {r: builtin_template("math", r) for r in ("rationale", "feedback", "review")}
    for role in ("feedback", "review"):
        prompt = rendered(role, templates, {**mistake, "gold_text": ""})
        with pytest.raises(AssertionError):
            assert_gold_hint(prompt, role, row.gold_text)
