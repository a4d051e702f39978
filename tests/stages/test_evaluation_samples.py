"""``evaluation.samples: k``: k sampled decodes per question, seeded per question and sample;
mean accuracy, majority vote and pass@k, and base against tuned on per-question rates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from katan_runs import compile_run

from fairspec.answering import combine_samples, sample_seed, sample_stats
from fairspec.artifacts import read_jsonl
from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError
from fairspec.report import significance
from fairspec.run.executor import run_stage

REPO = Path(__file__).resolve().parents[2]


def answer(index: int, prediction, correct: bool, *, valid: bool = True) -> dict:
    return {"index": index, "fields": {}, "gold": 4, "gold_text": "4", "output": f"{prediction}",
            "prediction": prediction if valid else None, "correct": correct, "valid": valid,
            "finish_reason": "stop", "prompt_tokens": 3, "output_tokens": 2}


def test_majority_vote_counts_equal_numbers_as_one_answer_and_breaks_ties_by_the_first():
    passes = [
        [answer(0, 4, True), answer(1, 7, False), answer(2, None, False, valid=False)],
        [answer(0, 5, False), answer(1, 4.0, True), answer(2, None, False, valid=False)],
        [answer(0, 4.0, True), answer(1, 9, False), answer(2, 4, True)],
    ]
    q0, q1, q2 = combine_samples(passes)
    assert (q0["majority"], q0["majority_correct"], q0["correct_count"]) == (4, True, 2)
    # 7, 4.0 and 9 once each: the tie goes to the first sample's answer
    assert (q1["majority"], q1["majority_correct"], q1["any_correct"]) == (7, False, True)
    # two samples state nothing: the one that does is the majority
    assert (q2["majority"], q2["majority_correct"]) == (4, True)
    # the paper's one sampled answer stays the record's own
    assert (q0["prediction"], q0["correct"], len(q0["samples"])) == (4, True, 3)
    stats = sample_stats([q0, q1, q2])
    assert stats["k"] == 3 and stats["mean_accuracy"] == pytest.approx(4 / 9)
    assert stats["per_sample_accuracy"] == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    assert (stats["majority_correct"], stats["pass_correct"]) == (2, 3)
    assert stats["correct_counts"] == [[0, 2], [1, 1], [2, 1]]
    with pytest.raises(ValueError, match="same rows"):
        combine_samples([[answer(0, 4, True)], [answer(1, 4, True)]])
    assert combine_samples([passes[0]]) == passes[0]  # one sample: the records as they are


def test_samples_are_seeded_apart_and_sample_zero_is_the_one_pass():
    assert sample_seed(42, 0) == 42
    seeds = {sample_seed(42, s) + row for s in range(4) for row in range(10_000)}
    assert len(seeds) == 4 * 10_000  # no two (sample, row) share a seed


def test_paired_rates_agree_with_a_paired_t_test():
    from scipy import stats

    before = {i: r for i, r in enumerate([0, 0.2, 0.4, 0.4, 1.0, 0.6, 0.0, 0.2])}
    after = {i: r for i, r in enumerate([0.2, 0.6, 0.4, 0.8, 1.0, 0.8, 0.4, 0.2])}
    found = significance.paired_rates(before, after)
    expected = stats.ttest_rel(list(after.values()), list(before.values()))
    assert found["p_value"] == pytest.approx(expected.pvalue)
    assert found["mean_difference"] == pytest.approx(0.2)
    low, high = found["diff_ci95"]
    assert low < 0.2 < high and found["n"] == 8
    same = significance.paired_rates(before, dict(before))
    assert (same["p_value"], same["diff_ci95"]) == (1.0, [0.0, 0.0])
    assert significance.paired_rates(before, {0: 1.0}) is None  # other questions
    text = significance.rates_headline({"mean_accuracy": 0.35, "k": 5},
                                       {"mean_accuracy": 0.55, "k": 5}, found)
    assert text.startswith("Gain from FAIR tuning: mean accuracy over 5 samples 35.00% -> 55.00%")
    flat = significance.rates_headline({"mean_accuracy": 0.35, "k": 5},
                                       {"mean_accuracy": 0.35, "k": 5}, same)
    assert flat.startswith("No evidence of a change")
    assert significance.mean_interval([0.0, 1.0]) == (0.0, 1.0)  # clipped to [0, 1]


BUILTIN = "builtin:smollm2-135m-instruct"
SPEC = """\
fairspec: 1
name: samples
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini, limit: {{train: 3, test: 4}}}}
  fields: {{question: question_concat, answer: Answer}}
student:
  model: {model}
  exam: {{engine: hf, max_new_tokens: 16, temperature: 1.0, batch_size: 4}}
  hardware: {{device: cpu, dtype: fp32}}
