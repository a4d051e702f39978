"""`fairspec run` against a spending limit, over real HTTP (llm-katan): exit status 3 with the
budget message and what is saved, the paid calls kept in the store, a rerun with the same
limit that sends nothing, and a higher --max-cost that pays only for the missing calls."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from katan_runs import (
    KEY_ENV,
    TEST_KEY,
    requests_served,
    spec_text,
    svamp_mistakes,
    teacher_line,
    write_mistakes,
    write_spec,
)

from fairspec.errors import EXIT_BUDGET

pytestmark = pytest.mark.slow

NAME, ROWS, TEACHERS = "budget-cli", 6, ("a", "b", "c")
IN_PER_MTOK, OUT_PER_MTOK = 1000.0, 200.0
PRICE = f"{{input_per_mtok: {IN_PER_MTOK}, output_per_mtok: {OUT_PER_MTOK}}}"
TEACH_CALLS = ROWS * len(TEACHERS) * 2
#: the echo server ignores max_tokens (it answers the prompt back, a few hundred words for a
#: review): a reply budget above that keeps its replies inside what the budget reserves
MAX_TOKENS = 512
SPENT_RE = re.compile(r"^budget reached: \$(?P<spent>[0-9.]+) of \$(?P<limit>[0-9.]+) spent and "
                      r"\$(?P<held>[0-9.]+) held for the calls on their way; the next "
                      r"call \((?P<what>[^)]*), up to \$[0-9.]+\) could pass it\. Every completed call "
                      r"is saved: rerun with a higher budget\.max_usd or --max-cost to go on$")
#: the line after: what the calls cost once those on their way landed
FINAL_RE = re.compile(r"^Teacher spend: \$(?P<spent>[0-9.]+) \(\$[0-9.]+ paid now\) of \$(?P<limit>[0-9.]+)$")


def budget_spec(folder: Path, url: str, max_usd: float | None = None) -> Path:
    """Priced teachers a, b and c on ``url``; ROWS svamp-mini mistakes in ``runs/budget-cli``."""
    sections = {"generation": f"{{max_tokens: {MAX_TOKENS}}}", "review": "{threshold: 4}",
                "output_dir": "runs"}
    if max_usd is not None:
        sections["budget"] = f"{{max_usd: {max_usd!r}}}"
    # OpenAI chat models (gpt-4o-a ...): the budget reserves max_tokens, no thinking allowance;
    # one call in flight per teacher: the reservations held when teach ends (a call's prompt
    # bytes and whole reply budget, several times its real cost) stay below review's cost
    teachers = "".join(teacher_line(name, url, model=f"gpt-4o-{name}", concurrency=1, price=PRICE)
                       for name in TEACHERS)
    spec = write_spec(folder, spec_text(teachers,
                                        name=NAME, limit=f"{{train: {ROWS}}}", **sections))
    write_mistakes(folder / "runs" / NAME, svamp_mistakes(ROWS))
    return spec


def fairspec_run(spec: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, KEY_ENV: TEST_KEY, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([sys.executable, "-m", "fairspec.cli", "run", str(spec), *args],
                          cwd=spec.parent, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def store_of(folder: Path) -> Path:
    return folder / "runs" / "calls.sqlite"


def stored(folder: Path) -> tuple[int, float]:
    """Completed calls in the store and what they cost at the teachers' price."""
    with sqlite3.connect(store_of(folder)) as db:
        rows = db.execute("select input_tokens, output_tokens from calls where status != 'error'").fetchall()
    assert all(o <= MAX_TOKENS for _, o in rows)  # no reply cost more than the budget reserved
    return len(rows), sum(i * IN_PER_MTOK + o * OUT_PER_MTOK for i, o in rows) / 1e6


def stage_stats(folder: Path, stage: str) -> dict:
    return json.loads((folder / "runs" / NAME / stage / "stats.json").read_text())


def stopped_by_budget(done: subprocess.CompletedProcess, folder: Path, limit: float) -> float:
    """Exit 3, the budget line and the saved line, no traceback; returns the spend it names."""
    assert done.returncode == EXIT_BUDGET == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    (stop,) = [m for line in lines if (m := SPENT_RE.match(line))]
    assert float(stop["limit"]) == pytest.approx(limit, abs=0.005)
    assert float(stop["spent"]) <= limit
    assert float(stop["spent"]) + float(stop["held"]) <= limit
    calls, _ = stored(folder)
    assert f"{calls} teacher call(s) saved in {store_of(folder)}" in done.stderr
    # the final line counts the calls that were on their way too: the real spend, within limit
    (final,) = [m for line in lines if (m := FINAL_RE.match(line))]
    assert float(stop["spent"]) <= float(final["spent"]) <= limit
    return float(stop["spent"])


def total_teach_usd(tmp_path: Path, url: str) -> float:
    """What the whole teach stage costs, from a run with no limit in a folder of its own."""
    probe = tmp_path / "probe"
    probe.mkdir()
    spec = budget_spec(probe, url)
    done = fairspec_run(spec, "--only", "teach")
    assert done.returncode == 0, done.stdout + done.stderr
    assert stored(probe)[0] == TEACH_CALLS
    return stage_stats(probe, "teach")["usd"]


