"""Tests for fairspec.store.calls: put/get rules, stats, export/import, secrets."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from fairspec.errors import DataError, StoreDamaged
from fairspec.store import CallIdentity, CallRecord, CallStore, default_store_path, read_call_records
from fairspec.store.calls import SCHEMA_VERSION


def make(i: int = 0, *, status: str = "ok", text: str | None = "answer", model: str = "m",
         teacher: str = "T1", **fields) -> CallRecord:
    return CallRecord.create(
        CallIdentity(provider="openai", base_url="http://127.0.0.1:8000/v1", model=model,
                     messages=[{"role": "system", "content": "Teach."},
                               {"role": "user", "content": f"Question {i}: 東京 → ∑ ✓"}],
                     settings={"temperature": 0.7, "max_tokens": 64}, sample_index=i % 3),
        status=status, text=None if status == "error" else text, teacher=teacher, **fields)


@pytest.fixture
def store(tmp_path: Path):
    with CallStore(default_store_path(tmp_path / "run")) as opened:
        yield opened


def test_store_file_is_calls_sqlite_in_wal_mode(store: CallStore, tmp_path: Path) -> None:
    assert store.path == tmp_path / "run" / "calls.sqlite"
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_put_get_roundtrip_unicode_and_one_megabyte(store: CallStore) -> None:
    big = "Ünïcödé 東京 🚀 " * (1024 * 1024 // 16)
    record = make(1, text=big, finish_reason="stop", input_tokens=12, output_tokens=300_000,
                  latency_s=1.5, attempts=2, last_error="HTTP 429")
    assert len(big.encode()) > 1_000_000
    stored = store.put(record)
    assert stored == record
    assert store.get(record.key) == record
    assert store.get("0" * 64) is None


def test_reopened_store_keeps_records(tmp_path: Path) -> None:
    record = make(1)
    with CallStore(tmp_path / "c.sqlite") as store:
        store.put(record)
    with CallStore(tmp_path / "c.sqlite") as store:
        assert store.get(record.key) == record


def test_error_is_kept_but_does_not_count_as_done(store: CallStore) -> None:
    error = make(1, status="error", last_error="HTTP 500", attempts=3)
    store.put(error)
    assert store.get(error.key) is None
    assert store.get(error.key, include_errors=True) == error
    assert store.count() == 0 and store.count(include_errors=True) == 1


def test_success_replaces_error(store: CallStore) -> None:
    store.put(make(1, status="error", last_error="timeout"))
    success = make(1, text="42")
    assert store.put(success) == success
    assert store.get(success.key) == success
    assert store.count(include_errors=True) == 1


def test_error_never_replaces_a_completed_call(store: CallStore) -> None:
    success = make(1, status="empty", text="")
    store.put(success)
    assert store.put(make(1, status="error", last_error="HTTP 500")) == success
    assert store.get(success.key) == success


def test_older_error_does_not_replace_newer_error(store: CallStore) -> None:
    newer = make(1, status="error", last_error="new", created_at="2030-01-01T00:00:00.000+00:00")
    older = make(1, status="error", last_error="old", created_at="2020-01-01T00:00:00.000+00:00")
    store.put(newer)
    store.put(older)
    assert store.get(newer.key, include_errors=True).last_error == "new"


def test_first_completed_wins_and_warns(store: CallStore, caplog) -> None:
    first, second = make(1, text="first"), make(1, text="second")
    store.put(first)
    with caplog.at_level(logging.WARNING, logger="fairspec.store.calls"):
        assert store.put(second) == first
    assert store.get(first.key).text == "first"
    assert any("already completed" in r.getMessage() for r in caplog.records)


def test_same_completion_twice_is_silent(store: CallStore, caplog) -> None:
    store.put(make(1, text="same"))
    with caplog.at_level(logging.WARNING, logger="fairspec.store.calls"):
        store.put(make(1, text="same"))
    assert not caplog.records


def test_put_refuses_a_record_whose_key_does_not_match(store: CallStore) -> None:
    forged = dataclasses.replace(make(1), model="other-model")
    with pytest.raises(ValueError, match="does not match"):
        store.put(forged)


def test_last_error_quoting_a_key_is_redacted(store: CallStore) -> None:
    secret = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234"
    store.put(make(1, status="error", last_error=f"401 Incorrect API key provided: {secret}"))
    stored = store.get(make(1).key, include_errors=True)
    assert secret not in stored.last_error and "Incorrect API key" in stored.last_error
    store.close()
    raw = b"".join(p.read_bytes() for p in store.path.parent.glob("calls.sqlite*"))
    assert secret.encode() not in raw


def test_get_many_returns_completed_only_and_skips_missing(store: CallStore) -> None:
    done = [make(i) for i in range(5)]
    failed = make(10, status="error", last_error="x")
    for record in [*done, failed]:
        store.put(record)
    keys = [r.key for r in done] + [failed.key, "f" * 64, done[0].key]
    assert store.get_many(keys) == {r.key: r for r in done}
    assert failed.key in store.get_many(keys, include_errors=True)


def test_twenty_thousand_records_put_many_and_get_many(store: CallStore) -> None:
    records = [make(i, text=f"answer {i}", teacher=f"T{i % 3}") for i in range(20_000)]
    assert store.put_many(records) == 20_000
    assert store.count() == 20_000
    missing = [f"{i:064x}" for i in range(100)]
    found = store.get_many([r.key for r in records] + missing)
    assert len(found) == 20_000
    assert all(found[r.key].text == r.text for r in records)
    assert store.put_many(records) == 0


def test_stats_per_teacher_and_status(store: CallStore) -> None:
    store.put(make(1, teacher="A", input_tokens=10, output_tokens=5, latency_s=1.0))
    store.put(make(2, teacher="A", input_tokens=20, output_tokens=7, latency_s=3.0))
    store.put(make(3, teacher="A", status="error", last_error="x", attempts=4))
    store.put(make(4, teacher="B", status="truncated", text="..", output_tokens=64))
    stats = {(s.teacher, s.status): s for s in store.stats()}
    assert set(stats) == {("A", "ok"), ("A", "error"), ("B", "truncated")}
    ok = stats["A", "ok"]
    assert (ok.calls, ok.input_tokens, ok.output_tokens) == (2, 30, 12)
    assert (ok.latency_s_total, ok.latency_s_mean, ok.latency_s_max) == (4.0, 2.0, 3.0)
    assert stats["A", "error"].attempts == 4 and stats["A", "error"].latency_s_mean is None


def test_export_import_roundtrip(store: CallStore, tmp_path: Path) -> None:
    records = [make(1, text="ünï ✓\nline two"), make(2, status="empty", text=""),
               make(3, status="truncated", text="cut", finish_reason="length"),
               make(4, model="other", latency_s=0.125, input_tokens=1, output_tokens=2)]
    error = make(5, status="error", last_error="HTTP 503")
    for record in [*records, error]:
        store.put(record)
    first = tmp_path / "replay.jsonl"
    assert store.export_jsonl(first) == 4
    lines = first.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == sorted(r.key for r in records)
    assert all(list(json.loads(line))[:3] == ["key", "provider", "base_url"] for line in lines)

    with CallStore(tmp_path / "other" / "calls.sqlite") as other:
        assert other.import_jsonl(first) == 4
        assert other.import_jsonl(first) == 0
        assert sorted(other.records(), key=lambda r: r.key) == sorted(records, key=lambda r: r.key)
        second = tmp_path / "again.jsonl"
        other.export_jsonl(second)
    assert second.read_bytes() == first.read_bytes()


def test_export_of_chosen_keys_and_missing_key(store: CallStore, tmp_path: Path) -> None:
    a, b = make(1), make(2)
    store.put(a)
    store.put(b)
    assert store.export_jsonl(tmp_path / "one.jsonl", keys=[b.key]) == 1
    assert [r.key for r in read_call_records(tmp_path / "one.jsonl")] == [b.key]
    with pytest.raises(ValueError, match="no completed call"):
        store.export_jsonl(tmp_path / "two.jsonl", keys=[a.key, "e" * 64])
    assert not (tmp_path / "two.jsonl").exists()


def test_export_with_errors_imports_errors(store: CallStore, tmp_path: Path) -> None:
    error = make(1, status="error", last_error="boom")
    store.put(error)
    store.export_jsonl(tmp_path / "all.jsonl", include_errors=True)
    with CallStore(tmp_path / "b.sqlite") as other:
        assert other.import_jsonl(tmp_path / "all.jsonl") == 1
        assert other.get(error.key) is None
        assert other.get(error.key, include_errors=True) == error


def test_failed_export_leaves_the_old_file_and_no_temp(store: CallStore, tmp_path: Path,
                                                       monkeypatch) -> None:
    for i in range(3):
        store.put(make(i))
    target = tmp_path / "out" / "replay.jsonl"
    store.export_jsonl(target)
    before = target.read_bytes()
    store.put(make(7))
    calls = {"n": 0}
    original = CallRecord.to_json

    def failing(self: CallRecord) -> dict:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return original(self)

    monkeypatch.setattr(CallRecord, "to_json", failing)
    with pytest.raises(RuntimeError):
        store.export_jsonl(target)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["replay.jsonl"]


def test_import_rejects_a_tampered_line(store: CallStore, tmp_path: Path) -> None:
    data = make(1).to_json()
    data["text"] = "ok"
    data["model"] = "swapped"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(make(2).to_json()) + "\n" + json.dumps(data) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: key"):  # exit 2, no traceback
        store.import_jsonl(bad)
    bad.write_text("{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1"):
        store.import_jsonl(bad)
    assert store.count(include_errors=True) == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    CallStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreDamaged, match="schema 99.*upgrade fairspec"):  # exit 2, no traceback
        CallStore(path)


def test_puts_from_event_loop_and_worker_threads(store: CallStore) -> None:
    records = [make(i, text=f"t{i}") for i in range(60)]

    async def one(i: int, record: CallRecord) -> None:
        await asyncio.sleep((i % 7) / 1000)
        if i % 2:
            store.put(record)
        else:
            await asyncio.to_thread(store.put, record)

    async def main() -> None:
        await asyncio.gather(*(one(i, r) for i, r in enumerate(records)))

    asyncio.run(main())
    assert store.get_many([r.key for r in records]) == {r.key: r for r in records}


READING = {"how": "stated", "mass": 0.9, "distribution": {"1": 0.0, "2": 0.1, "3": 0.2, "4": 0.5,
                                                           "5": 0.2}}


def test_a_score_distribution_is_stored_exported_and_read_back(store: CallStore,
                                                               tmp_path: Path) -> None:
    with_reading = dataclasses.replace(make(1), score_logprobs=READING)
    store.put(with_reading)
    store.put(make(2))
    assert store.get(with_reading.key).score_logprobs == READING
    assert store.get(make(2).key).score_logprobs is None
    path = tmp_path / "calls.jsonl"
    store.export_jsonl(path)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_key = {line["key"]: line for line in lines}
    assert by_key[with_reading.key]["score_logprobs"] == READING
    assert "score_logprobs" not in by_key[make(2).key]  # records without one keep 0.1.0's form
    assert {r.key: r.score_logprobs for r in read_call_records(path)} == {
        with_reading.key: READING, make(2).key: None}


_SCHEMA_1 = """CREATE TABLE calls (key TEXT PRIMARY KEY, provider TEXT NOT NULL,
    base_url TEXT NOT NULL, model TEXT NOT NULL, messages TEXT NOT NULL, settings TEXT NOT NULL,
    sample_index INTEGER NOT NULL, status TEXT NOT NULL, text TEXT, finish_reason TEXT,
    input_tokens INTEGER, output_tokens INTEGER, latency_s REAL, attempts INTEGER NOT NULL,
    last_error TEXT, created_at TEXT NOT NULL, teacher TEXT NOT NULL) WITHOUT ROWID"""


def test_a_store_of_schema_1_is_upgraded_in_place_and_keeps_its_calls(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite"
    old = make(3)
    conn = sqlite3.connect(path)
    conn.execute(_SCHEMA_1)
    values = old.to_json()
    values["messages"] = json.dumps(values["messages"])
    values["settings"] = json.dumps(values["settings"])
    conn.execute(f"INSERT INTO calls VALUES ({', '.join('?' * len(values))})", tuple(values.values()))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with CallStore(path) as upgraded:
        assert upgraded.get(old.key) == old
        upgraded.put(dataclasses.replace(make(4), score_logprobs=READING))
        assert upgraded.get(make(4).key).score_logprobs == READING
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'calls'").fetchone()[0]
    assert "WITHOUT ROWID" not in table.upper()  # schema 3: a rowid table, a unique key index
    conn.close()


def test_a_store_of_schema_2_is_upgraded_in_place_and_keeps_its_calls(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite"
    kept = [dataclasses.replace(make(5), score_logprobs=READING), make(6)]
    conn = sqlite3.connect(path)
    conn.execute(_SCHEMA_1.replace("teacher TEXT NOT NULL)", "teacher TEXT NOT NULL, "
                                   "score_logprobs TEXT)"))
    conn.execute("CREATE INDEX calls_teacher_status ON calls (teacher, status)")
    for record in kept:
        values = record.to_json()
        values["messages"] = json.dumps(values["messages"])
        values["settings"] = json.dumps(values["settings"])
        values["score_logprobs"] = (json.dumps(values["score_logprobs"])
                                    if "score_logprobs" in values else None)
        conn.execute(f"INSERT INTO calls ({', '.join(values)}) VALUES "
                     f"({', '.join('?' * len(values))})", tuple(values.values()))
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with CallStore(path) as upgraded:
        assert [upgraded.get(r.key) for r in kept] == kept
        assert upgraded.count() == 2
        new = make(7)
        upgraded.put(new)
        assert upgraded.get(new.key) == new
    with CallStore(path) as again:  # opening an upgraded store changes nothing
        assert again.count() == 3
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'calls_%'"
                        ).fetchone()[0] == 1  # the index; the old table is gone
    conn.close()


_SCHEMA_3 = """CREATE TABLE calls (key TEXT NOT NULL UNIQUE, provider TEXT NOT NULL,
    base_url TEXT NOT NULL, model TEXT NOT NULL, messages TEXT NOT NULL, settings TEXT NOT NULL,
    sample_index INTEGER NOT NULL, status TEXT NOT NULL, text TEXT, finish_reason TEXT,
    input_tokens INTEGER, output_tokens INTEGER, latency_s REAL, attempts INTEGER NOT NULL,
    last_error TEXT, created_at TEXT NOT NULL, teacher TEXT NOT NULL, score_logprobs TEXT)"""


def test_a_store_of_schema_3_gains_the_billed_usage_columns_and_keeps_its_calls(
        tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite"
    kept = [make(8, input_tokens=40, output_tokens=9), make(9, status="error", last_error="x")]
    conn = sqlite3.connect(path)
    conn.execute(_SCHEMA_3)
    conn.execute("CREATE INDEX calls_teacher_status ON calls (teacher, status)")
    for record in kept:
        values = record.to_json()
        values["messages"] = json.dumps(values["messages"])
        values["settings"] = json.dumps(values["settings"])
        conn.execute(f"INSERT INTO calls ({', '.join(values)}) VALUES "
                     f"({', '.join('?' * len(values))})", tuple(values.values()))
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    billed = make(10, input_tokens=1000, output_tokens=300, cached_input_tokens=800,
                  reasoning_tokens=200)
    with CallStore(path) as upgraded:
        assert [upgraded.get(r.key, include_errors=True) for r in kept] == kept
        assert upgraded.get(kept[0].key).cached_input_tokens is None  # not reported then
        upgraded.put(billed)
    with CallStore(path) as again:  # reopened: the new columns hold what was put
        found = again.get(billed.key)
        assert (found.cached_input_tokens, found.reasoning_tokens) == (800, 200)
        assert again.count(include_errors=True) == 3
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    columns = [row[1] for row in conn.execute("PRAGMA table_info(calls)")]
    assert columns[-2:] == ["cached_input_tokens", "reasoning_tokens"]
    conn.close()


def test_billed_usage_is_stored_summed_exported_and_read_back(store: CallStore,
                                                             tmp_path: Path) -> None:
    billed = make(11, teacher="A", input_tokens=1000, output_tokens=300,
                  cached_input_tokens=800, reasoning_tokens=200)
    plain = make(12, teacher="A", input_tokens=50, output_tokens=5)
    store.put(billed)
    store.put(plain)
    assert store.get(billed.key) == billed
    ok = {(s.teacher, s.status): s for s in store.stats()}["A", "ok"]
    assert (ok.input_tokens, ok.cached_input_tokens, ok.output_tokens, ok.reasoning_tokens) == \
        (1050, 800, 305, 200)
    path = tmp_path / "calls.jsonl"
    store.export_jsonl(path)
    lines = {line["key"]: line for line in map(json.loads, path.read_text().splitlines())}
    assert (lines[billed.key]["cached_input_tokens"], lines[billed.key]["reasoning_tokens"]) == \
        (800, 200)
    # a call with no billed details keeps the JSON form of older fairspec versions
    assert "cached_input_tokens" not in lines[plain.key]
    assert "reasoning_tokens" not in lines[plain.key]
    assert {r.key: r for r in read_call_records(path)} == {billed.key: billed, plain.key: plain}


def test_completed_calls_reads_without_a_lock_and_names_a_file_that_is_not_a_store(tmp_path):
    """The plan's read of the store (``completed_calls``): the completed calls among the keys
    asked, through a read-only connection that works while a run holds the write lock."""
    from fairspec.store import completed_calls

    path = tmp_path / "calls.sqlite"
    ok, failed = make(1, text="fine", output_tokens=7), make(2, status="error")
    with CallStore(path) as store:
        store.put(ok)
        store.put(failed)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a run writing: the plan still reads
    try:
        found = completed_calls(path, [ok.key, failed.key, "0" * 64, ok.key])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert found == {ok.key: ("ok", "fine", 7)}  # errors and unknown keys are not answers
    assert completed_calls(path, []) == {}
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreDamaged, match="not a readable call store"):
        completed_calls(junk, [ok.key])
