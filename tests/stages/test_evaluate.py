"""The evaluate stage with the real tiny model (hf engine, CPU): base and tuned answers of the test
split, and the base answers cached for every run that shares them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from katan_runs import compile_run

from fairspec.artifacts import read_jsonl
from fairspec.run.executor import run_stage

REPO = Path(__file__).resolve().parents[2]
SPEC = """\
fairspec: 1
name: exam-math
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini, limit: {train: 3, test: 3}}
  fields: {question: question_concat, answer: Answer}
student:
  model: builtin:smollm2-135m-instruct
  exam: {engine: hf, max_new_tokens: 24, do_sample: false, batch_size: 4}
  hardware: {device: cpu, dtype: fp32}
teachers: [{name: t, provider: hf, model: builtin:smollm2-135m-instruct}]
review: {enabled: false}
evaluation: {decoding: greedy}
"""


@pytest.mark.slow
def test_evaluate_scores_base_and_tuned_and_shares_the_base_answers(tmp_path, tiny_model):
    run = compile_run(SPEC, REPO, run_dir=tmp_path / "run").run
    shutil.copytree(tiny_model, tmp_path / "run" / "train" / "model")  # "tuned" = the base weights
    metrics = run_stage(run, "evaluate", base_dir=REPO, cache_dir=tmp_path / "out" / "cache")
    assert metrics["base"]["total"] == metrics["tuned"]["total"] == 3
    assert metrics["gain"] == 0  # same weights, greedy: the same answers
    paired = metrics["paired"]  # paired by question: nothing gained or lost, p = 1
    assert (paired["n"], paired["gained"], paired["lost"], paired["p_value"]) == (3, 0, 0, 1.0)
    assert paired["diff_ci95"][0] < 0 < paired["diff_ci95"][1]
    assert metrics["base"]["ci95"] == metrics["tuned"]["ci95"] and metrics["questions"]["n"] == 3
    saved = json.loads((tmp_path / "run" / "evaluate" / "metrics.json").read_text())
    assert saved["tuned"]["correct_indices"] == metrics["tuned"]["correct_indices"]
    base = list(read_jsonl(tmp_path / "run" / "evaluate" / "predictions-base.jsonl"))
    tuned = list(read_jsonl(tmp_path / "run" / "evaluate" / "predictions-tuned.jsonl"))
    assert [r["output"] for r in base] == [r["output"] for r in tuned]
    first_test_row = json.loads((REPO / "fairspec/resources/data/svamp-mini/test.jsonl").read_text()
                                .splitlines()[0])
    assert base[0]["fields"]["question"] == first_test_row["question_concat"]  # the test split
    (cached,) = (tmp_path / "out" / "cache" / "evaluate-base").glob("*.jsonl")
    assert len(cached.read_text().splitlines()) == 3
