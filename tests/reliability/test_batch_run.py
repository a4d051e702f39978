"""Batch teachers through ``fairspec run``, against a local server that speaks the OpenAI
files + batches endpoints and Gemini's batch endpoints (tests/support/batch_server.py),
answering each request as llm-katan answers it online.

The exam is the FAIR authors' recorded SVAMP exam (6 mistakes on svamp-mini's first 12
rows, free and instant); the committee asks live: ``alpha`` (OpenAI, batch), ``beta``
(OpenAI, online), ``gem`` (Gemini, batch). The runs stop after the review stage
(``--until review``): training does not depend on how a call was sent.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from katan_runs import KEY_ENV, TEST_KEY

from fairspec.artifacts import read_jsonl

pytest.importorskip("llm_katan", reason="llm-katan (a test dependency) is not installed")
from batch_server import BatchServer  # noqa: E402
from recorded_runs import live_committee_spec  # noqa: E402

WAIT_S = 180.0
MISTAKES = 6
#: each teacher writes a rationale and a feedback per mistake
TEACH_CALLS = 2 * MISTAKES
FAST = {"FAIRSPEC_BATCH_POLL_S": "0.2", "FAIRSPEC_BATCH_GATHER_S": "0.4"}
PRICE = "{input_per_mtok: 1.0, output_per_mtok: 2.0}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    from katan_runs import start_server

    katan = start_server(tmp_path_factory.mktemp("katan"))
    server = BatchServer(upstream_openai=katan.openai_url, upstream_gemini=katan.gemini_url)
    server.start()
    try:
        yield katan, server
    finally:
        server.stop()
        katan.stop()


def teacher(name: str, provider: str, url: str, *, batch: bool, extra: str = "") -> str:
    return (f'  - {{name: {name}, provider: {provider}, model: {provider}-{name}, base_url: "{url}", '
            f"api_key_env: {KEY_ENV}, batch: {str(batch).lower()}, price: {PRICE}, "
            f"max_retries: 2, timeout_s: 20{extra}}}\n")


def write_spec(folder: Path, teachers: str, tail: str = "", review: str = "{threshold: 3}") -> Path:
    """The authors' recorded exam with a live committee, written to ``folder/spec.yaml``."""
    return live_committee_spec(folder, "batch-test", teachers, review=review, tail=tail)


def committee(katan, server, *, batch: bool = True, extra: str = "") -> str:
    """alpha (OpenAI) and gem (Gemini) in batch mode on the batch server, beta online; with
    ``batch=False`` all three online on llm-katan (the reference)."""
    if not batch:
        return (teacher("alpha", "openai", katan.openai_url, batch=False)
                + teacher("beta", "openai", katan.openai_url, batch=False)
                + teacher("gem", "gemini", katan.gemini_url, batch=False))
    return (teacher("alpha", "openai", server.openai_url, batch=True, extra=extra)
            + teacher("beta", "openai", katan.openai_url, batch=False)
            + teacher("gem", "gemini", server.gemini_url, batch=True, extra=extra))


def start(folder: Path, spec: Path, until: str = "review", *more: str) -> subprocess.Popen:
    env = {**os.environ, KEY_ENV: TEST_KEY, **FAST, "OMP_NUM_THREADS": "1"}
    log = (folder / "child.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "fairspec.cli", "run", str(spec),
                             "--until", until, *more], cwd=folder, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def run(folder: Path, spec: Path, until: str = "review", *more: str, expect: int = 0) -> str:
    child = start(folder, spec, until, *more)
    code = child.wait(timeout=WAIT_S)
    out = (folder / "child.log").read_text()
    assert code == expect, out[-4000:]
    return out


