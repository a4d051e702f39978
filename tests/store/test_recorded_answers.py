"""Recorded answers: files of rows found by question text or row position, a teacher's
rationale, feedback and review score read from their columns, what is missing named."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from fairspec.resources import resource_root
from fairspec.store.recorded_answers import (
    About,
    RecordedColumn,
    RecordedError,
    RecordedTable,
    RecordedTeacher,
    missing_message,
)

AUTHORS = resource_root() / "data" / "fair-authors-svamp"
ROWS = [
    {"id": 3, "question": "Tom has 3  apples.\nHow many?", "gpt_rationale": ["3 apples.", 5, 4],
     "mistral_rationale": ["Three.", 2, 3], "gpt_feedback": "Count again."},
    {"id": 7, "question": "What is 2+2?", "gpt_rationale": ["2+2=4", 1, 5],
     "mistral_rationale": ["", 4, 4], "gpt_feedback": None},
]


def write_json(path: Path, rows: list, *, gz: bool = False) -> Path:
    data = json.dumps(rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_rows_are_found_by_question_text_whitespace_aside_or_by_position(tmp_path: Path) -> None:
    by_text = RecordedTable(write_json(tmp_path / "r.json", ROWS))
    assert by_text.find(0, "Tom has 3 apples. How many?")["id"] == 3
    assert by_text.find(3, "Tom has 4 apples. How many?") is None
    by_index = RecordedTable(write_json(tmp_path / "r.json.gz", ROWS, gz=True), match="index")
    assert by_index.find(7, "anything")["question"] == "What is 2+2?"
    assert by_index.find(0, "What is 2+2?") is None
    assert "gpt_feedback" in by_index.columns and len(by_index.sha256) == 64


def test_jsonl_and_csv_files(tmp_path: Path) -> None:
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    assert RecordedTable(jsonl, match="index").find(3, "")["gpt_feedback"] == "Count again."
    with (tmp_path / "r.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["question", "answer"])
        writer.writeheader()
        writer.writerow({"question": "What is 2+2?", "answer": "5"})
    assert RecordedTable(tmp_path / "r.csv").find(0, "What is 2+2?")["answer"] == "5"


def test_unreadable_files_and_rows_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('[{"question": "a"}, ')
    with pytest.raises(RecordedError, match=r"bad.json:1:\d+: invalid JSON"):
        RecordedTable(tmp_path / "bad.json")
    with pytest.raises(RecordedError, match="row 1 has no 'question' column"):
        RecordedTable(write_json(tmp_path / "r.json", [{"question": "a"}, {"q": "b"}]))
    with pytest.raises(RecordedError, match="not an integer"):
        RecordedTable(write_json(tmp_path / "i.json", [{"id": "x"}]), match="index")
    (tmp_path / "r.txt").write_text("[]")
    with pytest.raises(RecordedError, match="unsupported"):
        RecordedTable(tmp_path / "r.txt")


def teacher(tmp_path: Path, name: str = "gpt") -> RecordedTeacher:
    table = RecordedTable(write_json(tmp_path / "r.json", ROWS), match="index")
    return RecordedTeacher(name, {
        "rationale": RecordedColumn(table, "{teacher}_rationale", 0),
        "feedback": RecordedColumn(table, "{teacher}_feedback"),
        "review": RecordedColumn(table, "{author}_rationale", "reviewer_rank"),
    }, names={"gpt": "gpt", "mixtral": "mistral"})


def test_a_teacher_answers_each_role_from_its_column(tmp_path: Path) -> None:
    gpt = teacher(tmp_path)
    assert gpt.answer(About("rationale", 3, "")) == "3 apples."
    assert gpt.answer(About("feedback", 3, "")) == "Count again."
    # gpt reviews mixtral's rationale, named mistral in the file: its rank picks the score
    assert gpt.answer(About("review", 3, "", author="mixtral", rank=1)) == "[2]"
    assert gpt.answer(About("review", 3, "", author="mixtral", rank=2)) == "[3]"
    # nothing recorded: None (an empty text, a null cell, a row that is not there)
    assert gpt.answer(About("feedback", 7, "")) is None
    assert teacher(tmp_path, "mixtral").answer(About("rationale", 7, "")) is None
    assert gpt.answer(About("rationale", 99, "")) is None
    missing = gpt.missing([About("feedback", 3, "q3"), About("feedback", 7, "What is 2+2?")])
    assert [m.index for m in missing] == [7]
    message = missing_message("gpt", missing, 2)
    assert "1 of 2 feedback calls" in message and "row 7" in message and "fallback" in message


def test_a_cell_without_the_item_or_a_score_that_is_no_number_is_an_error(tmp_path: Path) -> None:
    gpt = teacher(tmp_path)
    with pytest.raises(RecordedError, match="no item 3"):
        gpt.answer(About("review", 3, "", author="mixtral", rank=3))
    table = RecordedTable(write_json(tmp_path / "s.json", [{"id": 1, "s": ["t", "five"]},
                                                           {"id": 2, "s": "t"}]), match="index")
    reviewer = RecordedTeacher("x", {"review": RecordedColumn(table, "s", "reviewer_rank")})
    assert reviewer.answer(About("review", 1, "", author="y", rank=1)) == "[five]"  # read as text
    with pytest.raises(RecordedError, match="holds str"):
        reviewer.answer(About("review", 2, "", author="y", rank=1))
    with pytest.raises(RecordedError, match="no column 'gpt_nothing'"):
        RecordedTeacher("gpt", {"feedback": RecordedColumn(table, "{teacher}_nothing")}).answer(
            About("feedback", 1, ""))


def test_the_authors_record_as_shipped() -> None:
    """The shipped record: 387 questions, three teachers, two scores per rationale."""
    rationales = RecordedTable(AUTHORS / "Llama-2-7b-chat-hf_svamp_rationale_round0.json.gz",
                               match="index")
    assert len(rationales.rows) == 387
    names = {"gpt": "gpt", "gemini": "gemini", "mixtral": "mistral"}
    column = RecordedColumn(rationales, "{author}_rationale", "reviewer_rank")
    gemini = RecordedTeacher("gemini", {"review": column}, names)
    first = min(rationales.rows)
    scores = rationales.rows[first]["mistral_rationale"][1:]
    # gemini is mixtral's second reviewer (after gpt), so it gave the second score
    assert gemini.answer(About("review", first, "", author="mixtral", rank=2)) == f"[{scores[1]}]"
