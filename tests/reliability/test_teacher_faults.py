"""Teach and review stages against llm-katan with injected faults: nothing lost, nothing paid twice.

Each faulty run is compared with a fault-free run on the same prompts. The echo backend
answers with the prompt it got, so a review echoes the question of the rationale it
judges: every question carries a bracketed number ``[k]``, the last bracket of the echoed
review prompt, which makes ``k`` the score of every review of that mistake. The accepted
set and the early exits therefore follow from the questions alone (mean >= 4 of the
other two teachers' scores).
"""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from katan_runs import (
    KEY_ENV,
    TEACHERS,
    TEST_KEY,
    committee,
    compile_run,
    mistake,
    requests_served,
    spec_text,
    teacher_line,
    write_mistakes,
)

from fairspec.artifacts import is_done, read_jsonl
from fairspec.errors import TeacherStopped
from fairspec.plan.graph import RunPlan
from fairspec.run.executor import run_stage
from fairspec.store import CallStore

pytestmark = [
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
    pytest.mark.usefixtures("katan_key"),
]

#: the score every review of mistake i gets (the bracket in its question)
SCORES = (5, 4, 3, 2, 1, 4)
#: what the review policy (mean >= 4 of the two other teachers, exact early exit) decides:
#: a first score of 1 or 2 can no longer reach a mean of 4, so the second review is skipped
EXPECTED_REVIEWS = {5: [5, 5], 4: [4, 4], 3: [3, 3], 2: [2], 1: [1]}
EXPECTED_ACCEPTED = {(i, t) for i, k in enumerate(SCORES) if k >= 4 for t in TEACHERS}


def make_run(tmp_path: Path, teachers: str) -> RunPlan:
    """The committee ``teachers`` on one mistake per score of SCORES (the bracket in its question)."""
    made = compile_run(spec_text(teachers, name="katan-faults", review="{threshold: 4}"), tmp_path)
    write_mistakes(made.run_dir, [
        mistake(i, f"Ann has {i + 2} pens and buys [{k}] more. How many pens does she have?",
                float(i + 2 + k), answer=0) for i, k in enumerate(SCORES)])
    return made.run


def outcome(tmp_path: Path) -> dict[str, Any]:
    """What the stages decided, without the echo's timestamps: accepted (index, author)
    with scores, and every review as (index, author, reviewer, score)."""
    run_dir = tmp_path / "run"
    accepted = {(r["index"], r["teacher"]): r["scores"]
                for r in read_jsonl(run_dir / "review" / "accepted.jsonl")}
    reviews = sorted((r["index"], r["author"], r["reviewer"], r["score"])
                     for r in read_jsonl(run_dir / "review" / "reviews.jsonl"))
    return {"accepted": accepted, "reviews": reviews}


def run_both(run: RunPlan, tmp_path: Path, store: CallStore) -> tuple[dict, dict]:
    teach = run_stage(run, "teach", base_dir=tmp_path, store=store)
    review = run_stage(run, "review", base_dir=tmp_path, store=store)
    return teach, review


def assert_complete(run: RunPlan, tmp_path: Path, store: CallStore) -> None:
    """Every (mistake, teacher) rationale and feedback is there and ok, both stages done,
    every review there, and each output row is the stored answer of its key."""
    run_dir = tmp_path / "run"
    everyone = {(i, t) for i in range(len(SCORES)) for t in TEACHERS}
    for name in ("rationales.jsonl", "feedback.jsonl"):
        rows = list(read_jsonl(run_dir / "teach" / name))
        assert {(r["index"], r["teacher"]) for r in rows} == everyone and len(rows) == len(everyone)
        assert all(r["status"] == "ok" for r in rows)
        for row in rows:
            stored = store.get(row["key"])
            assert stored is not None and stored.text == row["text"]
    reviews = list(read_jsonl(run_dir / "review" / "reviews.jsonl"))
    assert all(r["status"] == "ok" and store.get(r["key"]) is not None for r in reviews)
    assert is_done(run_dir / "teach", run.stage("teach").fingerprint)
    assert is_done(run_dir / "review", run.stage("review").fingerprint)
    assert not [r for r in store.records() if not r.completed]


def expected_reviews() -> list[tuple[int, str, str, int]]:
    rows = []
    for i, k in enumerate(SCORES):
        for author in TEACHERS:
            others = [t for t in TEACHERS if t != author]
            rows += [(i, author, reviewer, score)
                     for reviewer, score in zip(others, EXPECTED_REVIEWS[k], strict=False)]
    return sorted(rows)