def outputs(folder: Path) -> dict[tuple, str]:
    """Every teacher text the run wrote, by (file, index, teacher or author/reviewer), with
    the time llm-katan's echo stamps on each answer taken out."""
    run_dir = folder / "runs" / "batch-test"
    found = {}
    for name in ("rationales", "feedback"):
        for r in read_jsonl(run_dir / "teach" / f"{name}.jsonl"):
            found[(name, r["index"], r["teacher"])] = unstamped(r["text"])
    for r in read_jsonl(run_dir / "review" / "reviews.jsonl"):
        found[("review", r["index"], r["author"], r["reviewer"])] = unstamped(r["text"])
    return found


def unstamped(text: str) -> str:
    return re.sub(r" time=\S+", "", text)


def stats(folder: Path, stage: str) -> dict:
    return json.loads((folder / "runs" / "batch-test" / stage / "stats.json").read_text())


def keys(batch) -> list[str]:
    """The call keys (their first 16 hex digits) a batch carried: fairspec's custom_ids
    are ``c<line>-<key prefix>``."""
    return [str(r).split("-", 1)[1] for r in batch.request_ids]


def wait_for_batches(child: subprocess.Popen, folder: Path, server, count: int) -> None:
    """Until the server has ``count`` batches (the run still going), then half a second more
    so that the run has polled them."""
    deadline = time.monotonic() + WAIT_S
    while len(server.created) < count:
        assert child.poll() is None, (folder / "child.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the batches were not created"
        time.sleep(0.05)
    time.sleep(0.5)


def ledger(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / "runs" / "calls.sqlite") as db:
        return db.execute("select teacher, state, requests, answered, failed from batches "
                          "order by created_at").fetchall()


@pytest.mark.slow
def test_a_mixed_committee_in_batch_mode_answers_as_online_at_batch_prices(servers, tmp_path):
    katan, server = servers
    online = tmp_path / "online"
    run(online, write_spec(online, committee(katan, server, batch=False)))
    before = len(server.created)
    batched = tmp_path / "batched"
    out = run(batched, write_spec(batched, committee(katan, server)))
    assert outputs(batched) == outputs(online)  # every rationale, feedback and review
    created = server.created[before:]
    assert sorted(b.api for b in created[:2]) == ["gemini", "openai"]  # the teach stage
    assert [len(b.request_ids) for b in created[:2]] == [TEACH_CALLS, TEACH_CALLS]
    review = stats(batched, "review")
    # the reviews went in waves, each a batch; their calls are exactly the reviews made
    assert len(created) > 2
    assert sum(len(b.request_ids) for b in created[2:]) == \
        sum(review["teachers"][t]["made"] for t in ("alpha", "gem"))
    teach = stats(batched, "teach")["teachers"]
    assert teach["alpha"]["made"] == TEACH_CALLS and teach["alpha"]["batch"]["batches"] == 1
    assert "batch" not in teach["beta"]
    # batch prices: half of the online spend for the same tokens
    same = stats(online, "teach")["teachers"]["alpha"]
    assert teach["alpha"]["usd"] == pytest.approx(same["usd"] / 2)
    assert teach["beta"]["usd"] == pytest.approx(stats(online, "teach")["teachers"]["beta"]["usd"])
    states = json.loads((batched / "runs" / "batch-test" / "teach" / "batches.json").read_text())
    assert {b["state"] for b in states["batches"].values()} == {"done"}
    assert {b["teacher"] for b in states["batches"].values()} == {"alpha", "gem"}
    assert all(state == "done" for _, state, *_ in ledger(batched))
    assert "stage(s) run" in out

    # the record replays like any other: batch answers are calls in calls.jsonl
    record = batched / "runs" / "batch-test" / "record" / "calls.jsonl"
    replayed = tmp_path / "replayed"
    spec = write_spec(replayed, committee(katan, server))
    made = len(server.created)
    run(replayed, spec, "review", "--replay", str(record))
    assert outputs(replayed) == outputs(batched) and len(server.created) == made


@pytest.mark.slow
def test_kill_between_submit_and_completion_resumes_by_polling_the_same_batches(servers,
                                                                               tmp_path):
    katan, server = servers
    folder = tmp_path / "kill"
    spec = write_spec(folder, committee(katan, server))
    before = len(server.created)
    server.hold()
    try:
        child = start(folder, spec)
        wait_for_batches(child, folder, server, before + 2)  # both batch teachers' teach batches
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert [state for _, state, *_ in ledger(folder)] == ["running", "running"]
        rerun = start(folder, spec)
        time.sleep(3)  # the rerun polls; it must not create anything while the batches run
        assert len(server.created) - before == 2
    finally:
        server.release()
    assert rerun.wait(timeout=WAIT_S) == 0, (folder / "child.log").read_text()[-4000:]
    created = server.created[before:]
    assert [len(b.request_ids) for b in created[:2]] == [TEACH_CALLS, TEACH_CALLS]
    # one teach batch per batch teacher, ever: no later batch carries a teach call again
    teach_keys = set(keys(created[0])) | set(keys(created[1]))
    assert not teach_keys & {k for b in created[2:] for k in keys(b)}
    teach = stats(folder, "teach")["teachers"]
    assert teach["alpha"]["batch"]["batches"] == 0 and teach["alpha"]["batch"]["followed"] == 1
    assert len(outputs(folder)) >= 3 * TEACH_CALLS


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_an_expired_batch_resubmits_only_what_it_did_not_answer(servers, tmp_path, provider):
    katan, server = servers
    folder = tmp_path / "expire"
    # one batch teacher: the first batch created is its teach batch
    url = server.openai_url if provider == "openai" else server.gemini_url
    teachers = (teacher("alpha", provider, url, batch=True)
                + teacher("beta", "openai", katan.openai_url, batch=False))
    before = len(server.created)
    server.expire_next(answered=5)
    run(folder, write_spec(folder, teachers, review="{enabled: false}"), "teach")
    first, second = server.created[before:]
    assert len(first.request_ids) == TEACH_CALLS and len(second.request_ids) == TEACH_CALLS - 5
    # resubmitted under new custom_ids: the calls they carry are exactly the unanswered ones
    assert sorted(keys(second)) == sorted(keys(first)[5:])
    teach = stats(folder, "teach")["teachers"]["alpha"]
    assert teach["batch"]["expired_lines"] == TEACH_CALLS - 5
    assert teach["batch"]["resubmitted"] == TEACH_CALLS - 5 and teach["made"] == TEACH_CALLS


@pytest.mark.slow
def test_failed_lines_are_retried_and_counted_then_stored_as_errors(servers, tmp_path):
    katan, server = servers
    folder = tmp_path / "fail"
    teachers = (teacher("alpha", "openai", server.openai_url, batch=True)
                + teacher("beta", "openai", katan.openai_url, batch=False))
    spec = write_spec(folder, teachers, review="{enabled: false}")
    before = len(server.created)
    server.fail_next(2)
    run(folder, spec, "teach")
    created = server.created[before:]
    assert [len(b.request_ids) for b in created] == [TEACH_CALLS, 2]
    alpha = stats(folder, "teach")["teachers"]["alpha"]
    assert alpha["batch"]["failed_lines"] == 2 and alpha["batch"]["resubmitted"] == 2
    assert alpha["retries"] == 2  # the two answers needed a second submission each
    with sqlite3.connect(folder / "runs" / "calls.sqlite") as db:
        attempts = sorted(a for (a,) in db.execute(
            "select attempts from calls where teacher = 'alpha'"))
    assert attempts == [1] * (TEACH_CALLS - 2) + [2, 2]

    # a line that keeps failing: retried max_retries (2) times, then an error the next run retries
    again = tmp_path / "fail-always"
    spec = write_spec(again, teachers, review="{enabled: false}")
    before = len(server.created)
    server.fail_next(1, times=3)
    out = run(again, spec, "teach", expect=2)
    assert "failed after all retries" in out
    assert [len(b.request_ids) for b in server.created[before:]] == [TEACH_CALLS, 1, 1]
    with sqlite3.connect(again / "runs" / "calls.sqlite") as db:
        errors = db.execute("select attempts, last_error from calls where status = 'error'").fetchall()
    assert len(errors) == 1 and errors[0][0] == 3 and "batch line" in errors[0][1]
    run(again, spec, "teach")  # the next run sends only that call
    assert [len(b.request_ids) for b in server.created[before:]] == [TEACH_CALLS, 1, 1, 1]


@pytest.mark.slow
def test_the_budget_stops_before_a_batch_that_could_pass_it(servers, tmp_path):
    katan, server = servers
    folder = tmp_path / "budget"
    teachers = teacher("alpha", "openai", server.openai_url, batch=True) + \
        teacher("gem", "gemini", server.gemini_url, batch=True)
    # one teach batch's worst case: 12 x (prompt + 512 tokens) at $2/M out ~ $0.013
    spec = write_spec(folder, teachers, "budget: {max_usd: 0.005}\n")
    before = len(server.created)
    out = run(folder, spec, expect=3)
    assert "budget reached" in out and "a batch of 12 calls" in out
    assert len(server.created) == before  # nothing was submitted
    assert ledger(folder) == []


@pytest.mark.slow
def test_ctrl_c_while_waiting_stops_and_names_the_batches_still_running(servers, tmp_path):
    katan, server = servers
    folder = tmp_path / "interrupt"
    teachers = (teacher("alpha", "openai", server.openai_url, batch=True)
                + teacher("beta", "openai", katan.openai_url, batch=False))
    spec = write_spec(folder, teachers, review="{enabled: false}")
    before = len(server.created)
    server.hold()
    try:
        child = start(folder, spec, "teach")
        wait_for_batches(child, folder, server, before + 1)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 130
        out = (folder / "child.log").read_text()
        assert "1 batch(es) still running at the provider (alpha: " in out
        assert "the next run collects their results and sends none of them again" in out
        states = json.loads((folder / "runs" / "batch-test" / "teach" / "batches.json").read_text())
        assert [b["state"] for b in states["batches"].values()] == ["running"]
    finally:
        server.release()
    run(folder, spec, "teach")
    assert len(server.created) == before + 1


@pytest.mark.slow
def test_a_host_without_batch_endpoints_stops_the_teacher_with_what_to_do(servers, tmp_path):
    katan, server = servers
    folder = tmp_path / "no-batch-api"
    teachers = (teacher("alpha", "openai", katan.openai_url, batch=True)  # llm-katan: no /batches
                + teacher("beta", "openai", katan.openai_url, batch=False))
    out = run(folder, write_spec(folder, teachers, review="{enabled: false}"), "teach", expect=2)
    assert "has no batch endpoints" in out and "set batch: false" in out
    assert [state for _, state, *_ in ledger(folder)] == ["failed"]


@pytest.mark.slow
def test_a_debug_batch_run_leaves_the_keys_in_no_file_and_no_log_line(servers, tmp_path):
    katan, server = servers
    folder = tmp_path / "leaks"
    markers = {"LEAK_OPENAI": "sk-proj-" + secrets.token_hex(20),
               "LEAK_GEMINI": "AIza" + secrets.token_hex(18)}
    teachers = (teacher("alpha", "openai", server.openai_url, batch=True)
                .replace(f"api_key_env: {KEY_ENV}", "api_key_env: LEAK_OPENAI")
                + teacher("gem", "gemini", server.gemini_url, batch=True)
                .replace(f"api_key_env: {KEY_ENV}", "api_key_env: LEAK_GEMINI"))
    spec = write_spec(folder, teachers)
    before = len(server.created)
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "run", str(spec), "--debug",
                           "--until", "review"], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, **markers, **FAST}, timeout=WAIT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(server.created) > before  # the keys were used, in batch mode
    log = done.stdout + done.stderr
    assert not [name for name, key in markers.items() if key in log]
    found = [f"{path}: {name}" for path in folder.rglob("*") if path.is_file()
             for name, key in markers.items() if key.encode() in path.read_bytes()]
    assert found == []
