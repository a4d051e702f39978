"""Damaged state is never trusted: a finished stage whose outputs were deleted, truncated or
rewritten since its manifest is done again (a teacher stage from the call store, at no
cost) and ends as the undamaged run did; a call store that was emptied, truncated or
replaced by garbage stops the run with exit 2 naming it, never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hostile import recorded_exam_spec
from katan_runs import KEY_ENV, TEST_KEY, teacher_line
from strict_openai import StrictOpenAI

from fairspec.artifacts import read_jsonl

ENV = {**os.environ, KEY_ENV: TEST_KEY}


def run(folder: Path, command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=folder, env=ENV, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def outputs(folder: Path) -> dict[str, list[dict]]:
    teach = folder / "runs" / "katan-test" / "teach"
    return {name: list(read_jsonl(teach / name)) for name in ("rationales.jsonl", "feedback.jsonl")}


DAMAGE = {
    "deleted": lambda path: path.unlink(),
    "truncated": lambda path: path.write_text(path.read_text().splitlines(keepends=True)[0]),
    "rewritten": lambda path: path.write_text(path.read_text().replace("The answer", "An answer")),
    "junk line": lambda path: path.write_text("{not json\n" + path.read_text()),
}


@pytest.fixture
def finished(tmp_path):
    """A finished teach stage against the strict stand-in, and the command that ran it."""
    with StrictOpenAI(key=TEST_KEY) as server:
        command = recorded_exam_spec(tmp_path, teacher_line("alpha", server.url, model="gpt-4o")
                                     + teacher_line("beta", server.url, model="gpt-4.1"))
        done = run(tmp_path, command)
        assert done.returncode == 0, done.stderr
        yield tmp_path, command, server


@pytest.mark.slow  # three CLI runs each
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_output_is_done_again_from_the_store(finished, damage):
    folder, command, server = finished
    before, asked = outputs(folder), len(server.received)
    DAMAGE[damage](folder / "runs" / "katan-test" / "teach" / "feedback.jsonl")
    done = run(folder, command)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "teach: feedback.jsonl" in done.stderr and "done again" in done.stderr
    assert "teach: done" in done.stdout  # not "already done"
    assert outputs(folder) == before
    assert len(server.received) == asked  # every call came from the store
    again = run(folder, command)  # and now it is trusted again
    assert again.returncode == 0 and "teach: already done" in again.stdout


def test_an_emptied_store_stops_the_run_naming_what_it_lost(finished):
    folder, command, server = finished
    store = folder / "runs" / "calls.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    sqlite3.connect(store).close()  # an empty file where the store was
    done = run(folder, command)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "lacks 16 of the 16 teacher calls" in done.stderr
    assert "Put the store back" in done.stderr


@pytest.mark.parametrize("content", [b"garbage, not sqlite" * 100, b"SQLite format 3\x00" + b"\x00" * 50])
def test_a_store_that_is_not_a_store_is_exit_2(finished, content):
    folder, command, server = finished
    store = folder / "runs" / "calls.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    store.write_bytes(content)
    done = run(folder, command)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "not a readable call store" in done.stderr and "runs/calls.sqlite" in done.stderr


def test_readers_name_the_file_and_line_of_a_malformed_row(tmp_path):
    from fairspec.errors import DataError

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n[1, 2]\n{"a": 4}\n')
    with pytest.raises(DataError, match=r"rows.jsonl:3: not a JSON object per line"):
        list(read_jsonl(path))
    path.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(DataError, match=r"rows.jsonl:2:"):
        list(read_jsonl(path))