def set_backoff(monkeypatch: pytest.MonkeyPatch, *, base_s: float, max_s: float) -> None:
    """Set the retry back-off of the stages' providers: the spec has no back-off key, so the
    stage's provider factory is wrapped to pass the providers' own back-off arguments."""
    from fairspec.teachers import committee

    real = committee.provider_class

    def provider_class(kind: str):
        cls = real(kind)
        if kind in ("openai", "gemini"):
            return functools.partial(cls, backoff_s=base_s, backoff_max_s=max_s)
        return cls

    monkeypatch.setattr(committee, "provider_class", provider_class)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry back-off of 20 ms doubling up to 200 ms (the default starts at 1 s)."""
    set_backoff(monkeypatch, base_s=0.02, max_s=0.2)


@pytest.fixture(scope="module")
def baseline(katan, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fault-free run on the same prompts (the shared echo server)."""
    tmp_path = tmp_path_factory.mktemp("baseline")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, TEST_KEY)
        run = make_run(tmp_path, committee(katan.openai_url))
        with CallStore(tmp_path / "calls.sqlite") as store:
            run_both(run, tmp_path, store)
            assert_complete(run, tmp_path, store)
            assert all(r.attempts == 1 for r in store.records())
    return outcome(tmp_path)


def test_the_fault_free_run_decides_what_the_questions_say(baseline) -> None:
    assert set(baseline["accepted"]) == EXPECTED_ACCEPTED
    assert all(scores == [SCORES[i]] * 2 for (i, _), scores in baseline["accepted"].items())
    assert baseline["reviews"] == expected_reviews()


def retried(store: CallStore) -> list:
    return [r for r in store.records() if r.attempts > 1]


def test_twenty_percent_http_500_loses_nothing(tmp_path, start_katan, baseline,
                                               fast_backoff) -> None:
    server = start_katan("--error-rate", "0.2")
    run = make_run(tmp_path, committee(server.openai_url, concurrency=4, max_retries=12))
    with CallStore(tmp_path / "calls.sqlite") as store:
        teach, review = run_both(run, tmp_path, store)
        assert_complete(run, tmp_path, store)
        # every stored call was answered once by the server, none asked twice
        assert requests_served(server.root) == store.count() == teach["calls_made"] + (
            sum(t["made"] for t in review["teachers"].values()))
        again = retried(store)
        assert again and all("HTTP 500" in (r.last_error or "") for r in again)
        # the stages report the retries they needed, per teacher (the report's Table 5 shows them)
        reported = sum(t["retries"] for stage in (teach, review) for t in stage["teachers"].values())
        assert reported == sum(r.attempts - 1 for r in store.records()) > 0
    assert outcome(tmp_path) == baseline


def test_a_gemini_teacher_in_the_committee_retries_http_500_too(tmp_path, start_katan, baseline,
                                                                fast_backoff) -> None:
    server = start_katan("--error-rate", "0.2")
    teachers = (teacher_line("alpha", server.openai_url, concurrency=4, max_retries=12)
                + teacher_line("beta", server.openai_url, concurrency=4, max_retries=12)
                + teacher_line("gamma", server.gemini_url, provider="gemini",
                               model="gemini-1.0-pro", concurrency=4, max_retries=12))
    run = make_run(tmp_path, teachers)
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_both(run, tmp_path, store)
        assert_complete(run, tmp_path, store)
        gamma = [r for r in store.records() if r.teacher == "gamma"]
        assert gamma and {r.provider for r in gamma} == {"gemini"}
        assert requests_served(server.root) == store.count()
        assert any(r.attempts > 1 for r in store.records())
    assert outcome(tmp_path) == baseline


@pytest.mark.slow
def test_503_over_max_inflight_with_concurrency_above_it(tmp_path, start_katan, baseline,
                                                         fast_backoff) -> None:
    # 3 teachers x 6 in flight against a server that takes 4 at a time
    server = start_katan("--max-inflight", "4", "--latency-ms", "60")
    run = make_run(tmp_path, committee(server.openai_url, concurrency=6, max_retries=40))
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_both(run, tmp_path, store)
        assert_complete(run, tmp_path, store)
        assert requests_served(server.root) == store.count()
        again = retried(store)
        assert again and all("HTTP 503" in (r.last_error or "") for r in again)
    assert outcome(tmp_path) == baseline


