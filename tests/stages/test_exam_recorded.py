"""A run on recorded answers: the paper authors' exam and committee answer a tiny spec with no
network call, provenance reaches the call store and the record, the record replays, and a
question the files lack is an error that lists it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from recorded_runs import TRAIN_ROWS, authors_rows, spec_text

from fairspec.cli import cli


@pytest.fixture
def no_network(monkeypatch):
    def refuse(self, address):  # noqa: ANN001
        raise AssertionError(f"a network connection to {address} was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def run(folder: Path, *args: str):
    result = CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)
    return result


def test_recorded_exam_and_teachers_answer_with_no_network_call(tmp_path, no_network, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(spec_text(tmp_path))
    result = run(tmp_path, "spec.yaml", "--until", "build")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "rec"
    mistakes = [json.loads(line) for line in (run_dir / "exam" / "mistakes.jsonl").open()]
    listed = authors_rows("false")
    assert [m["index"] for m in mistakes] == [r["id"] for r in listed]
    assert mistakes[0]["output"] == listed[0]["student_wrong_pred"]
    exam = json.loads((run_dir / "exam" / "stats.json").read_text())
    assert exam["total"] == TRAIN_ROWS and exam["correct"] == TRAIN_ROWS - len(listed)
    rationales = [json.loads(line) for line in (run_dir / "teach" / "rationales.jsonl").open()]
    by = {(r["index"], r["teacher"]): r["text"] for r in rationales}
    source = {r["id"]: r for r in authors_rows("rationale")}
    assert by[(listed[0]["id"], "mixtral")] == source[listed[0]["id"]]["mistral_rationale"][0]
    teach = json.loads((run_dir / "teach" / "stats.json").read_text())
    assert teach["calls_made"] == 0 and teach["usd"] == 0
    assert {t["recorded"] for t in teach["teachers"].values()} == {2 * len(listed)}
    # the authors' rule on their scores: a rationale is kept when its two scores average > 3
    accepted = {(r["index"], r["teacher"]) for r in
                (json.loads(line) for line in (run_dir / "review" / "accepted.jsonl").open())}
    names = {"gpt": "gpt", "gemini": "gemini", "mixtral": "mistral"}
    expected = {(i, t) for i, row in source.items() for t, n in names.items()
                if row[f"{n}_rationale"][0].strip() and all(1 <= s <= 5 for s in row[f"{n}_rationale"][1:])
                and sum(row[f"{n}_rationale"][1:]) / 2 > 3}
    assert accepted == expected and accepted
    # provenance: every recorded call names its file and sha256, in the store's export too
    record = run_dir / "record"
    calls = [json.loads(line) for line in (record / "calls.jsonl").open()]
    assert calls and {c["provider"] for c in calls} == {"recorded"}
    provenance = calls[0]["settings"]["recorded"]
    assert provenance["rationale"]["file"] == "rationale.json"
    assert len(provenance["feedback"]["sha256"]) == 64
    assert sorted(p.name for p in (record / "recorded").iterdir()) == \
        ["false.json", "feedback.json", "rationale.json"]
    # the record replays to the same accepted rationales and training set, with no file
    # access outside it
    replayed = run(record, str(record / "spec.yaml"), "--replay", str(record / "calls.jsonl"),
                   "--until", "build")
    assert replayed.exit_code == 0, replayed.output
    rerun = record / "rerun" / "rec"
    for name in ("review/accepted.jsonl", "teach/feedback.jsonl", "build/preview.jsonl"):
        assert (rerun / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_a_question_the_files_lack_is_an_error_listing_it(tmp_path, no_network, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(spec_text(tmp_path))
    rows = authors_rows("feedback")
    dropped = rows.pop(1)
    (tmp_path / "feedback.json").write_text(json.dumps(rows))
    result = CliRunner().invoke(cli, ["run", "spec.yaml", "--until", "teach"])
    assert result.exit_code == 2, result.output
    assert f"row {dropped['id']}" in result.output
    assert "1 of " in result.output and "feedback calls have no recorded answer" in result.output
    for name in ("gpt", "gemini", "mixtral"):
        assert f"teacher {name}:" in result.output
    assert not (tmp_path / "runs" / "rec" / "teach" / "manifest.json").exists()


def test_an_exam_file_that_must_list_every_row_names_those_it_lacks(tmp_path, no_network,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(spec_text(tmp_path, only_mistakes=False))
    result = CliRunner().invoke(cli, ["run", "spec.yaml", "--until", "exam"])
    assert result.exit_code == 2, result.output
    missing = TRAIN_ROWS - len(authors_rows("false"))
    assert f"{missing} of {TRAIN_ROWS} train rows have no recorded answer" in result.output
    assert "only_mistakes: true" in result.output
