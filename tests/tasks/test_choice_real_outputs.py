"""The ``choice`` extractor on what the tiny student really writes on LogiQA.

``fixtures/logiqa_tiny_outputs.json`` holds SmolLM2-135M-Instruct's outputs on LogiQA train
rows 0-11 in the builtin multiple-choice exam prompt, with and without the chat template
(how they were made: ``fixtures/make_logiqa_outputs.py``). Each expected letter below was
read off its output by hand: the option the output states as its answer, or None where it
states none. The file is committed, so these tests need no shared data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairspec.tasks import answers_match, extract_answer

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "logiqa_tiny_outputs.json"
LETTERS = "ABCD"

# (row, setting) -> the letter a careful reader takes from the output, and why where it is
# not plain; rows are LogiQA train positions
EXPECTED: dict[tuple[int, str], tuple[str | None, str]] = {
    (0, "chat"): ("C", "'C.' and 'The correct answer is C.', though with option B's text"),
    (1, "chat"): ("A", "opens 'A. <option A>', then 'The answer is A.'"),
    (2, "chat"): ("C", "'C.' then 'The answer is: C.'"),
    (3, "chat"): ("A", "opens with option A, letter and text"),
    (4, "chat"): ("B", "'Answer: B'"),
    (5, "chat"): ("D", "opens with option D, letter and text"),
    (6, "chat"): ("C", "opens 'C. <option C's opening>' and rambles on"),
    (7, "chat"): ("A", "'Answer: A'"),
    (8, "chat"): ("B", "opens with option B, letter and text"),
    (9, "chat"): ("C", "opens with option C, letter and text"),
    (10, "chat"): ("B", "opens with option B, letter and text"),
    (11, "chat"): ("D", "opens with option D, letter and text"),
    (0, "plain"): ("C", "'The answer is: C.'; the later 'The answer is: A.' answers a question "
                        "the model made up, with other options"),
    (1, "plain"): ("A", "opens with option D, then 'The answer is:' and 'A' on the next line: "
                        "its final word"),
    (2, "plain"): ("D", "opens with option D, letter and text; the 'The answer is:' after it "
                        "is left empty"),
    (3, "plain"): ("A", "'Answer: A'"),
    (4, "plain"): (None, "repeats the instruction, then lists the bare letters A. to D."),
    (5, "plain"): (None, "'Answer:' and nothing after it"),
    (6, "plain"): ("A", "'Answer: A'"),
    (7, "plain"): (None, "'Answer:' and nothing after it"),
    (8, "plain"): (None, "'The answer is:' and nothing after it"),
    (9, "plain"): (None, "'The answer is:' and nothing after it"),
    (10, "plain"): ("A", "'The answer is: A'"),
    (11, "plain"): ("D", "opens with option D, then 'The answer is: D. <option D>'"),
}

#: where the extractor reads otherwise than a careful reader (fairspec.tasks.extract)
KNOWN_MISREADS = {
    (0, "plain"): "the last answer marker wins, even one inside a question the model went on "
                  "to invent: reads A",
    (4, "plain"): "'the best answer to the question:' is read as an answer marker and the "
                  "listed 'A.' on the next line as its value: reads A",
}


def rows() -> dict[int, dict]:
    return {row["index"]: row for row in json.loads(FIXTURE.read_text(encoding="utf-8"))["rows"]}


def cases() -> list:
    params = []
    for (index, setting), (letter, why) in EXPECTED.items():
        marks = ([pytest.mark.xfail(strict=True, reason=KNOWN_MISREADS[(index, setting)])]
                 if (index, setting) in KNOWN_MISREADS else [])
        params.append(pytest.param(index, setting, letter, why, marks=marks, id=f"{setting}-{index}"))
    return params


def test_the_fixture_holds_every_row_and_setting_once():
    data = rows()
    assert sorted(data) == list(range(12))
    for row in data.values():
        assert len(row["options"]) == 4 and row["gold"] in range(4)
        assert sorted(row["outputs"]) == ["chat", "plain"] and all(row["outputs"].values())
    assert sorted(EXPECTED) == sorted((i, s) for i in range(12) for s in ("chat", "plain"))
    assert set(KNOWN_MISREADS) <= set(EXPECTED)


@pytest.mark.parametrize("index,setting,letter,why", cases())
def test_choice_extractor_reads_the_letter_a_careful_reader_reads(index, setting, letter, why):
    row = rows()[index]
    output = row["outputs"][setting]
    got = extract_answer("choice", output, row["options"])
    assert (None if got is None else LETTERS[got]) == letter, f"{why}\n---\n{output}"
    # the exam scores it right exactly when that letter is the gold option
    assert answers_match("choice", got, row["gold"]) == (letter == LETTERS[row["gold"]])