teachers: [{{name: t, provider: hf, model: builtin:smollm2-135m-instruct}}]
review: {{enabled: false}}
evaluation: {{decoding: {decoding}, samples: {samples}}}
"""


def test_greedy_samples_are_refused_at_their_line():
    with pytest.raises(SpecError) as found:
        load_spec_text(SPEC.format(decoding="greedy", samples=3, model=BUILTIN), base_dir=REPO)
    assert any(p.path == "evaluation.samples" and "greedy" in p.message
               for p in found.value.problems)


@pytest.mark.slow
def test_k_samples_per_question_from_the_stage(tmp_path, small_student):
    one = compile_run(SPEC.format(decoding="sample", samples=1, model=small_student), REPO,
                      run_dir=tmp_path / "one").run
    three = compile_run(SPEC.format(decoding="sample", samples=3, model=small_student), REPO,
                        run_dir=tmp_path / "three").run
    assert one.stage("evaluate").fingerprint != three.stage("evaluate").fingerprint
    assert "samples" not in one.stage("evaluate").identity  # samples: 1 keeps its fingerprint
    cache = tmp_path / "cache"
    for run in (one, three):
        shutil.copytree(small_student, Path(run.run_dir) / "train" / "model")
    single = run_stage(one, "evaluate", base_dir=REPO, cache_dir=cache)
    metrics = run_stage(three, "evaluate", base_dir=REPO, cache_dir=cache)
    folder = Path(three.run_dir) / "evaluate"
    rows = list(read_jsonl(folder / "predictions-tuned.jsonl"))
    first = list(read_jsonl(Path(one.run_dir) / "evaluate" / "predictions-tuned.jsonl"))
    assert len(rows) == 4 and all(len(r["samples"]) == 3 for r in rows)
    # sample 0 is the one pass of samples: 1 (same seeds); the others are other draws
    assert [r["output"] for r in rows] == [r["output"] for r in first]
    assert [r["samples"][0]["output"] for r in rows] == [r["output"] for r in first]
    assert any(r["samples"][1]["output"] != r["samples"][0]["output"] for r in rows)
    # the base's sample 0 came from the cache the one-sample run wrote; samples 1, 2 beside it
    cached = sorted(p.name for p in (cache / "evaluate-base").glob("*.jsonl"))
    assert len(cached) == 3 and sum(".sample-" in name for name in cached) == 2
    for label in ("base", "tuned"):
        summary = metrics[label]["samples"]
        assert summary["k"] == 3 and len(summary["per_sample_accuracy"]) == 3
        counts = {i: c for i, c in summary["correct_counts"]}
        assert summary["mean_accuracy"] == pytest.approx(sum(counts.values()) / 12)
        assert summary["pass_correct"] == sum(r["any_correct"] for r in
                                              read_jsonl(folder / f"predictions-{label}.jsonl"))
    assert metrics["base"]["correct"] == single["base"]["correct"]
    # same weights, same seeds: base and tuned answer alike, so the rates do not differ
    assert metrics["paired_rates"]["mean_difference"] == 0 and metrics["paired_rates"]["p_value"] == 1.0
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["statistics"]["samples"]["paired_test"].startswith("paired t-test")
    assert significance.evaluation_headline(saved).startswith(
        "No evidence of a change from FAIR tuning: mean accuracy over 3 samples")


def test_the_report_shows_mean_majority_and_pass_at_k(tmp_path):
    from run_folders import write

    from fairspec.report import write_report

    def summary(counts: list[int], majority: int, passed: int) -> dict:
        return {"k": 5, "mean_accuracy": sum(counts) / 50, "per_sample_accuracy": [0.2, 0.4],
                "majority_correct": majority, "majority_accuracy": majority / 10,
                "pass_correct": passed, "pass_at_k": passed / 10,
                "correct_counts": [[i, c] for i, c in enumerate(counts) if c]}

    base_counts, tuned_counts = [0, 1, 2, 0, 0, 1, 0, 0, 3, 0], [5, 4, 5, 3, 4, 5, 2, 5, 5, 4]
    metrics = {"split": "test"}
    rates = {}
    for label, counts, majority, passed in (("base", base_counts, 1, 4), ("tuned", tuned_counts, 10, 10)):
        s = summary(counts, majority, passed)
        rates[label] = significance.rates(s["correct_counts"], range(10), 5)
        s.update(significance.sample_fields(s, list(rates[label].values())))
        metrics[label] = {"total": 10, "correct": majority, "invalid": 0, "accuracy": majority / 10,
                          "samples": s}
    metrics["paired_rates"] = significance.paired_rates(rates["base"], rates["tuned"])
    run = tmp_path / "run"
    write(run / "run.json", {"name": "run", "spec": "s", "variant": None, "overrides": {}})
    write(run / "exam" / "stats.json", {"total": 10, "wrong": 5, "invalid": 0, "truncated": 0})
    write(run / "evaluate" / "metrics.json", metrics)
    write_report(run)
    text = (run / "report" / "report.md").read_text()
    assert "| tuned | 5 | 84.00% (" in text and "| 100.00% (" in text  # mean; majority
    assert "| base | 5 | 14.00% (" in text
    assert "Gain from FAIR tuning: mean accuracy over 5 samples 14.00% -> 84.00% on 10 questions" in text
