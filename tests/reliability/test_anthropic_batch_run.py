"""Anthropic teachers through ``fairspec run``, against the strict Messages + Message Batches
stand-in (tests/support/strict_anthropic.py), which refuses what the real API refuses.

The exam is the FAIR authors' recorded SVAMP exam (6 mistakes on svamp-mini's first 12
rows); the committee is ``claude`` (claude-sonnet-4-5, batch) and ``opus``
(claude-opus-4-1, online), both at the paper's generation settings (temperature 0.8 and
top_p 1.0, which these models refuse together). The runs stop after the review stage.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from recorded_runs import live_committee_spec
from strict_anthropic import StrictAnthropic

from fairspec.artifacts import read_jsonl
from fairspec.providers.anthropic_batch import untagged_id

KEY_ENV = "ANTHROPIC_TEST_KEY"
KEY = "sk-ant-api03-fairspecrunmarker0c4d7e91"
WAIT_S = 180.0
MISTAKES = 6
TEACH_CALLS = 2 * MISTAKES  # a rationale and a feedback per mistake
FAST = {"FAIRSPEC_BATCH_POLL_S": "0.2", "FAIRSPEC_BATCH_GATHER_S": "0.4"}
PRICE = "{input_per_mtok: 3.0, output_per_mtok: 15.0}"


@pytest.fixture(scope="module")
def server() -> Iterator[StrictAnthropic]:
    with StrictAnthropic(key=KEY) as running:
        yield running


def teacher(name: str, model: str, url: str, *, batch: bool) -> str:
    return (f'  - {{name: {name}, provider: anthropic, model: {model}, base_url: "{url}", '
            f"api_key_env: {KEY_ENV}, batch: {str(batch).lower()}, price: {PRICE}, "
            f"max_retries: 2, timeout_s: 20}}\n")


def committee(server: StrictAnthropic, *, batch: bool = True) -> str:
    return (teacher("claude", "claude-sonnet-4-5", server.url, batch=batch)
            + teacher("opus", "claude-opus-4-1", server.url, batch=False))


def write_spec(folder: Path, teachers: str, review: str = "{threshold: 3}") -> Path:
    return live_committee_spec(folder, "anthropic-batch", teachers, review=review)


def start(folder: Path, spec: Path, until: str = "review") -> subprocess.Popen:
    env = {**os.environ, KEY_ENV: KEY, **FAST, "OMP_NUM_THREADS": "1"}
    log = (folder / "child.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "fairspec.cli", "run", str(spec), "--until", until],
                            cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)


def run(folder: Path, spec: Path, until: str = "review", expect: int = 0) -> str:
    code = start(folder, spec, until).wait(timeout=WAIT_S)
    out = (folder / "child.log").read_text()
    assert code == expect, out[-4000:]
    return out


def outputs(folder: Path) -> dict[tuple, str]:
    run_dir = folder / "runs" / "anthropic-batch"
    found = {}
    for name in ("rationales", "feedback"):
        for r in read_jsonl(run_dir / "teach" / f"{name}.jsonl"):
            found[(name, r["index"], r["teacher"])] = r["text"]
    review = run_dir / "review" / "reviews.jsonl"
    if review.exists():
        for r in read_jsonl(review):
            found[("review", r["index"], r["author"], r["reviewer"])] = r["text"]
    return found


def stats(folder: Path, stage: str) -> dict:
    return json.loads((folder / "runs" / "anthropic-batch" / stage / "stats.json").read_text())


def keys(batch) -> list[str]:
    """The call keys (first 16 hex digits) a batch carried."""
    return [untagged_id(c)[1].split("-", 1)[1] for c in batch.custom_ids]


def ledger(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / "runs" / "calls.sqlite") as db:
        return db.execute("select teacher, state, requests, answered, failed from batches "
                          "order by created_at").fetchall()


@pytest.mark.slow
def test_a_claude_committee_in_batch_mode_answers_as_online_with_no_400(server, tmp_path) -> None:
    online = tmp_path / "online"
    run(online, write_spec(online, committee(server, batch=False)))
    before = len(server.created)
    batched = tmp_path / "batched"
    run(batched, write_spec(batched, committee(server)))
    assert server.refused == []  # not one request was refused, online or in a batch
    assert outputs(batched) == outputs(online) and len(outputs(online)) > 2 * 2 * MISTAKES
    created = server.created[before:]
    assert len(created[0].custom_ids) == TEACH_CALLS
    assert all("temperature" in p and "top_p" not in p for b in created for p in b.params)
    teach = stats(batched, "teach")["teachers"]
    assert teach["claude"]["batch"]["batches"] == 1 and "batch" not in teach["opus"]
    same = stats(online, "teach")["teachers"]["claude"]
    assert teach["claude"]["usd"] == pytest.approx(same["usd"] / 2)  # batch prices
    assert all(state == "done" for _, state, *_ in ledger(batched))


@pytest.mark.slow
def test_an_expired_batch_resubmits_only_what_it_did_not_answer(server, tmp_path) -> None:
    folder = tmp_path / "expire"
    before = len(server.created)
    server.expire_next(answered=5)
    run(folder, write_spec(folder, committee(server), review="{enabled: false}"), "teach")
    first, second = server.created[before:]
    assert len(first.custom_ids) == TEACH_CALLS and len(second.custom_ids) == TEACH_CALLS - 5
    assert sorted(keys(second)) == sorted(keys(first)[5:])
    claude = stats(folder, "teach")["teachers"]["claude"]
    assert claude["batch"]["expired_lines"] == TEACH_CALLS - 5
    assert claude["batch"]["resubmitted"] == TEACH_CALLS - 5 and claude["made"] == TEACH_CALLS


@pytest.mark.slow
def test_failed_lines_are_retried_and_counted_then_stored_as_errors(server, tmp_path) -> None:
    folder = tmp_path / "fail"
    spec = write_spec(folder, committee(server), review="{enabled: false}")
    before = len(server.created)
    server.fail_next(2, "overloaded_error")
    run(folder, spec, "teach")
    assert [len(b.custom_ids) for b in server.created[before:]] == [TEACH_CALLS, 2]
    claude = stats(folder, "teach")["teachers"]["claude"]
    assert claude["batch"]["failed_lines"] == 2 and claude["batch"]["resubmitted"] == 2

    # a line that keeps failing: retried max_retries (2) times, then an error the next run retries
    again = tmp_path / "fail-always"
    spec = write_spec(again, committee(server), review="{enabled: false}")
    before = len(server.created)
    server.fail_next(1, "api_error", times=3)
    out = run(again, spec, "teach", expect=2)
    assert "failed after all retries" in out
    assert [len(b.custom_ids) for b in server.created[before:]] == [TEACH_CALLS, 1, 1]
    run(again, spec, "teach")  # the next run sends only that call
    assert [len(b.custom_ids) for b in server.created[before:]] == [TEACH_CALLS, 1, 1, 1]


@pytest.mark.slow
def test_kill_between_submit_and_completion_resumes_by_polling_the_same_batch(server, tmp_path) -> None:
    folder = tmp_path / "kill"
    spec = write_spec(folder, committee(server))
    before = len(server.created)
    server.hold()
    try:
        child = start(folder, spec)
        deadline = time.monotonic() + WAIT_S
        while len(server.created) < before + 1:
            assert child.poll() is None, (folder / "child.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the batch was not created"
            time.sleep(0.05)
        time.sleep(0.5)  # the run writes the batch's id down and polls it
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert [state for _, state, *_ in ledger(folder)] == ["running"]
        rerun = start(folder, spec)
        time.sleep(3)  # the rerun polls; it must create nothing while the batch runs
        assert len(server.created) == before + 1
    finally:
        server.release()
    assert rerun.wait(timeout=WAIT_S) == 0, (folder / "child.log").read_text()[-4000:]
    created = server.created[before:]
    assert len(created[0].custom_ids) == TEACH_CALLS
    assert not set(keys(created[0])) & {k for b in created[1:] for k in keys(b)}
    claude = stats(folder, "teach")["teachers"]["claude"]
    assert claude["batch"]["batches"] == 0 and claude["batch"]["followed"] == 1


@pytest.mark.slow
def test_a_debug_batch_run_leaves_the_key_in_no_file_and_no_log_line(server, tmp_path) -> None:
    folder = tmp_path / "leaks"
    spec = write_spec(folder, committee(server), review="{enabled: false}")
    before = len(server.created)
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "run", str(spec), "--debug",
                           "--until", "teach"], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, KEY_ENV: KEY, **FAST}, timeout=WAIT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(server.created) > before  # the key was used, in batch mode
    assert KEY not in done.stdout + done.stderr
    assert [p for p in folder.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()] == []
