"""The spending limit reached in the review stage (teach stays under it), over real HTTP
(llm-katan): no review is sent past it, teach's result is untouched, a rerun with the same
limit sends nothing and a higher one pays only for the missing reviews."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace

import pytest
from katan_runs import requests_served, teacher_line

from fairspec.artifacts import is_done
from fairspec.run.executor import run_stage
from fairspec.store import CallStore
from fairspec.teachers.budget import Budget, BudgetReached

PRICE = "{input_per_mtok: 1000.0, output_per_mtok: 200.0}"
#: the echo server ignores max_tokens (it answers the prompt back, a few hundred words for a
#: review): a reply budget above that keeps its replies inside what the budget reserves
GENERATION = "{max_tokens: 512}"
MISTAKES, TEACHERS = 4, ("a", "b", "c")
TEACH_CALLS = MISTAKES * len(TEACHERS) * 2


def teach_and_review(run, base, store, budget: Budget) -> dict:
    """The two teacher stages in one invocation sharing ``budget``, as `fairspec run` does."""
    run_stage(run, "teach", base_dir=base, store=store, budget=budget)
    return run_stage(run, "review", base_dir=base, store=store, budget=budget)


def test_budget_reached_in_review_stops_it_and_a_higher_limit_resumes(tmp_path, katan, katan_key,
                                                                       katan_run):
    # OpenAI chat models (gpt-4o-a ...): the budget reserves max_tokens, no thinking allowance;
    # one call in flight per teacher: the reservations held when teach ends (a call's prompt
    # bytes and whole reply budget, several times its real cost) stay below review's cost
    teachers = "".join(teacher_line(name, katan.openai_url, model=f"gpt-4o-{name}",
                                    concurrency=1, price=PRICE) for name in TEACHERS)
    made = katan_run(teachers,
                     name="review-budget", generation=GENERATION, mistakes=MISTAKES,
                     review="{threshold: 4}")
    run = made.run
    # what each stage costs, measured on a throwaway run folder and store
    probe_run = replace(run, run_dir=str(tmp_path / "probe"))
    shutil.copytree(made.stage_dir("exam"), tmp_path / "probe" / "exam")
    with CallStore(tmp_path / "probe.sqlite") as probe:
        measure = Budget(None)
        teach_usd = run_stage(probe_run, "teach", base_dir=tmp_path, store=probe, budget=measure)["usd"]
        run_stage(probe_run, "review", base_dir=tmp_path, store=probe, budget=measure)
        review_usd = measure.spent_usd - teach_usd
    assert teach_usd > 0 and review_usd > 0
    limit = teach_usd + review_usd * 0.9

    start = requests_served(katan)
    with CallStore(tmp_path / "calls.sqlite") as store:
        first = Budget(limit)
        with pytest.raises(BudgetReached, match="budget reached") as stop:
            teach_and_review(run, tmp_path, store, first)
        assert re.search(r"the next call \(teacher [abc], up to \$", str(stop.value))
        assert made.done("teach") and not made.done("review")
        teach_rows = (made.stage_dir("teach") / "rationales.jsonl").read_bytes()
        paid = store.count()
        assert TEACH_CALLS < paid  # teach completed, review paid for some calls
        assert requests_served(katan) - start == paid  # nothing was sent past the stop
        assert teach_usd <= first.spent_usd <= limit and first.reserved_usd == pytest.approx(0)

        # the same limit again: teach and the stored reviews count, so review stops again
        # under the limit (it may send a call or two that the first run's reservations for
        # calls in flight held back)
        again = Budget(limit)
        with pytest.raises(BudgetReached):
            teach_and_review(run, tmp_path, store, again)
        assert again.spent_usd == pytest.approx(first.spent_usd + again.paid_now_usd)
        assert again.spent_usd <= limit and not made.done("review")
        paid = store.count()
        assert requests_served(katan) - start == paid
        spent = again.spent_usd

        # a higher limit resumes the review: only the missing reviews are paid
        higher = Budget(limit * 4)
        review = teach_and_review(run, tmp_path, store, higher)
        new_calls = store.count() - paid
    assert new_calls > 0 and requests_served(katan) - start == paid + new_calls
    assert sum(t["made"] for t in review["teachers"].values()) == new_calls
    assert higher.paid_now_usd == pytest.approx(higher.spent_usd - spent)
    assert made.done("review") and made.done("teach")
    assert (made.stage_dir("teach") / "rationales.jsonl").read_bytes() == teach_rows
    assert is_done(made.stage_dir("review"), run.stage("review").fingerprint)
