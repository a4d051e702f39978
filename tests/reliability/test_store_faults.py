"""Paid answers are not lost when the call store cannot commit for a while: a transaction
that fails (the store locked by another program past the busy timeout, a full disk) is
tried again; one that never succeeds stops the stage with exit-2 StoreWriteFailed saying
how many answered calls could not be saved, every other call saved, and the rerun asks
only those again."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from katan_runs import TEST_KEY, svamp_mistakes, teacher_line
from strict_openai import StrictOpenAI

from fairspec.errors import StoreWriteFailed
from fairspec.run.executor import run_stage
from fairspec.store import CallStore


@pytest.fixture
def quick_store(monkeypatch):
    """A store that gives up on a lock after 0.2 s, and pauses 0.05 s between commit tries."""
    import fairspec.store.calls as calls
    import fairspec.store.group_commit as group_commit

    monkeypatch.setattr(calls, "BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(group_commit, "COMMIT_PAUSE_S", 0.05)


def locked(path: Path, seconds: float | None) -> threading.Event:
    """Hold ``path``'s write lock from another connection for ``seconds`` (None: until the
    returned event is set)."""
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        held.set()
        release.wait(seconds)
        conn.execute("COMMIT")
        conn.close()

    threading.Thread(target=hold, daemon=True).start()
    held.wait(10)
    return release


def teach(katan_run, url: str, base: Path):
    teachers = teacher_line("alpha", url, model="gpt-4o") + teacher_line("beta", url, model="gpt-4.1")
    return katan_run(teachers, base=base, mistakes=svamp_mistakes(3), review="{enabled: false}").run


def test_a_store_locked_for_a_while_loses_no_answer(tmp_path, katan_key, katan_run, quick_store):
    with StrictOpenAI(key=TEST_KEY) as server, CallStore(tmp_path / "calls.sqlite") as store:
        run = teach(katan_run, server.url, tmp_path)
        locked(store.path, 0.4)  # past the busy timeout: the first tries fail, a later one not
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        assert len(server.received) == 12  # 3 mistakes x 2 teachers x 2 roles, each once
        assert len(store.query("select key from calls where status != 'error'")) == 12


def test_a_store_that_never_commits_stops_saying_how_many_calls_it_lost(
        tmp_path, katan_key, katan_run, quick_store):
    with StrictOpenAI(key=TEST_KEY) as server:
        run = teach(katan_run, server.url, tmp_path)
        store_path = tmp_path / "calls.sqlite"
        with CallStore(store_path) as store:
            release = locked(store_path, None)
            with pytest.raises(StoreWriteFailed) as stopped:
                run_stage(run, "teach", base_dir=tmp_path, store=store)
            release.set()
        message = str(stopped.value)
        assert "could not be saved in the call store" in message and "database is locked" in message
        lost = int(message.split(" answered")[0])
        assert 1 <= lost <= 12
        asked = len(server.received)
        with CallStore(store_path) as store:  # the lock is gone: the rerun finishes
            run_stage(run, "teach", base_dir=tmp_path, store=store)
            saved = len(store.query("select key from calls where status != 'error'"))
        assert saved == 12
        # the rerun asked the calls the store could not keep, and no saved one again
        assert len(server.received) - asked == 12 - (asked - lost)


def test_a_full_disk_loses_no_answer_that_could_be_saved(tmp_path, katan_key, katan_run, quick_store,
                                                          monkeypatch):
    """SQLITE_FULL ("database or disk is full", what SQLite says on ENOSPC), made by capping
    the writer's database size: the stage stops with exit-2 StoreWriteFailed counting the
    answers it could not save, and once there is room the rerun asks exactly those again."""
    import fairspec.store.calls as calls

    connect = calls.CallStore._connect
    room = {"pages": None}

    def capped(self):
        conn = connect(self)
        if room["pages"] is not None:
            conn.execute(f"PRAGMA max_page_count = {room['pages']}")
        return conn

    monkeypatch.setattr(calls.CallStore, "_connect", capped)
    with StrictOpenAI(key=TEST_KEY) as server:
        run = teach(katan_run, server.url, tmp_path)
        store_path = tmp_path / "calls.sqlite"
        with CallStore(store_path) as store:
            room["pages"] = store.query("PRAGMA page_count")[0][0]  # full: not one page more
            with pytest.raises(StoreWriteFailed) as stopped:
                run_stage(run, "teach", base_dir=tmp_path, store=store)
        message = str(stopped.value)
        assert "could not be saved in the call store" in message
        assert "database or disk is full" in message, message
        lost = int(message.split(" answered")[0])
        assert 1 <= lost <= 12
        asked = len(server.received)
        room["pages"] = None  # room again
        with CallStore(store_path) as store:
            run_stage(run, "teach", base_dir=tmp_path, store=store)
            assert len(store.query("select key from calls where status != 'error'")) == 12
        assert len(server.received) - asked == 12 - (asked - lost)


def test_a_store_locked_at_start_says_so_at_once_then_waits_for_it(tmp_path, monkeypatch, caplog):
    import time

    import fairspec.store.calls as calls
    from fairspec.errors import StoreDamaged

    monkeypatch.setattr(calls, "SAY_LOCKED_AFTER_MS", 100)
    monkeypatch.setattr(calls, "BUSY_TIMEOUT_MS", 3_000)
    path = tmp_path / "calls.sqlite"
    CallStore(path).close()
    # held for a second: a line after 0.1 s, then the store opens when the lock goes
    locked(path, 1.0)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="fairspec.store.calls"), CallStore(path) as store:
        waited = time.monotonic() - started
        assert store.count() == 0
    assert 0.5 < waited < 3.0
    (said,) = [r.getMessage() for r in caplog.records if "locked by another program" in r.getMessage()]
    assert str(path) in said and "waiting up to 2.9 s more" in said
    # held for good: the located error once the whole wait is over, not before
    monkeypatch.setattr(calls, "BUSY_TIMEOUT_MS", 600)
    release = locked(path, None)
    started = time.monotonic()
    with pytest.raises(StoreDamaged) as stopped:
        CallStore(path)
    release.set()
    assert 0.5 < time.monotonic() - started < 5
    assert "locked by another process for over 0.6 s" in str(stopped.value)
