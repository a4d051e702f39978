"""The spending limit against a real HTTP server (llm-katan): no call is sent past it, a rerun
with the same limit sends nothing, a higher limit resumes and pays only for the missing calls."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
from katan_runs import requests_served, teacher_line

from fairspec.artifacts import is_done
from fairspec.run.executor import run_stage
from fairspec.store import CallStore
from fairspec.teachers.budget import Budget, BudgetReached

PRICE = "{input_per_mtok: 1000.0, output_per_mtok: 2000.0}"


def priced_run(katan_run, url: str):
    """Teachers a, b and c (OpenAI chat models: the output budget is max_tokens) on ``url``
    at a high price; 6 svamp-mini mistakes."""
    teachers = "".join(teacher_line(name, url, model=f"gpt-4o-{name}", concurrency=2, price=PRICE)
                       for name in ("a", "b", "c"))
    made = katan_run(teachers, name="budget-test", generation="{max_tokens: 64}", mistakes=6)
    return made.run


def test_budget_stops_before_the_limit_and_resumes_with_a_higher_one(tmp_path, katan, katan_key,
                                                                     katan_run):
    run = priced_run(katan_run, katan.openai_url)
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
        # a limit the stored calls already use up: nothing new is sent (with the same limit
        # a rerun may send a call more: the stop reserved the calls in flight at their
        # bounds, and they landed cheaper)
        again = Budget(first.spent_usd)
        with pytest.raises(BudgetReached):
            run_stage(run, "teach", base_dir=tmp_path, store=store, budget=again)
        assert again.spent_usd == pytest.approx(first.spent_usd)
        assert requests_served(katan) - start == paid
        # a higher limit resumes: only the missing calls are paid (room above the real cost:
        # a call is reserved at its prompt's bytes and its whole reply budget)
        higher = Budget(total_usd * 2)
        done = run_stage(run, "teach", base_dir=tmp_path, store=store, budget=higher)
    assert done["calls_made"] == all_calls - paid
    assert requests_served(katan) - start == all_calls
    assert higher.spent_usd == pytest.approx(total_usd)
    assert higher.paid_now_usd == pytest.approx(total_usd - first.spent_usd)
    assert is_done(folder, run.stage("teach").fingerprint)
