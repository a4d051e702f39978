"""Tests that the call store loses no completed call: kill -9, concurrent processes."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fairspec.store import CallIdentity, CallRecord, CallStore

REPO_ROOT = Path(__file__).resolve().parents[2]

# What both children start with: the store, and the record of question ``name``.
CHILD_SETUP = r"""
import sys
from fairspec.store import CallIdentity, CallRecord, CallStore

store = CallStore(sys.argv[1])
filler = "x" * int(sys.argv[2])

def make(name):
    return CallRecord.create(
        CallIdentity(provider="openai", base_url=None, model="teacher",
                     messages=[{"role": "user", "content": f"question {name}"}],
                     settings={"temperature": 0.5}, sample_index=0),
        status="ok", text=f"{name}:{filler}")
"""

# Writes records one by one and prints each key only after put() has returned.
CHILD = CHILD_SETUP + r"""
for i in range(1_000_000):
    record = make(i)
    store.put(record)
    sys.stdout.write(record.key + "\n")
    sys.stdout.flush()
"""


def _drain(pipe, lines: list[str]) -> None:
    # A reader thread, so the child never blocks on a full pipe: it is killed mid-write.
    for line in iter(pipe.readline, ""):
        lines.append(line)


def run_and_kill(code: str, path: Path, filler: int, kill_after_s: float,
                 started: Callable[[list[str]], bool]) -> list[str]:
    """Run ``code`` in a child writing to ``path``, SIGKILL it ``kill_after_s`` (+ jitter)
    after ``started(lines)`` holds; the complete lines it printed."""
    child = subprocess.Popen([sys.executable, "-c", code, str(path), str(filler)],
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=_drain, args=(child.stdout, lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not started(lines) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        assert started(lines), "the writer never completed a write"
        time.sleep(kill_after_s + random.uniform(0, 0.05))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        reader.join(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return [line for line in lines if line.endswith("\n")]


@pytest.mark.parametrize("kill_after_s,filler", [(0.0, 100), (0.15, 4000), (0.4, 100),
                                                 (0.7, 20_000)])
def test_kill_9_loses_no_record_put_returned(tmp_path: Path, kill_after_s: float,
                                             filler: int) -> None:
    path = tmp_path / "calls.sqlite"
    printed = [line.strip() for line in run_and_kill(CHILD, path, filler, kill_after_s, bool)]
    assert printed

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with CallStore(path) as store:
        found = store.get_many(printed)
        assert set(found) == set(printed)
        # At most the put in flight when killed may be there without having been printed.
        assert store.count() - len(printed) in (0, 1)
        assert all(record.text.endswith("x" * filler) for record in found.values())


def _writer(path: str, worker: int, start: multiprocessing.synchronize.Event) -> None:
    start.wait(30)
    with CallStore(path) as store:
        for i in range(300):
            shared = i % 3 == 0  # both workers write these: same call, same answer
            store.put(CallRecord.create(
                CallIdentity(provider="openai", base_url=None, model="m",
                             messages=[{"role": "user",
                                        "content": f"q{i}" if shared else f"w{worker}-{i}"}],
                             settings={}, sample_index=0),
                status="ok",
                text=f"a{i}" if shared else f"w{worker}", teacher=f"T{worker}"))


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "fresh" / "calls.sqlite")  # both create the file at once
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [context.Process(target=_writer, args=(path, w, start)) for w in (1, 2)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    alive = [w for w in workers if w.is_alive()]
    for worker in alive:
        worker.kill()
    assert not alive and [w.exitcode for w in workers] == [0, 0]
    with CallStore(path) as store:
        records = list(store.records())
    shared = [r for r in records if r.messages[0]["content"].startswith("q")]
    assert len(shared) == 100 and all(r.text == "a" + r.messages[0]["content"][1:]
                                      for r in shared)
    for worker in (1, 2):
        own = [r for r in records if r.messages[0]["content"].startswith(f"w{worker}-")]
        assert len(own) == 200 and all(r.text == f"w{worker}" for r in own)
    assert len(records) == 500


# 64 tasks store records through the group commit; each prints "S key" when it hands its
# record over and "A key" once commit() has returned (the store acknowledged it durable).
GROUP_CHILD = CHILD_SETUP + r"""
import asyncio

def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

async def task(t):
    for i in range(1_000_000):
        record = make(f"{t}-{i}")
        say("S " + record.key)
        await store.commit(record)
        say("A " + record.key)
        if i % 20 == 0:
            say(f"G {store.commits.largest}")

async def main():
    await asyncio.gather(*(task(t) for t in range(64)))

asyncio.run(main())
"""


@pytest.mark.parametrize("kill_after_s,filler", [(0.05, 100), (0.3, 4000), (0.6, 100)])
def test_kill_9_while_a_group_waits_for_its_commit_loses_no_acknowledged_call(
        tmp_path: Path, kill_after_s: float, filler: int) -> None:
    path = tmp_path / "calls.sqlite"
    lines = run_and_kill(GROUP_CHILD, path, filler, kill_after_s,
                         lambda lines: any(line.startswith("A ") for line in lines))
    complete = [line.split() for line in lines]
    submitted = {value for kind, value in complete if kind == "S"}
    acknowledged = {value for kind, value in complete if kind == "A"}
    groups = [int(value) for kind, value in complete if kind == "G"]
    assert acknowledged and max(groups) > 1  # calls were committed in groups
    waiting = submitted - acknowledged
    assert len(waiting) > 1  # the kill came while a group was handed over, not yet durable

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with CallStore(path) as store:
        found = store.get_many(acknowledged)
        assert set(found) == acknowledged  # no acknowledged call is lost
        assert all(record.text.endswith("x" * filler) for record in found.values())
        # what else is there was handed over (a group committed as the child died)
        extra = {record.key for record in store.records()} - acknowledged
        assert extra <= submitted
