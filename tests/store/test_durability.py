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
from pathlib import Path

import pytest

from fairspec.store import CallIdentity, CallRecord, CallStore

REPO_ROOT = Path(__file__).resolve().parents[2]

# Writes records one by one and prints each key only after put() has returned.
CHILD = r"""
import sys
from fairspec.store import CallIdentity, CallRecord, CallStore

store = CallStore(sys.argv[1])
filler = "x" * int(sys.argv[2])
for i in range(1_000_000):
    record = CallRecord.create(
        CallIdentity(provider="openai", base_url=None, model="teacher",
                     messages=[{"role": "user", "content": f"question {i}"}],
                     settings={"temperature": 0.5}, sample_index=0),
        status="ok", text=f"{i}:{filler}")
    store.put(record)
    sys.stdout.write(record.key + "\n")
    sys.stdout.flush()
"""


def _drain(pipe, lines: list[str]) -> None:
    # A reader thread, so the child never blocks on a full pipe: it is killed mid-write.
    for line in iter(pipe.readline, ""):
        lines.append(line)


@pytest.mark.parametrize("kill_after_s,filler", [(0.0, 100), (0.15, 4000), (0.4, 100),
                                                 (0.7, 20_000)])
def test_kill_9_loses_no_record_put_returned(tmp_path: Path, kill_after_s: float,
                                             filler: int) -> None:
    path = tmp_path / "calls.sqlite"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(filler)],
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=_drain, args=(child.stdout, lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not lines and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        assert lines, "the writer never completed a put"
        time.sleep(kill_after_s + random.uniform(0, 0.05))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        reader.join(timeout=30)
    assert child.returncode == -signal.SIGKILL
    printed = [line.strip() for line in lines if line.endswith("\n")]
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
