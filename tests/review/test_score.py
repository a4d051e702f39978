"""Tests for fairspec.review.score: reading the score out of a peer-review reply (Figure 4)."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import pytest

from fairspec.review import ScoredReview, parse_score
from fairspec.review.score import score_span

TEACHERS = ("gpt", "gemini", "mistral")
RECORDS = "fair-authors-record"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # bracketed: the last bracket wins
        ("The rationale is correct and every step follows. Score: [5]", 5),
        ("[4]", 4),
        ("[ 4 ]", 4),
        ("Final score: [4/5]", 4),
        ("[Score: 3]", 3),
        ("My first impression is [3] ... but on reflection the steps hold up: [4]", 4),
        ("There are 5 steps and step 3 is wrong. [2]", 2),
        ("Score: 5. Actually the division is wrong, so [2]", 2),  # bracket beats later prose
        ("See [1, 2] for the rules. The rationale is sound. Score: 4", 4),  # no score bracket
        ("The student's [citation] is fine. Score: 3", 3),
        # clearly stated in prose
        ("Score: 4", 4),
        ("score: 4", 4),
        ("**Score:** 4", 4),
        ("Score: **5**", 5),
        ("The rationale is clear. I give it a score of 4.", 4),
        ("I would give it a 4", 4),
        ("I'd give this rationale a 5 because it is complete.", 5),
        ("I'd rate it 4/5", 4),
        ("Rating: 3", 3),
        ("I would rate this rationale as 2 out of 5", 2),
        ("Overall, 4 out of 5.", 4),
        ("Overall 4/5.", 4),
        ("The final score is 1 since the answer is wrong.", 1),
        ("Some steps are unclear.\n\n**2**", 2),
        ("Score:\n\n3", 3),
        ("Let's think step by step. 12 * 5 = 60 and 60 / 6 = 10, which matches the hint.\n5", 5),
        ("Step 1 computes 20/5 = 4 correctly. Score: 5", 5),  # 20/5 is arithmetic
        ("Score: 3 ... on second thought, score: 4", 4),
        # a reply that is only a number
        ("4", 4),
        ("4.", 4),
        ("  5\n", 5),
        ("**4**", 4),
        # invalid: out of range, non-integer, foreign scale, negative
        ("Score: 7", None),
        ("[0]", None),
        ("[6/5]", None),
        ("[4.5]", None),
        ("Score: 3.5", None),
        ("[8/10]", None),
        ("I'd rate it 8/10", None),
        ("Score: -1", None),
        ("[3] ... final answer [10]", None),  # the last bracket decides, even when invalid
        ("Score: 4\n83", None),  # the last line (a stray answer) decides
        # no score at all
        ("no score here", None),
        ("The answer is 10.", None),
        ("The rationale computes 290 / 2 = 145 bananas per group.", None),
        ("", None),
        ("   \n\t", None),
    ],
)
def test_parse_score_reads_a_review_reply(reply: str, expected: int | None) -> None:
    assert parse_score(reply) == expected
    # the span log-probability scoring reads at holds exactly the number that was read
    span = score_span(reply)
    if expected is None:
        assert span is None
    else:
        assert span is not None and float(reply[span[0]:span[1]]) == expected
        assert reply[span[0]] == str(expected)[0]


def test_a_whole_decimal_is_that_integer() -> None:
    assert parse_score("[4.0]") == 4
    assert parse_score("Score: 5.00") == 5


def test_score_range_sets_the_scale() -> None:
    assert parse_score("Score: 7", score_range=(1, 10)) == 7
    assert parse_score("[8/10]", score_range=(1, 10)) == 8
    assert parse_score("[4/5]", score_range=(1, 10)) is None  # a 1-5 score is not on 1-10
    assert parse_score("[0]", score_range=(0, 3)) == 0
    assert parse_score("0", score_range=(0, 3)) == 0
    assert parse_score("Overall 0/3.", score_range=(0, 3)) == 0


@pytest.mark.parametrize("bad", [(5, 1), (3, 3), (1,), (1, 2, 3), ("1", "5"), (1.0, 5.0), None])
def test_a_malformed_score_range_raises(bad: object) -> None:
    with pytest.raises(ValueError, match="score_range"):
        parse_score("[4]", score_range=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [None, 4, 4.0, b"[4]", ["[4]"], object()])
def test_anything_but_a_string_is_no_score(text: object) -> None:
    assert parse_score(text) is None


def test_parse_score_never_raises_on_random_text() -> None:
    rng = random.Random(20240501)
    alphabet = "[]/ .*:=-\n0123456789scoreSCORErateitgvoufa\x00é€"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        score = parse_score(text)
        assert score is None or 1 <= score <= 5, text


@pytest.mark.parametrize(
    "text",
    [
        "score" + " " * 200_000 + "x",
        "[ " * 200_000,
        "1/" * 200_000,
        "score: " * 200_000,
        "rate it " * 100_000,
        "* " * 200_000,
        " " * 200_000 + "4" + " " * 200_000 + "x",
    ],
    ids=["spaces", "brackets", "fractions", "scores", "rates", "stars", "padded-number"],
)
def test_parse_score_is_linear_on_huge_adversarial_text(text: str) -> None:
    start = time.perf_counter()
    assert parse_score(text) is None
    assert time.perf_counter() - start < 5  # polynomial backtracking would take minutes


def test_a_huge_reply_still_yields_its_final_score() -> None:
    reply = "Step by step, the reasoning is sound. " * 50_000 + "Score: [4]"
    assert parse_score(reply) == 4


def test_scored_review_keeps_the_raw_text_and_the_score() -> None:
    review = ScoredReview.parse("gemini", "Sound reasoning. [5]")
    assert review == ScoredReview(reviewer="gemini", text="Sound reasoning. [5]", score=5)
    assert ScoredReview.parse("gpt", None).score is None
    assert ScoredReview.parse("gpt", "[7/10]", score_range=(1, 10)).score == 7


# -- real values from the authors' record ---------------------------------------------------


def test_stored_scores_read_back_as_the_authors_valid_scores(shared_data: Path) -> None:
    """The record stores ints; the authors counted only 1-5 (0 was their parse failure)."""
    path = shared_data / RECORDS / "Llama-2-7b-chat-hf_svamp_rationale_round0.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    stored = [s for sample in record for t in TEACHERS for s in sample[f"{t}_rationale"][1:]]
    assert {type(s) for s in stored} == {int}
    for value in stored:
        expected = value if 1 <= value <= 5 else None
        assert parse_score(str(value)) == expected
        assert parse_score(f"[{value}]") == expected
        assert parse_score(f"Score: {value}") == expected
    assert [s for s in stored if parse_score(str(s)) is None] == [83, 0]


def test_real_teacher_texts_never_break_the_parser(shared_data: Path) -> None:
    """Every rationale and feedback text in the record parses without error to None or 1-5."""
    texts: list[str] = []
    for name in ("rationale", "feedback"):
        path = shared_data / RECORDS / f"Llama-2-7b-chat-hf_svamp_{name}_round0.json"
        for sample in json.loads(path.read_text(encoding="utf-8")):
            for teacher in TEACHERS:
                value = sample[f"{teacher}_{name}"]
                texts.append(value[0] if isinstance(value, list) else value)
    assert len(texts) == 2 * 387 * 3
    scores = [parse_score(text) for text in texts]
    assert all(s is None or 1 <= s <= 5 for s in scores)
    # gemini's rationale for sample 84 is just the answer "83": a number, but not a score
    assert parse_score("83") is None


OLD_INSTRUCTION = "Write the number in square brackets, e.g. [4]."


@pytest.mark.parametrize("reply,expected", [
    # an echoed instruction followed by a low score is not read as the threshold
    (f"{OLD_INSTRUCTION} Let me check the steps. The rationale is wrong. [2]", 2),
    (f"{OLD_INSTRUCTION}\nThe rationale is wrong.\nScore: 2", 2),
    (f"{OLD_INSTRUCTION} The rationale is wrong.", None),  # the copy alone is no score
    (OLD_INSTRUCTION, None),
    ("For example, a score of 4 means mostly right. This one is not: [1]", 1),
    ("[4] is what a lenient reviewer would give; I give [2]", 2),
    ("I give it [3] (format such as [5])", 3),
    ("Score: 2/5", 2),
    ("[10]", None),  # out of range: never clamped
    ("[4.5]", None),  # never rounded
    ("I would like to give it a 3", 3),  # "like" alone is no example marker
    ("Score: [3]\n\nNote: a score like [5] would mean a flawless rationale.", 3),
    ("Scores like 5 are for flawless work; this one gets [2].", 2),
])
def test_an_example_is_not_a_score(reply: str, expected: int | None) -> None:
    assert parse_score(reply) == expected


def test_the_span_skips_an_example_score() -> None:
    reply = f"{OLD_INSTRUCTION} Wrong. [2]"
    assert score_span(reply) == (len(reply) - 2, len(reply) - 1)


@pytest.mark.parametrize("template", ["review.j2", "logiqa/review.j2"])
def test_the_builtin_review_prompt_gives_no_score_in_range(template: str) -> None:
    from fairspec.resources import resource_root

    text = (resource_root() / "prompts" / template).read_text()
    numbers = {int(n) for n in re.findall(r"\d+", text)}
    assert not numbers & set(range(1, 6)), numbers
    assert "e.g." not in text and "square brackets" in text
    # its own echo (the whole instruction, as an echo server answers) reads no score
    assert parse_score(text.splitlines()[0]) is None
