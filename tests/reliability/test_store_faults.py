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
