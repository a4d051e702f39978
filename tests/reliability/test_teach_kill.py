"""kill -9 in the middle of the teach stage, then a rerun: nothing lost, nothing paid twice.

The stage runs in a child process (this file run as a script) against a fresh llm-katan
with 200 ms latency; the test kills it with SIGKILL at a random moment while calls are
in flight, reruns the stage in-process, and counts the server's answers.

The bound. llm-katan counts an answer when it sends it. An answer sent while the child
was being killed may never have reached the store: it is asked again by the rerun. Each
teacher has ``concurrency`` workers with at most one request out each (its limiter
allows no more), so at most ``concurrency x teachers`` (4 x 3 = 12) answers can be lost
that way. Every answer stored before the kill must never be asked again, so:

* answers served before the kill - calls stored at the kill  is in [0, 12];
* answers served by the rerun == calls missing from the store at the kill (exactly);
* hence all answers served - distinct stored calls  is in [0, 12].
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from katan_runs import (
    KEY_ENV,
    SUPPORT_DIR,
    TEACHERS,
    TEST_KEY,
    committee,
    compile_run,
    mistake,
    requests_served,
    spec_text,
    write_mistakes,
)

from fairspec.artifacts import is_done, read_jsonl
from fairspec.plan.graph import RunPlan
from fairspec.run.executor import run_stage
from fairspec.store import CallStore

log = logging.getLogger(__name__)

MISTAKES = 30
CONCURRENCY = 4
LATENCY_S = 0.2
TOTAL = MISTAKES * len(TEACHERS) * 2  # a rationale and a feedback per (mistake, teacher)
IN_FLIGHT_MAX = CONCURRENCY * len(TEACHERS)
WAIT_S = 60.0  # bound on every wait for the child or the server

pytestmark = pytest.mark.slow  # kills or interrupts child processes


def plan_run(base: Path, url: str) -> RunPlan:
    teachers = committee(url, concurrency=CONCURRENCY, timeout_s=30)
    return compile_run(spec_text(teachers, name="katan-kill"), base).run


def write_apple_mistakes(base: Path) -> None:
    write_mistakes(base / "run", [
        mistake(i, f"Bob has {i} apples and eats 1. How many are left?", float(i - 1), answer=99)
        for i in range(MISTAKES)])


def child(base: Path, url: str) -> None:
    """The process that gets killed: the teach stage, as ``fairspec run`` would run it."""
    run = plan_run(base, url)
    with CallStore(base / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=base, store=store)


def settled_count(root: str) -> int:
    """The server's answer count once the requests it still held are done."""
    time.sleep(LATENCY_S + 0.2)
    deadline = time.monotonic() + WAIT_S
    last = requests_served(root)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = requests_served(root)
        if now == last:
            return now
        last = now
    raise AssertionError("the server's answer count did not settle")


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def kill_mid_stage(base: Path, server, delay_s: float) -> subprocess.Popen[bytes]:
    """Start the child, wait for its first answer, wait ``delay_s`` more, SIGKILL it."""
    out = (base / "child.log").open("wb")
    # the child imports katan_runs with no conftest to put tests/support on sys.path
    path = os.pathsep.join(filter(None, [str(SUPPORT_DIR), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, KEY_ENV: TEST_KEY, "PYTHONPATH": path}
    proc = subprocess.Popen([sys.executable, __file__, str(base), server.openai_url],
                            stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    try:
        deadline = time.monotonic() + WAIT_S
        while requests_served(server.root) == 0:
            assert proc.poll() is None, f"child ended early: {(base / 'child.log').read_text()}"
            assert time.monotonic() < deadline, "the child sent no call in time"
            time.sleep(0.02)
        time.sleep(delay_s)
        assert proc.poll() is None, f"the stage finished before the kill at +{delay_s:.2f}s"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL
    return proc


def _kill_then_rerun(tmp_path: Path, start_katan, monkeypatch, low: float, high: float) -> None:
    delay = random.Random().uniform(low, high)
    log.info("killing the teach stage %.2fs after its first answer", delay)
    server = start_katan("--latency-ms", str(int(LATENCY_S * 1000)))
    write_apple_mistakes(tmp_path)
    kill_mid_stage(tmp_path, server, delay)
    at_kill = settled_count(server.root)
    store_path = tmp_path / "calls.sqlite"
    assert integrity(store_path) == "ok"
    run = plan_run(tmp_path, server.openai_url)
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    with CallStore(store_path) as store:
        before = {r.key: r for r in store.records()}
        assert all(r.completed for r in before.values())
        stored = len(before)
        where = f"(kill at +{delay:.2f}s: {stored} stored, {at_kill} served)"
        log.info("after the kill %s", where)
        assert 0 < stored < TOTAL, f"the kill was not mid-stage {where}"
        assert 0 <= at_kill - stored <= IN_FLIGHT_MAX, where
        assert not is_done(tmp_path / "run" / "teach", run.stage("teach").fingerprint)

        stats = run_stage(run, "teach", base_dir=tmp_path, store=store)

        assert stats["calls"] == TOTAL and stats["calls_made"] == TOTAL - stored, where
        total_served = settled_count(server.root)
        assert total_served - at_kill == TOTAL - stored, where  # the rerun asked only the rest
        assert store.count() == TOTAL
        assert 0 <= total_served - store.count() <= IN_FLIGHT_MAX, where
        after = {r.key: r for r in store.records()}
        assert all(after[key] == record for key, record in before.items())  # kept as they were
        for name in ("rationales.jsonl", "feedback.jsonl"):
            rows = list(read_jsonl(tmp_path / "run" / "teach" / name))
            assert sorted((r["index"], r["teacher"]) for r in rows) == sorted(
                (i, t) for i in range(MISTAKES) for t in TEACHERS)
            assert all(r["status"] == "ok" and after[r["key"]].text == r["text"] for r in rows)
    assert is_done(tmp_path / "run" / "teach", run.stage("teach").fingerprint)
    assert integrity(store_path) == "ok"


def test_kill_early_in_the_teach_stage(tmp_path, start_katan, monkeypatch) -> None:
    _kill_then_rerun(tmp_path, start_katan, monkeypatch, 0.3, 0.7)


def test_kill_midway_through_the_teach_stage(tmp_path, start_katan, monkeypatch) -> None:
    _kill_then_rerun(tmp_path, start_katan, monkeypatch, 0.8, 1.4)


def test_kill_late_in_the_teach_stage(tmp_path, start_katan, monkeypatch) -> None:
    _kill_then_rerun(tmp_path, start_katan, monkeypatch, 1.5, 2.2)


if __name__ == "__main__":
    child(Path(sys.argv[1]), sys.argv[2])