def test_a_budget_stop_exits_3_keeps_what_was_paid_and_a_higher_max_cost_pays_the_rest(tmp_path, katan):
    total = total_teach_usd(tmp_path, katan.openai_url)
    folder = tmp_path / "main"
    folder.mkdir()
    limit = round(total / 2, 2)
    spec = budget_spec(folder, katan.openai_url, max_usd=limit)  # the spec's budget.max_usd
    start = requests_served(katan)
    first = fairspec_run(spec, "--only", "teach")
    spent = stopped_by_budget(first, folder, limit)
    assert "0/7 stages complete" in first.stderr
    paid, paid_usd = stored(folder)
    assert 0 < paid < TEACH_CALLS
    assert requests_served(katan) - start == paid  # every answer kept, none sent past the stop
    # the message names the spend when the stop came; the calls then on their way finished
    # and were kept, still under the limit
    assert spent <= paid_usd + 1e-4 and paid_usd <= limit
    assert not (folder / "runs" / NAME / "teach" / "manifest.json").exists()

    # the same limit again: the stored calls count, so it stops again under the limit (it may
    # send a call or two that the first run's reservations for calls in flight held back)
    again = fairspec_run(spec, "--only", "teach")
    stopped_by_budget(again, folder, limit)
    paid, paid_usd = stored(folder)
    assert paid < TEACH_CALLS and paid_usd <= limit
    assert requests_served(katan) - start == paid

    # a higher --max-cost (over the spec's limit) resumes and pays only for the missing calls
    done = fairspec_run(spec, "--only", "teach", "--max-cost", f"{total * 2:.4f}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert requests_served(katan) - start == TEACH_CALLS
    assert stored(folder)[0] == TEACH_CALLS
    teach = stage_stats(folder, "teach")
    assert teach["calls_made"] == TEACH_CALLS - paid and teach["calls"] == TEACH_CALLS
    spend = re.search(r"Teacher spend: \$([0-9.]+) \(\$([0-9.]+) paid now\)\.", done.stdout)
    assert spend, done.stdout
    assert float(spend[1]) == pytest.approx(stored(folder)[1], abs=1e-4)
    assert float(spend[2]) == pytest.approx(stored(folder)[1] - paid_usd, abs=1e-4)


def review_limit(tmp_path: Path, url: str) -> float:
    """A limit that teach stays under and review passes: teach's cost and 90% of review's
    (room for the reservations in flight when teach ends), from a run with no limit in a
    folder of its own."""
    probe = tmp_path / "probe"
    probe.mkdir()
    spec = budget_spec(probe, url)
    done = fairspec_run(spec, "--from", "teach", "--until", "review")
    assert done.returncode == 0, done.stdout + done.stderr
    teach_usd = stage_stats(probe, "teach")["usd"]
    review_usd = stored(probe)[1] - teach_usd
    assert review_usd > 0
    return round(teach_usd + review_usd * 0.9, 2)


def review_keys(folder: Path) -> set[str]:
    """The calls the reviews were read from (echoed rationales of one question can be the
    same text: their reviews by one reviewer are one call)."""
    lines = (folder / "runs" / NAME / "review" / "reviews.jsonl").read_text().splitlines()
    return {json.loads(line)["key"] for line in lines if line.strip()}


def test_a_budget_reached_in_review_exits_3_after_teach_is_complete(tmp_path, katan):
    limit = review_limit(tmp_path, katan.openai_url)
    folder = tmp_path / "main"
    folder.mkdir()
    spec = budget_spec(folder, katan.openai_url)
    start = requests_served(katan)
    first = fairspec_run(spec, "--from", "teach", "--until", "review", "--max-cost", f"{limit}")
    spent = stopped_by_budget(first, folder, limit)
    assert f"{NAME} teach: done" in first.stdout and f"{NAME} review" not in first.stdout
    assert (folder / "runs" / NAME / "teach" / "manifest.json").exists()
    assert not (folder / "runs" / NAME / "review" / "manifest.json").exists()
    paid, paid_usd = stored(folder)
    assert paid > TEACH_CALLS  # teach finished and review paid for some calls
    assert requests_served(katan) - start == paid
    assert spent <= paid_usd + 1e-4 and paid_usd <= limit

    done = fairspec_run(spec, "--from", "teach", "--until", "review", "--max-cost", f"{limit * 4}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{NAME} teach: already done" in done.stdout and f"{NAME} review: done" in done.stdout
    calls = TEACH_CALLS + len(review_keys(folder))
    assert paid < calls  # the stop came before the last review
    assert requests_served(katan) - start == stored(folder)[0] == calls  # each call paid once


def test_a_rerun_with_the_same_limit_after_a_review_stop_stays_under_it(tmp_path, katan):
    limit = review_limit(tmp_path, katan.openai_url)
    folder = tmp_path / "main"
    folder.mkdir()
    spec = budget_spec(folder, katan.openai_url)
    args = ("--from", "teach", "--until", "review", "--max-cost", f"{limit}")
    stopped_by_budget(fairspec_run(spec, *args), folder, limit)
    again = fairspec_run(spec, *args)  # teach is done now: skipped
    assert f"{NAME} teach: already done" in again.stdout
    assert stored(folder)[1] <= limit, again.stdout + again.stderr
    assert again.returncode == EXIT_BUDGET, again.stdout + again.stderr
