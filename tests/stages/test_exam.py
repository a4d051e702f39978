"""The exam stage with the real tiny model (hf engine, CPU) on real rows of each benchmark."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from katan_runs import compile_run

from fairspec.artifacts import is_done, read_jsonl
from fairspec.run.executor import run_stage

REPO = Path(__file__).resolve().parents[2]


def exam_run(tmp_path: Path, task: str, dataset: str, fields: str, base_dir: Path, limit: int = 3,
             extra: str = ""):
    text = textwrap.dedent(f"""\
        fairspec: 1
        name: exam-{task.replace('_', '-')}
        task:
          kind: {task}
          dataset: {{{dataset}, limit: {{train: {limit}, test: {limit}}}}}
          fields: {fields}
        student:
          model: builtin:smollm2-135m-instruct
          exam: {{engine: hf, max_new_tokens: 24, do_sample: false, batch_size: 4}}
          hardware: {{device: cpu, dtype: fp32}}
        teachers: [{{name: t, provider: hf, model: builtin:smollm2-135m-instruct}}]
        review: {{enabled: false}}
        """) + extra
    made = compile_run(text, base_dir, run_dir=tmp_path / "run")
    return made.loaded, made.run


CASES = {
    "gsm8k": ("math", "path: gsm8k/train.jsonl", "{question: question, answer: answer}"),
    "svamp": ("math", "path: svamp/hf_ChilleD_split/train.json",
              "{question: Question, context: Body, answer: Answer}"),
    "strategyqa": ("boolean", "path: strategyqa/hf_ChilleD_split/train.json",
                   "{question: question, answer: answer}"),
    "logiqa": ("multiple_choice", "path: logiqa/hf_lucasmccabe_equivalent/train.jsonl",
               "{question: query, context: context, options: options, answer: correct_option}"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_exam_on_real_rows_of_each_benchmark(tmp_path, shared_data, tiny_model, name):
    kind, dataset, fields = CASES[name]
    extra = ""
    if name == "svamp":  # Body and Question are two columns: a template that joins them
        (tmp_path / "exam.j2").write_text("{{ context }} {{ question }}\nEnd with: Answer: <number>")
        extra = f"prompts: {{exam: {tmp_path / 'exam.j2'}}}\n"
    loaded, run = exam_run(tmp_path, kind, dataset, fields, shared_data, extra=extra)
    stats = run_stage(run, "exam", base_dir=shared_data)
    records = list(read_jsonl(tmp_path / "run" / "exam" / "exam.jsonl"))
    assert [r["index"] for r in records] == [0, 1, 2]
    assert all(r["output"] and r["output_tokens"] > 0 for r in records)
    assert all(r["valid"] == (r["prediction"] is not None) for r in records)
    assert all(r["correct"] is False for r in records if not r["valid"])  # no answer is never right
    mistakes = list(read_jsonl(tmp_path / "run" / "exam" / "mistakes.jsonl"))
    # D_mistake (eq. 1) is exactly the exam's wrong rows, in order, each whole
    assert mistakes == [r for r in records if not r["correct"]]
    right = sum(r["correct"] for r in records)
    assert stats["total"] == 3 and stats["correct"] == right and stats["wrong"] == 3 - right
    assert stats["mistakes"] == len(mistakes) == 3 - right
    assert stats["invalid"] == sum(not r["valid"] for r in records)
    assert is_done(tmp_path / "run" / "exam", run.stage("exam").fingerprint)


@pytest.mark.slow
def test_exam_resumes_by_row_and_skips_when_done(tmp_path, tiny_model):
    loaded, run = exam_run(tmp_path, "math", "path: builtin:data/svamp-mini",
                           "{question: question_concat, answer: Answer}", REPO, limit=4)
    folder = tmp_path / "run" / "exam"
    run_stage(run, "exam", base_dir=REPO)
    first = (folder / "exam.jsonl").read_text().splitlines()
    assert len(first) == 4
    # a crash after two rows: the manifest is gone and the last line is half written
    (folder / "manifest.json").unlink()
    (folder / "exam.jsonl").write_text("\n".join(first[:2]) + "\n" + first[2][:10])
    stats = run_stage(run, "exam", base_dir=REPO)
    again = (folder / "exam.jsonl").read_text().splitlines()
    assert again == first  # greedy and seeded: the resumed exam writes the same rows
    records = [json.loads(line) for line in again]
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    mistakes = list(read_jsonl(folder / "mistakes.jsonl"))
    assert mistakes == [r for r in records if not r["correct"]]
    assert stats["total"] == 4 and stats["mistakes"] == len(mistakes)
    assert stats["correct"] == 4 - len(mistakes)
    # every row answered: a rerun reads them back and generates nothing (a marked output stays)
    records[3]["output"] = "kept from the earlier run"
    (folder / "exam.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run_stage(run, "exam", base_dir=REPO)
    assert [r["output"] for r in read_jsonl(folder / "exam.jsonl")] == [r["output"] for r in records]
    assert is_done(folder, run.stage("exam").fingerprint)
