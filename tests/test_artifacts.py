"""Stage files: a whole JSONL written from a generator, and rows sorted on disk."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import pytest

from fairspec.artifacts import SortedJsonlWriter, read_jsonl, write_jsonl, write_manifest


def test_write_jsonl_takes_a_generator_and_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("old\n")

    def rows():
        yield {"i": 1}
        raise RuntimeError("the source failed half-way")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_text() == "old\n"  # a failed write leaves the old file, no temp file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]
    assert write_jsonl(path, ({"i": i} for i in range(3))) == 3
    assert [row["i"] for row in read_jsonl(path)] == [0, 1, 2]


def test_rows_spilled_to_runs_come_out_sorted_and_the_runs_are_removed(tmp_path: Path) -> None:
    keys = [(i, t) for i in range(700) for t in ("gamma", "alpha", "beta")]
    random.Random(7).shuffle(keys)
    writer = SortedJsonlWriter(tmp_path / "out.jsonl", key=lambda r: (r["index"], r["teacher"]),
                               run_rows=100)
    for index, teacher in keys:
        writer.add({"index": index, "teacher": teacher, "text": f"{teacher} on {index}"})
        assert len(writer._buffer) < 100  # never more than one run in memory
    assert len(writer._runs) == len(keys) // 100
    assert writer.finish() == len(keys)
    rows = list(read_jsonl(tmp_path / "out.jsonl"))
    assert [(r["index"], r["teacher"]) for r in rows] == sorted(keys)
    assert all(r["text"] == f"{r['teacher']} on {r['index']}" for r in rows)
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # the runs are gone


def test_equal_keys_keep_their_order_across_runs(tmp_path: Path) -> None:
    writer = SortedJsonlWriter(tmp_path / "out.jsonl", key=lambda r: r["k"], run_rows=3)
    for n in range(10):
        writer.add({"k": n % 2, "n": n})
    writer.finish()
    rows = list(read_jsonl(tmp_path / "out.jsonl"))
    assert [r["n"] for r in rows] == [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]


def test_a_discarded_writer_leaves_nothing(tmp_path: Path) -> None:
    writer = SortedJsonlWriter(tmp_path / "out.jsonl", key=lambda r: r["k"], run_rows=2)
    for n in range(5):
        writer.add({"k": n})
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_memory_of_a_large_sort_is_bounded_by_the_run_size(tmp_path: Path) -> None:
    text = "x" * 1000

    def peak(rows: int) -> int:
        writer = SortedJsonlWriter(tmp_path / f"out-{rows}.jsonl", key=lambda r: -r["i"],
                                   run_rows=500)
        tracemalloc.start()
        for i in range(rows):
            writer.add({"i": i, "text": text})
        writer.finish()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        first = json.loads((tmp_path / f"out-{rows}.jsonl").open().readline())
        assert first["i"] == rows - 1
        return top

    # 20,000 rows of 1 kB: 20 MB of text; what stays in memory is one run of 500 rows and,
    # while merging, a row and a file buffer per run
    assert peak(20_000) < 20_000 * len(text) / 10


# -- artifact layouts: versioned, read through one upgrade function each --------------------


def test_a_manifest_carries_its_layout_and_an_earlier_one_is_read_in_the_current_layout(tmp_path):
    from fairspec.artifacts import MANIFEST_SCHEMA_VERSION, is_done, output_damage, read_manifest

    (tmp_path / "out.txt").write_text("x")
    written = write_manifest(tmp_path, stage="s", fingerprint="f", inputs={}, outputs=["out.txt"],
                             counts={}, started=0.0)
    assert written["schema_version"] == MANIFEST_SCHEMA_VERSION == 2
    assert read_manifest(tmp_path)["files"]["out.txt"]["size"] == 1
    # a manifest of fairspec before file lists: done, its outputs not checked by content
    old = {"stage": "s", "fingerprint": "f", "inputs": {}, "outputs": ["out.txt"], "counts": {}}
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    assert read_manifest(tmp_path) == {**old, "files": None, "schema_version": 2}
    assert is_done(tmp_path, "f") and output_damage(tmp_path) is None
    # one a newer fairspec wrote is not misread as done: the stage runs again
    (tmp_path / "manifest.json").write_text(json.dumps({**old, "schema_version": 3, "files": {}}))
    assert read_manifest(tmp_path) is None and not is_done(tmp_path, "f")
    for junk in ("[1, 2]", '{"stage": "s"}', '{"fingerprint": "f", "schema_version": "2"}'):
        (tmp_path / "manifest.json").write_text(junk)
        assert read_manifest(tmp_path) is None, junk


def test_stats_carry_their_layout_and_an_earlier_one_is_upgraded(tmp_path):
    from fairspec.artifacts import STATS_SCHEMA_VERSION, upgrade_stats, write_stats

    written = write_stats(tmp_path / "stats.json", {"total": 3})
    assert json.loads((tmp_path / "stats.json").read_text()) == written == \
        {"schema_version": STATS_SCHEMA_VERSION, "total": 3}
    assert upgrade_stats({"total": 3}) == {"total": 3, "schema_version": 1}  # before versions
    assert upgrade_stats({"total": 3, "schema_version": 2}) is None  # a newer fairspec's
    assert upgrade_stats(None) is None and upgrade_stats([1]) is None
