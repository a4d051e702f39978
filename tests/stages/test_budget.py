"""The spending limit against a real HTTP server (llm-katan): no call is sent past it, a rerun
with the same limit sends nothing, a higher limit resumes and pays only for the missing calls."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from fairspec.artifacts import is_done, write_jsonl
from fairspec.dsl import load_spec_text
from fairspec.plan import Environment, compile_plan
from fairspec.run.executor import run_stage
from fairspec.store import CallStore
from fairspec.teachers.budget import Budget, BudgetReached

from .test_teach_review import REPO, requests_served

PRICE = "{input_per_mtok: 1000.0, output_per_mtok: 2000.0}"


def priced_run(tmp_path: Path, url: str):
    teachers = "\n".join(
        f"  - {{name: {n}, provider: openai, model: gpt-{n}, base_url: \"{url}\", api_key_env: KATAN_KEY,"
        f" concurrency: 2, price: {PRICE}}}" for n in ("a", "b", "c"))
    loaded = load_spec_text(f"""
fairspec: 1
name: budget-test
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini}}
  fields: {{question: question_concat, answer: Answer}}
student: {{model: builtin:smollm2-135m-instruct, hardware: {{device: cpu}}}}
generation: {{max_tokens: 64}}
teachers:
{teachers}
""", base_dir=tmp_path)
    run = replace(compile_plan(loaded, Environment()).runs[0], run_dir=str(tmp_path / "run"))
    rows = [json.loads(line) for line in
            (REPO / "fairspec/resources/data/svamp-mini/train.jsonl").read_text().splitlines()[:6]]
    write_jsonl(tmp_path / "run" / "exam" / "mistakes.jsonl", [
        {"index": i, "fields": {"question": r["question_concat"]}, "gold": r["Answer"],
         "gold_text": f"{r['Answer']:g}", "output": "The answer is 7.", "prediction": 7.0,
         "correct": False} for i, r in enumerate(rows)])
    return run


def test_budget_stops_before_the_limit_and_resumes_with_a_higher_one(tmp_path, katan, monkeypatch):
    monkeypatch.setenv("KATAN_KEY", "sk-test-not-a-real-key-000000")
    run = priced_run(tmp_path, katan.openai_url)
    folder = tmp_path / "run" / "teach"
    all_calls = 6 * 3 * 2
    start = requests_served(katan)
    with CallStore(tmp_path / "calls.sqlite") as store:
        # what the whole stage costs, measured on a throwaway store
        probe_run = replace(run, run_dir=str(tmp_path / "probe"))
        shutil.copytree(tmp_path / "run" / "exam", tmp_path / "probe" / "exam")
        with CallStore(tmp_path / "probe.sqlite") as probe:
            full = run_stage(probe_run, "teach", base_dir=tmp_path, store=probe)
        total_usd = full["usd"]
        start = requests_served(katan)
        limit = total_usd / 2
        first = Budget(limit)
        with pytest.raises(BudgetReached, match="budget reached"):
            run_stage(run, "teach", base_dir=tmp_path, store=store, budget=first)
        paid = store.count()
        assert 0 < paid < all_calls
        assert requests_served(katan) - start == paid  # nothing was sent past the stop
        assert first.spent_usd <= limit and first.reserved_usd == pytest.approx(0)
        assert not is_done(folder, run.stage("teach").fingerprint)
        # the same limit again: the stored calls already use it up, so nothing new is sent
        again = Budget(limit)
        with pytest.raises(BudgetReached):
            run_stage(run, "teach", base_dir=tmp_path, store=store, budget=again)
        assert again.spent_usd == pytest.approx(first.spent_usd)
        assert requests_served(katan) - start == paid
        # a higher limit resumes: only the missing calls are paid
        higher = Budget(total_usd * 1.01)
        done = run_stage(run, "teach", base_dir=tmp_path, store=store, budget=higher)
    assert done["calls_made"] == all_calls - paid
    assert requests_served(katan) - start == all_calls
    assert higher.spent_usd == pytest.approx(total_usd)
    assert higher.paid_now_usd == pytest.approx(total_usd - first.spent_usd)
    assert is_done(folder, run.stage("teach").fingerprint)


def test_budget_needs_a_price_for_every_paid_teacher(tmp_path):
    from fairspec.errors import SpecError

    with pytest.raises(SpecError, match="budget.max_usd is set but this teacher has no price"):
        load_spec_text("""
fairspec: 1
name: no-price
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini}
  fields: {question: question_concat, answer: Answer}
student: {model: builtin:smollm2-135m-instruct}
teachers:
  - {name: a, provider: openai, model: gpt-4o, api_key_env: OPENAI_API_KEY}
budget: {max_usd: 5}
""", base_dir=tmp_path)
