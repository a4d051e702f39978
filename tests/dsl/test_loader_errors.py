"""Malformed specs: each problem is reported at its line with its field path, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fairspec.dsl import load_spec
from fairspec.errors import SpecError

BASE = textwrap.dedent("""\
    fairspec: 1
    name: test-spec
    description: a spec the tests break one key at a time
    seed: 1
    task:
      kind: math
      dataset:
        hf: openai/gsm8k
        config: main
      fields:
        question: question
        answer: answer
    student:
      model: Qwen/Qwen2.5-1.5B-Instruct
      hardware:
        gpus: 2
        tensor_parallel: 1
    teachers:
      - name: gpt
        provider: openai
        model: gpt-3.5-turbo
        api_key_env: OPENAI_API_KEY
      - name: gemini
        provider: gemini
        model: gemini-1.0-pro
        api_key_env: GEMINI_API_KEY
    review:
      threshold: 4
    training:
      alpha: 0.5
    variants:
      - name: no-review
        set: {review.enabled: false}
    sweep:
      training.alpha: [0, 1]
    """)
MARK = "#!"


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path):
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.problems


def mutate(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def marked_line(text: str) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if MARK in line]
    assert len(lines) == 1, "each case marks exactly one line"
    return lines[0]


def test_base_spec_is_valid(tmp_path):
    loaded = load_spec(write_spec(tmp_path, BASE))
    assert loaded.spec.name == "test-spec"
    assert sorted(loaded.variants) == ["alpha-0", "alpha-1", "no-review"]


# (case id, text, expected field path, words the message must contain, where the column is:
# the text on the marked line at which the offending key or value starts)
CASES = [
    ("name-pattern", mutate("name: test-spec", "name: Test Spec  #!"), "name", "not a valid name",
     "Test Spec"),
    ("version", mutate("fairspec: 1", "fairspec: 2  #!"), "fairspec", "not allowed", "2"),
    ("task-kind-enum", mutate("kind: math", "kind: mathh  #!"), "task.kind", "not allowed", "mathh"),
    ("unknown-top-key", BASE + "outputdir: runs  #!\n", "outputdir", "unknown key", "outputdir"),
    ("unknown-nested-key", mutate("  threshold: 4", "  treshold: 4  #!"), "review.treshold",
     "unknown key", "treshold"),
    ("threshold-outside-range", mutate("threshold: 4", "threshold: 7  #!"), "review.threshold",
     "outside score_range", "7"),
    ("score-range-unordered",
     mutate("  threshold: 4", "  threshold: 4\n  score_range: [5, 1]  #!"), "review.score_range",
     "low < high", "[5, 1]"),
    ("accept-enum", mutate("  threshold: 4", "  threshold: 4\n  accept: '=>'  #!"),
     "review.accept", "not allowed", "'=>'"),
    ("aggregate-enum", mutate("  threshold: 4", "  threshold: 4\n  aggregate: avg  #!"),
     "review.aggregate", "not allowed", "avg"),
    ("min-valid-scores-too-many",
     mutate("  threshold: 4", "  threshold: 4\n  min_valid_scores: 2  #!"),
     "review.min_valid_scores", "reviewer", "2"),
    ("duplicate-teacher-name", mutate("  - name: gemini", "  - name: gpt  #!"),
     "teachers[1].name", "duplicate teacher name", "gpt"),
    ("provider-enum", mutate("    provider: gemini", "    provider: mistral  #!"),
     "teachers[1].provider", "not allowed", "mistral"),
    ("tensor-parallel-over-gpus", mutate("tensor_parallel: 1", "tensor_parallel: 4  #!"),
     "student.hardware.tensor_parallel", "needs 4 GPUs, and gpus is 2", "4"),
    ("data-parallel-over-gpus",
     mutate("tensor_parallel: 1", "tensor_parallel: 1\n    data_parallel: 3  #!"),
     "student.hardware.data_parallel", "x data_parallel 3 needs 3 GPUs", "3"),
    ("strategy-needs-gpus",
     mutate("    gpus: 2\n", "    gpus: 1\n    strategy: ddp  #!\n"),
     "student.hardware.strategy", "needs more than one training process", "ddp"),
    ("processes-need-a-strategy",
     mutate("    gpus: 2\n", "    gpus: 2\n    processes: 2  #!\n"),
     "student.hardware.processes", "needs a strategy", "2"),
    ("nodes-need-a-strategy",
     mutate("    gpus: 2\n", "    gpus: 2\n    nodes: 2  #!\n"),
     "student.hardware.nodes", "needs a strategy", "2"),
    ("cpu-fsdp",
     mutate("    gpus: 2\n", "    gpus: 1\n    device: cpu\n    processes: 2\n    strategy: fsdp  #!\n"),
     "student.hardware.strategy", "on cpu, processes train with ddp", "fsdp"),
    ("vllm-option-on-hf-exam",
     mutate("  hardware:\n", "  exam:\n    engine: hf\n    vllm: {max_num_seqs: 8}  #!\n  hardware:\n"),
     "student.exam.vllm.max_num_seqs", "is a vLLM option", "8"),
    ("dataset-hf-and-path", mutate("  dataset:\n", "  dataset:  #!\n    path: data/\n"),
     "task.dataset", "exactly one", "dataset"),
    ("alpha-range", mutate("  alpha: 0.5", "  alpha: 1.5  #!"), "training.alpha", "less than", "1.5"),
    ("seed-type", mutate("seed: 1", "seed: abc  #!"), "seed", "integer", "abc"),
    ("student-model-missing",
     mutate("student:\n  model: Qwen/Qwen2.5-1.5B-Instruct\n", "student:  #!\n"), "student",
     "'model' is missing", "student"),
    ("student-model-empty", mutate("model: Qwen/Qwen2.5-1.5B-Instruct", 'model: ""  #!'),
     "student.model", "model is empty", '""'),
    ("student-model-blank", mutate("model: Qwen/Qwen2.5-1.5B-Instruct", "model: '   '  #!"),
     "student.model", "model is empty", "'   '"),
    ("teacher-model-empty", mutate("model: gemini-1.0-pro", "model: ''  #!"),
     "teachers[1].model", "model is empty", "''"),
    ("teacher-model-blank", mutate("    model: gpt-3.5-turbo", '    model: " "  #!'),
     "teachers[0].model", "model is empty", '" "'),
    ("regex-needs-pattern",
     mutate("    answer: answer\n", "    answer: answer\n  answer:  #!\n    extractor: regex\n"),
     "task.answer.pattern", "needs a pattern", "answer"),
    ("multiple-choice-needs-options",
     mutate("kind: math", "kind: multiple_choice").replace("  fields:\n", "  fields:  #!\n", 1),
     "task.fields", "options", "fields"),
    ("reserved-field-name",
     mutate("    answer: answer\n", "    answer: answer\n    rationale: steps  #!\n"),
     "task.fields.rationale", "fairspec provides", "steps"),
    ("base-url-on-hf-teacher",
     mutate("    provider: gemini\n    model: gemini-1.0-pro\n    api_key_env: GEMINI_API_KEY\n",
            "    provider: hf\n    model: some/model\n    base_url: http://x  #!\n"),
     "teachers[1].base_url", "does not apply", "http://x"),
    ("unknown-builtin-model",
     mutate("model: Qwen/Qwen2.5-1.5B-Instruct", "model: builtin:gpt-9  #!"),
     "student.model", "unknown builtin model", "builtin:gpt-9"),
    ("evaluation-split-unknown", BASE + "evaluation:\n  split: dev  #!\n", "evaluation.split",
     "neither", "dev"),
    ("literal-secret-in-api-key-env",
     mutate("api_key_env: OPENAI_API_KEY", "api_key_env: sk-proj-abcdefghijklmnopqrstuvwx  #!"),
     "teachers[0].api_key_env", "literal secret", "sk-proj-"),
    ("literal-secret-anywhere",
     mutate("description: a spec", "description: AIzaSyD-abcdefghijklmnopqrstuvwxyz012345 a spec  #!"),
     "description", "literal secret", "AIzaSyD-"),
    ("api-key-key", mutate("    api_key_env: OPENAI_API_KEY", "    api_key: OPENAI_API_KEY  #!"),
     "teachers[0].api_key", "unknown key", "api_key"),
    ("variant-unknown-key", mutate("set: {review.enabled: false}", "set: {review.enabeld: false}  #!"),
     "variants[0].set.review.enabeld", "not a key of the spec", "review.enabeld"),
    ("variant-unknown-teacher",
     mutate("set: {review.enabled: false}", "set: {teachers: [claude]}  #!"),
     "variants[0].set.teachers", "unknown teacher", "[claude]"),
    ("variant-bad-value", mutate("set: {review.enabled: false}", "set: {review.threshold: 9}  #!"),
     "variants[0].set.review.threshold", "in variant 'no-review'", "9"),
    ("variant-breaks-cross-rule",
     mutate("set: {review.enabled: false}", "set: {teachers: [gpt]}  #!"),
     "variants[0].set", "review.exclude_self: peer review with exclude_self needs at least 2",
     "{teachers"),
    ("variant-fixed-key", mutate("set: {review.enabled: false}", "set: {name: other}  #!"),
     "variants[0].set.name", "cannot change", "name"),
    ("variant-duplicate-name",
     BASE.replace("    sweep:", "").replace(
         "    set: {review.enabled: false}\n",
         "    set: {review.enabled: false}\n  - name: no-review  #!\n    set: {training.alpha: 1}\n"),
     "variants[1].name", "used twice", "no-review"),
    ("sweep-unknown-key", mutate("  training.alpha: [0, 1]", "  training.alpah: [0, 1]  #!"),
     "sweep.training.alpah", "not a key of the spec", "training.alpah"),
    ("sweep-bad-value", mutate("  training.alpha: [0, 1]", "  training.alpha: [0, 2]  #!"),
     "sweep.training.alpha", "in sweep 'alpha-2'", "[0, 2]"),
    ("duplicate-key", mutate("seed: 1", "seed: 1\nseed: 2  #!"), "seed", "duplicate key", "seed"),
    ("python-tag", mutate("seed: 1", "seed: !!python/object/apply:os.system [echo]  #!"), "seed",
     "not allowed", "!!python"),
    ("yaml-syntax", mutate("  alpha: 0.5", "  alpha: @0.5  #!"), "", "YAML syntax error", "@"),
    ("gpus-type", mutate("gpus: 2", "gpus: two  #!"), "student.hardware.gpus", "integer", "two"),
    ("limit-positive", mutate("    config: main", "    config: main\n    limit: {train: 0}  #!"),
     "task.dataset.limit.train", "greater than", "0"),
]


def case_id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


def case_params(case):
    """The case without its id, as a pytest.param (which keeps a case's marks)."""
    if hasattr(case, "values"):
        return pytest.param(*case.values[1:], marks=case.marks, id=case.values[0])
    return pytest.param(*case[1:], id=case[0])


def expected_col(text: str, at: str) -> int:
    """The 1-based column of ``at`` on the marked line (it must occur there once)."""
    line = text.splitlines()[marked_line(text) - 1]
    assert line.count(at) == 1, f"{at!r} must occur once on {line!r}"
    return line.index(at) + 1


@pytest.mark.parametrize("text,path,words,at", [case_params(c) for c in CASES])
def test_malformed_spec_reports_line_column_and_path(tmp_path, text, path, words, at):
    problems = problems_of(write_spec(tmp_path, text))
    matching = [p for p in problems if p.path == path and words in p.message]
    assert matching, "\n".join(p.format() for p in problems)
    assert (matching[0].line, matching[0].col) == (marked_line(text), expected_col(text, at)), \
        matching[0].format()
    assert matching[0].file.endswith("spec.yaml")
    assert matching[0].format().startswith(
        f"{matching[0].file}:{marked_line(text)}:{expected_col(text, at)}:")


def test_every_case_marks_its_line_and_has_a_unique_id():
    ids = [case_id(c) for c in CASES]
    assert len(ids) == len(set(ids))
    for case in CASES:
        text, _, _, at = case.values[1:] if hasattr(case, "values") else case[1:]
        expected_col(text, at)  # one marked line, holding ``at`` once


def test_every_problem_is_reported_at_once(tmp_path):
    text = (BASE.replace("kind: math", "kind: mathh")
            .replace("threshold: 4", "threshold: 9")
            .replace("tensor_parallel: 1", "tensor_parallel: 8")
            .replace("  alpha: 0.5", "  alpah: 0.5"))
    paths = {p.path for p in problems_of(write_spec(tmp_path, text))}
    assert {"task.kind", "review.threshold", "student.hardware.tensor_parallel",
            "training.alpah"} <= paths


def test_every_duplicate_key_is_reported(tmp_path):
    text = BASE.replace("seed: 1", "seed: 1\nseed: 2").replace("  alpha: 0.5", "  alpha: 0.5\n  alpha: 0.6")
    paths = [p.path for p in problems_of(write_spec(tmp_path, text)) if "duplicate" in p.message]
    assert paths == ["seed", "training.alpha"]


def test_a_problem_repeated_by_sweep_points_is_reported_once(tmp_path):
    text = BASE.replace("  training.alpha: [0, 1]", "  training.alpah: [0, 1]")
    problems = problems_of(write_spec(tmp_path, text))
    assert [p.path for p in problems] == ["sweep.training.alpah"]


def test_typo_hint_names_the_nearest_key(tmp_path):
    text = BASE.replace("  alpha: 0.5", "  learning_rat: 0.1")
    (problem,) = problems_of(write_spec(tmp_path, text))
    assert problem.hint == "did you mean 'learning_rate'?"


def test_enum_hint_lists_allowed_values(tmp_path):
    (problem,) = problems_of(write_spec(tmp_path, BASE.replace("kind: math", "kind: maths")))
    assert "'math', 'boolean' or 'multiple_choice'" in problem.hint


def test_secret_value_never_appears_in_messages(tmp_path):
    secret = "sk-proj-THISISNOTAREALKEY1234567890"
    text = BASE.replace("api_key_env: OPENAI_API_KEY", f"api_key_env: {secret}")
    problems = problems_of(write_spec(tmp_path, text))
    assert problems
    assert all(secret not in p.format() for p in problems)


def test_missing_template_file_points_at_the_spec_line(tmp_path):
    text = BASE + "prompts:\n  exam: prompts/nope.j2\n"
    (problem,) = problems_of(write_spec(tmp_path, text))
    assert problem.path == "prompts.exam"
    assert problem.line == text.splitlines().index("  exam: prompts/nope.j2") + 1
    assert "template file not found" in problem.message


@pytest.mark.parametrize("make, words", [
    (lambda path: path.write_bytes(b"Q: {{ question }} \xff\xfe\n"), "can't decode byte 0xff"),
    (lambda path: path.mkdir(), "Is a directory"),
], ids=["not-utf8", "a-folder"])
def test_unreadable_template_is_a_problem_at_its_spec_line(tmp_path, make, words):
    make(tmp_path / "exam.j2")
    text = BASE + "prompts:\n  exam: exam.j2\n"
    (problem,) = problems_of(write_spec(tmp_path, text))
    assert problem.path == "prompts.exam" and problem.line == len(text.splitlines())
    assert "cannot read template" in problem.message and "exam.j2" in problem.message
    assert words in problem.message


def test_unknown_template_variable_names_file_variable_and_line(tmp_path):
    (tmp_path / "feedback.j2").write_text("Q: {{ question }}\nA: {{ studnet_answer }}\n")
    text = BASE + "prompts:\n  feedback: feedback.j2\n"
    (problem,) = problems_of(write_spec(tmp_path, text))
    assert problem.path == "prompts.feedback"
    assert problem.line == len(text.splitlines())
    assert "feedback.j2" in problem.message and "'studnet_answer'" in problem.message
    assert "student_answer" in problem.hint


def test_review_template_may_use_rationale_but_exam_may_not(tmp_path):
    (tmp_path / "t.j2").write_text("{{ question }} {{ rationale }} {{ gold_answer }}")
    ok = BASE + "prompts:\n  review: t.j2\n"
    load_spec(write_spec(tmp_path, ok))
    bad = BASE + "prompts:\n  exam: t.j2\n"
    messages = [p.message for p in problems_of(write_spec(tmp_path, bad))]
    assert any("'rationale'" in m for m in messages) and any("'gold_answer'" in m for m in messages)


def test_local_dataset_folder_needs_split_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n')
    text = BASE.replace("    hf: openai/gsm8k\n    config: main\n", "    path: data\n")
    (problem,) = problems_of(write_spec(tmp_path, text))
    assert problem.path == "task.dataset.test_split"
    assert "no file for split 'test'" in problem.message


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("a: 1\n---\nb: 2\n", "one YAML document"),
    ("- just\n- a list\n", "mapping"),
])
def test_not_a_spec_document(tmp_path, text, message):
    problems = problems_of(write_spec(tmp_path, text))
    assert any(message in p.message for p in problems)


def test_unreadable_file_is_a_problem_not_a_traceback(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    (problem,) = problems_of(path)
    assert "UTF-8" in problem.message
    (missing,) = problems_of(tmp_path / "absent.yaml")
    assert missing.message == "file not found"


def test_rules_still_run_when_a_required_key_is_invalid(tmp_path):
    text = BASE.replace("name: test-spec", "name: Bad Name").replace(
        "tensor_parallel: 1", "tensor_parallel: 8")
    paths = {p.path for p in problems_of(write_spec(tmp_path, text))}
    assert paths == {"name", "student.hardware.tensor_parallel"}