def test_latency_calls_overlap_and_nothing_is_lost(tmp_path, start_katan, baseline) -> None:
    latency = 0.25
    server = start_katan("--latency-ms", str(int(latency * 1000)))
    run = make_run(tmp_path, committee(server.openai_url, concurrency=8, timeout_s=20))
    with CallStore(tmp_path / "calls.sqlite") as store:
        started = time.monotonic()
        teach = run_stage(run, "teach", base_dir=tmp_path, store=store)
        teach_s = time.monotonic() - started
        run_stage(run, "review", base_dir=tmp_path, store=store)
        assert_complete(run, tmp_path, store)
        assert all(r.attempts == 1 for r in store.records())
        assert requests_served(server.root) == store.count()
    # 36 teach calls of 0.25 s each: one at a time would take 9 s; 3 x 8 overlap
    assert teach["calls_made"] == 36 and teach_s < 36 * latency / 3
    assert outcome(tmp_path) == baseline


# -- 429: llm-katan's --rate-limit-after N answers 429 to every request after the N-th, with
# no Retry-After, until the server restarts. A restart on the same port (so the same
# base_url and call keys) plays the rate-limit window that resets.


def relaunch_without(server, *flags: str, log: Path) -> None:
    """Stop ``server`` and start it again on its port without ``flags`` (each with its value);
    ``server.process`` is replaced so the fixture stops the new one."""
    args = list(server.process.args)
    for flag in flags:
        at = args.index(flag)
        del args[at:at + 2]
    server.process.kill()  # at once: a graceful stop waits for the keep-alive connections
    server.process.wait(timeout=10)
    with log.open("wb") as out:
        server.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.process.poll() is None, log.read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{server.root}/health", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise AssertionError(f"llm-katan did not come back on port {server.port}")


@pytest.mark.slow
def test_429_storm_outlasting_retries_stops_and_the_rerun_pays_only_the_rest(
        tmp_path, start_katan, baseline, fast_backoff) -> None:
    limit = 10
    server = start_katan("--rate-limit-after", str(limit))
    run = make_run(tmp_path, committee(server.openai_url, concurrency=3, max_retries=2))
    with CallStore(tmp_path / "calls.sqlite") as store:
        with pytest.raises(TeacherStopped, match="rerun"):
            run_stage(run, "teach", base_dir=tmp_path, store=store)
        # exactly the first `limit` requests were answered, and each is stored
        assert requests_served(server.root) == limit == store.count()
        errors = [r for r in store.records() if not r.completed]
        assert len(errors) == 36 - limit
        assert all(r.attempts == 3 and "HTTP 429" in (r.last_error or "") for r in errors)
        assert not is_done(tmp_path / "run" / "teach", run.stage("teach").fingerprint)
        stats = json.loads((tmp_path / "run" / "teach" / "stats.json").read_text())
        assert stats["calls_made"] == limit

        relaunch_without(server, "--rate-limit-after", log=tmp_path / "katan-again.log")
        teach, review = run_both(run, tmp_path, store)
        assert teach["calls_made"] == 36 - limit and teach["calls"] == 36
        assert_complete(run, tmp_path, store)
        # the restarted server counts from 0: it saw only the calls not yet stored
        assert requests_served(server.root) == store.count() - limit
    assert outcome(tmp_path) == baseline


@pytest.mark.slow
def test_429_until_the_window_resets_is_retried_to_success(tmp_path, start_katan, baseline,
                                                           monkeypatch) -> None:
    # back-off up to 1 s: 60 retries outlast the few seconds the restart takes
    set_backoff(monkeypatch, base_s=0.05, max_s=1.0)
    limit = 8
    server = start_katan("--rate-limit-after", str(limit))
    first_log = server.log
    run = make_run(tmp_path, committee(server.openai_url, concurrency=3, max_retries=60))
    failure: list[BaseException] = []

    def reset_window() -> None:
        try:
            deadline = time.monotonic() + 20
            while requests_served(server.root) < limit and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)  # let the teachers meet some 429s
            relaunch_without(server, "--rate-limit-after", log=tmp_path / "katan-again.log")
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failure.append(exc)

    thread = threading.Thread(target=reset_window, daemon=True)
    thread.start()
    with CallStore(tmp_path / "calls.sqlite") as store:
        teach = run_stage(run, "teach", base_dir=tmp_path, store=store)
        thread.join(timeout=30)
        assert not thread.is_alive() and not failure, failure
        run_stage(run, "review", base_dir=tmp_path, store=store)
        assert_complete(run, tmp_path, store)
        assert teach["calls_made"] == 36 and teach["teachers"]["alpha"]["errors"] == 0
        # once the limit is reached, each of the 3 x 3 workers retries the call it holds
        assert len(retried(store)) >= 9
    assert first_log.read_text().count("| 429 | simulated") >= 9
    assert outcome(tmp_path) == baseline
