"""Tests for fairspec.tasks.extract: every rule, its precedence, real model outputs, a fuzz loop.

Real outputs: the literal strings marked "real output" below are copied unchanged from the
paper authors' records of Llama-2-7B-chat's wrong answers (repository
zhuochunli/Learn-from-Committee, MIT License, copied to fixtures/LICENSE-fair-authors-record),
files Llama-2-7b-chat-hf_svamp_false_round0.json and
Llama-2-7b-chat-hf_strategyQA_false_round0.json; the record id is given with each. The
LogiQA-style choice texts are written for these tests (LogiQA has no license).
"""

from __future__ import annotations

import doctest
import json
import logging
import random
import re
from pathlib import Path

import pytest

import fairspec.tasks
import fairspec.tasks.extract as extract_module
from fairspec.tasks import ANSWER_KINDS, answers_match, extract_answer, parse_gold

OPTIONS = [
    "Some Cantonese love chili.",
    "Some people who like peppers are southerners.",
    "All Cantonese are southerners.",
    "Some Cantonese like neither peppers nor sweets.",
]
RECORDS = "fair-authors-record"


def _records(shared_data: Path, name: str) -> list[dict]:
    return json.loads(
        (shared_data / RECORDS / f"Llama-2-7b-chat-hf_{name}_false_round0.json").read_text(encoding="utf-8")
    )


def test_public_api_is_exported() -> None:
    assert set(fairspec.tasks.__all__) == {
        "ANSWER_KINDS", "DATA_SUFFIXES", "DataError", "DatasetSource", "LoadedSplit", "Row",
        "TASK_KINDS", "TaskKindInfo", "answers_match", "extract_answer", "gold_display",
        "load_rows", "parse_gold", "task_kind"}
    assert ANSWER_KINDS == ("number", "boolean", "choice", "regex")


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(extract_module)
    assert result.attempted >= 10 and result.failed == 0


# --- number ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I think 12 apples... The answer is 7", 7.0),
        ("The answer is 1,080.", 1080.0),
        ("It costs $18.50 in total.", 18.5),
        ("Answer: -5 degrees", -5.0),
        ("So x = -280.", -280.0),
        ("The temperature fell to \u221212 degrees", -12.0),
        ("The answer is 3/4 of a cup", 0.75),
        ("\\boxed{\\frac{3}{4}}", 0.75),
        ("\\boxed{1{,}080}", 1080.0),
        ("Answer: 10%", 10.0),
        ("Answer: 15 apples. Then 6 more were eaten.", 15.0),
        ("The answer is 7, because 3 + 4 = 7", 7.0),
        ("The answer is 7 because 2 + 3 = 5", 7.0),
        ("Answer: $186 - $172 = $14", 14.0),
        ("There were 3 cats and 4 dogs, so 7 animals.", 7.0),
        ("Paid $1,000,000.00 for it", 1_000_000.0),
        ("v2 has 3,4,5", 5.0),
    ],
)
def test_number_reads_the_stated_value(text: str, expected: float) -> None:
    assert extract_answer("number", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # boxed > #### > final answer > answer > last number
        ("Answer: 3\n#### 4\nso 5", 4.0),
        ("#### 4\n\\boxed{6} then 9", 6.0),
        ("The final answer is 42.\nAnswer: 7", 42.0),
        ("Answer: 3. Wait, recount. Answer: 4. Done in 10 minutes", 4.0),
        # a marker with nothing after it on its line is a header, not an answer
        ("Answer:\nRobin has 43 packs, 43 x 23 = 993, and 993 + 8 = 1001", 1001.0),
        ("Answer:\n\n18 apples\n\nsince 20 - 2", 18.0),
        ("Please answer: how many? 3 or 4 apples, 12 in all", 12.0),
    ],
)
def test_number_precedence(text: str, expected: float) -> None:
    assert extract_answer("number", text) == expected


@pytest.mark.parametrize("text", ["", "   \n", "no digits here", "Answer: seven", "Answer: 9/0", "9" * 500])
def test_number_without_a_readable_number_is_none(text: str) -> None:
    assert extract_answer("number", text) is None


def test_number_resolves_a_listed_option_letter() -> None:
    # real output, SVAMP id 285 (the model invented options, then answered with a letter)
    text = (
        "A) 728 sacks of ripe oranges\nB) 1,052 sacks of ripe oranges\nC) 1,304 sacks of ripe "
        "oranges\nD) 1,560 sacks of ripe oranges\n\nAnswer: B)"
    )
    assert extract_answer("number", text) == 1052.0


@pytest.mark.parametrize(
    ("text", "expected", "authors"),
    [
        # real output, SVAMP id 184: the authors' code read "9"
        ("Answer: 29", 29.0, 9.0),
        # real output, SVAMP id 545: the expression's result, not its first operand
        ("Answer: 291 - 315 = -24", -24.0, -24.0),
        # real output, SVAMP id 576: the stated answer is the gold (23), not the last number
        (
            "Answer: 23\n\nExplanation:\nDave had 23 apps on his phone at the start. He deleted 18 "
            "of them, which left him with 5",
            23.0,
            5.0,
        ),
        # real output, SVAMP id 0: "Answer:" heads the working, so the last number counts
        ("Answer:\n\nGroup of bananas: 290 / 2 = 145\n\nGroup of oranges: 87 / 93 = 0.92", 0.92, 0.92),
        # real output, SVAMP id 328: the authors' code dropped the sign
        (
            "A farmer had 105 green tomatoes and 71 red tomatoes in his garden. If he picked 137 "
            "tomatoes, how many tomatoes are left?\nTo find out how many tomatoes are left, we need "
            "to subtract the number of tomatoes the farmer picked from the total number of tomatoes "
            "he had.\n105 green tomatoes + 71 red tomatoes = 176 tomatoes\n137 tomatoes picked = "
            "137 - 176 = -49",
            -49.0,
            49.0,
        ),
    ],
)
def test_number_on_real_svamp_outputs(text: str, expected: float, authors: float) -> None:
    got = extract_answer("number", text)
    assert got == expected
    assert answers_match("number", got, authors) == (expected == authors)


# --- boolean ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("This is not true. Answer: False", False),
        ("True. Sharks are fish.", True),
        ("False: sharks are fish.", False),
        ("Yes, it is.", True),
        ("No.\nBecause reasons.", False),
        ("**Answer:** True", True),
        ("The answer is no because it melts.", False),
        ("Answer: The statement is false.", False),
        ("Answer:\n\nFalse.\n\nIt never happened.", False),
        ("I'd say false.", False),
        ("Conclusion: True. It works.", True),
        ("\\boxed{yes}", True),
        ("The final answer is yes.\nAnswer: no", True),
        ("Answer: True\nLater: Answer: False", False),
    ],
)
def test_boolean_reads_the_stated_verdict(text: str, expected: bool) -> None:
    assert extract_answer("boolean", text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "It is true that cats purr, and some say the opposite.",
        "True or False: Cats purr.",
        "Answer: True/False",
        "yes or no?",
        "No one knows whether it is true.",
        "No-one knows.",
        "Answer: It is not true",
        "Answer:\n\n1. False. Retail is hard.\n2. True. It pays.",
        "",
    ],
)
def test_boolean_without_a_verdict_is_none(text: str) -> None:
    assert extract_answer("boolean", text) is None


@pytest.mark.parametrize(
    ("text", "expected", "authors"),
    [
        # real output, StrategyQA id 1354; the authors' code read "true" (in "True or False")
        (
            "\nTrue or False: A bodybuilder would enjoy wearing a cast for several weeks.\n\nMy "
            "answer: False\n\nExplanation: A bodybuilder's primary goal is to maintain and improve "
            "their physical appearance and strength. Wearing a cast for several weeks would hinder "
            "their ability to train and exercise, which would negatively impact their physique and "
            "progress. Additionally, a cast would limit their mobility and range of motion, making it "
            "difficult to perform daily activities and exercise routines. Therefore, a bodybuilder "
            "would not enjoy wearing a cast for several weeks.",
            False,
            True,
        ),
        # real output, StrategyQA id 66: a question back, no verdict
        ("\nPlease answer: True or False\n\nThen, explain your reasoning.", None, True),
        # real output, StrategyQA id 4: the question restated, no verdict
        ("\nTrue or False: In Mumbai, Solanum melongena is commonly referred to as an eggplant.", None, True),
        # real output, StrategyQA id 1080: a leading verdict
        (
            "\nFalse.\n\nMy reasoning is that oil painters would not avoid reds from scale insects "
            "that live on a cactus because the red color of the insects is not a significant factor "
            "in the painting.",
            False,
            False,
        ),
        # real output, StrategyQA id 554 (last paragraph)
        (
            'Therefore, the answer to the question "Does Justin Bieber vote in October?" is "false".',
            False,
            False,
        ),
        # real output, StrategyQA id 530 (first sentences)
        (
            "\nTrue or False: Someone with back pain would enjoy picking strawberries.\n\n"
            "Explanation:\nI think this is true because picking strawberries is a relatively "
            "low-impact activity",
            True,
            True,
        ),
    ],
)
def test_boolean_on_real_strategyqa_outputs(text: str, expected: bool | None, authors: bool) -> None:
    got = extract_answer("boolean", text)
    assert got is expected
    assert answers_match("boolean", got, authors) == (expected is authors)


# --- choice ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: C", 2),
        ("The answer is (B).", 1),
        ("answer: b", 1),
        ("Answer: option a", 0),
        ("Answer: [D]", 3),
        ("\\boxed{D}", 3),
        ("The correct option is D, since the premise needs it.", 3),
        ("Answer: I think it's (D)", 3),
        ("Answer:\n\nC", 2),
        ("The correct answer is: All Cantonese are southerners.", 2),
        ("the answer is: 'Some Cantonese love chili.'", 0),
        ("Option C is correct.", 2),
        ("Looking at it again, (b) is the best choice here.", 1),
        ("C. All Cantonese are southerners.\n\nThis bridges the premise.", 2),
        ("I choose option D because it fits.", 3),
        ("The argument needs: all cantonese are southerners", 2),
        ("A cat sat here. The answer is B because the cat is irrelevant.", 1),
        ("Final answer: B\nAnswer: C", 1),
        ("The options are many and choices abound. Option B is correct.", 1),
    ],
)
def test_choice_reads_the_stated_option(text: str, expected: int) -> None:
    assert extract_answer("choice", text, options=OPTIONS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Answer: E",  # no fifth option
        "Answer: A cat",  # the article, not option A
        "A. is weak\nB. is weak\nC. holds\nD. is weak",  # going through the options
        "Neither (A) nor (B) works, so (C).",  # several letters, no stated one
        "Some Cantonese love chili. All Cantonese are southerners.",  # two option texts
        "I am not sure.",
        "",
    ],
)
def test_choice_without_a_single_stated_option_is_none(text: str) -> None:
    assert extract_answer("choice", text, options=OPTIONS) is None


def test_choice_letter_wins_over_a_one_letter_option_text() -> None:
    people = ["B.", "C.", "Did not steal.", "A."]  # options naming people A, B, C
    assert extract_answer("choice", "Answer: A", options=people) == 0
    assert extract_answer("choice", "Answer: Did not steal.", options=people) == 2


def test_choice_option_text_matches_whole_words_only() -> None:
    assert extract_answer("choice", "answer: answer: ", options=["a", "b", "c", "d"]) is None
    assert extract_answer("choice", "It is 12 apples", options=["2 apples", "12 apples"]) == 1


@pytest.mark.slow
def test_choice_round_trips_real_logiqa_options(shared_data: Path) -> None:
    path = shared_data / "logiqa" / "hf_lucasmccabe_equivalent" / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    checked = 0
    for row in rows:
        cleaned = {" ".join(o.split()).strip(" .").lower() for o in row["options"]}
        if len(cleaned) < 4 or min(len(o) for o in cleaned) < 2:
            # a few rows hold options such as [".", ".", ".", "."] or ["B.", "C.", "A.", ...]
            # (people named by letters), where "Answer: C" is ambiguous by construction
            continue
        checked += 1
        gold = parse_gold("choice", row["correct_option"], options=row["options"])
        letter = "ABCD"[gold]
        assert extract_answer("choice", f"Answer: {letter}", options=row["options"]) == gold
        stated = f"After weighing them, the answer is: {row['options'][gold]}"
        assert extract_answer("choice", stated, options=row["options"]) == gold
    assert checked > 7000


# --- regex -----------------------------------------------------------------------------------


def test_regex_takes_the_group_of_the_last_match() -> None:
    assert extract_answer("regex", "id=4, id=9", pattern=r"id=(\d+)") == "9"
    assert extract_answer("regex", "CODE: ab  CODE: xy ", pattern=re.compile(r"CODE:\s*\w+")) == ("CODE: xy")
    assert extract_answer("regex", "nothing", pattern=r"id=(\d+)") is None
    assert extract_answer("regex", "x=  ", pattern=r"x=(\s*)") is None


# --- errors and robustness -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"kind": "numeric"}, "'numeric'"),
        ({"kind": "choice"}, "options"),
        ({"kind": "choice", "options": "ABCD"}, "'ABCD'"),
        ({"kind": "choice", "options": []}, "[]"),
        ({"kind": "choice", "options": [1, 2]}, "[1, 2]"),
        ({"kind": "regex"}, "pattern"),
        ({"kind": "regex", "pattern": "(unclosed"}, "'(unclosed'"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        extract_answer(text="Answer: 1", **kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text", [None, 42, 3.5, ["Answer: 1"], b"Answer: \xff 7"])
def test_non_text_never_raises(text: object) -> None:
    expected = 7.0 if isinstance(text, bytes) else None
    assert extract_answer("number", text) == expected  # type: ignore[arg-type]


def test_internal_failure_is_logged_and_read_as_no_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(text: str) -> float:
        raise RuntimeError("boom")

    monkeypatch.setattr(extract_module, "_read_number", broken)
    with caplog.at_level(logging.WARNING, logger="fairspec.tasks.extract"):
        assert extract_answer("number", "Answer: 1") is None
    assert any("failed" in record.getMessage() for record in caplog.records)


_FUZZ_PIECES = [
    "Answer:",
    "answer is",
    "Final answer:",
    "####",
    "\\boxed{",
    "}",
    "{",
    "\\frac{1}{0}",
    "(",
    ")",
    "B)",
    "(C)",
    "option",
    "True",
    "false",
    "Yes",
    "No",
    " or ",
    "1,080",
    "-",
    "\u2212",
    "$",
    "3/4",
    "0/0",
    ".",
    ",",
    "=",
    "9" * 30,
    "\n",
    "\n\n",
    " ",
    "**",
    "__",
    "{,}",
    "é",
    "😀",
    "\ud800",
    "\x00",
    "\u200b",
    "Ⅻ",
    "٣",
    "１２",
    "I would say",
    "is correct",
    '"',
    "'",
]


def _fuzz_text(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(0, 200)))
    return "".join(rng.choice(_FUZZ_PIECES) for _ in range(rng.randrange(0, 40)))


def test_fuzz_never_raises_and_returns_the_kind_type(caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(20240613)
    with caplog.at_level(logging.WARNING, logger="fairspec.tasks.extract"):
        for _ in range(1500):
            text = _fuzz_text(rng)
            number = extract_answer("number", text)
            assert number is None or isinstance(number, float)
            verdict = extract_answer("boolean", text)
            assert verdict is None or isinstance(verdict, bool)
            index = extract_answer("choice", text, options=OPTIONS)
            assert index is None or (type(index) is int and 0 <= index < len(OPTIONS))
            found = extract_answer("regex", text, pattern=r"(\d+)")
            assert found is None or isinstance(found, str)
    assert not caplog.records, "an extractor failed internally on a fuzz text"


def test_huge_texts_stay_cheap() -> None:
    for text in ["answer: " * 100_000, "\\boxed{" * 100_000, "1" * 1_000_000, "(A) " * 100_000]:
        for kind in ("number", "boolean", "choice"):
            extract_answer(kind, text, options=OPTIONS)  # the test's timeout is the assertion


# --- answers_match ---------------------------------------------------------------------------


def test_answers_match_compares_numbers_numerically() -> None:
    assert answers_match("number", 1080.0, 1080)
    assert answers_match("number", 14.0, "14")
    assert answers_match("number", 0.1 + 0.2, 0.3)
    assert not answers_match("number", 14.0, 14.5)
    assert answers_match("number", 14.0, 14.5, tolerance=0.5)
    assert not answers_match("number", None, 3.0)
    assert not answers_match("number", float("nan"), float("nan"))
    assert not answers_match("number", True, 1.0)


def test_answers_match_other_kinds() -> None:
    assert answers_match("boolean", False, False)
    assert not answers_match("boolean", None, False)
    assert not answers_match("boolean", 0, False)
    assert answers_match("choice", 2, 2)
    assert not answers_match("choice", True, 1)
    assert answers_match("regex", " ab ", "ab")
    assert not answers_match("regex", "AB", "ab")


@pytest.mark.parametrize("tolerance", [-1.0, float("inf"), float("nan")])
def test_answers_match_rejects_a_bad_tolerance(tolerance: float) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        answers_match("number", 1.0, 1.0, tolerance=tolerance)


def test_answers_match_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="'math'"):
        answers_match("math", 1.0, 1.0)


# --- the authors' records of real wrong answers ----------------------------------------------


def _numbers_in(text: str) -> set[float]:
    numbers = re.findall(r"-?[0-9][0-9,]*(?:\.[0-9]+)?", text)
    return {float(n.replace(",", "")) for n in numbers if n.replace(",", "").lstrip("-")}


def test_svamp_records_read_as_mistakes(shared_data: Path, caplog) -> None:
    records = _records(shared_data, "svamp")
    assert len(records) == 387
    wrong = 0
    with caplog.at_level(logging.WARNING, logger="fairspec.tasks.extract"):
        for record in records:
            text = record["student_wrong_pred"]
            got = extract_answer("number", text)
            # whatever is read is a number the output wrote (or a fraction of two)
            assert got is None or got in _numbers_in(text) or "/" in text
            wrong += not answers_match("number", got, parse_gold("number", record["gold_answer"]))
            for kind in ("boolean", "choice", "regex"):
                extract_answer(kind, text, options=OPTIONS, pattern=r"(\d+)")
    assert not caplog.records
    # the records are the authors' mistakes; the few that match are outputs whose stated
    # "Answer: N" is right but whose last number (what the authors' code read) is not
    assert wrong / len(records) >= 0.9


def test_strategyqa_records_read_as_mistakes(shared_data: Path, caplog) -> None:
    records = _records(shared_data, "strategyQA")
    assert len(records) == 825
    wrong = 0
    with caplog.at_level(logging.WARNING, logger="fairspec.tasks.extract"):
        for record in records:
            text = record["student_wrong_pred"]
            got = extract_answer("boolean", text)
            gold = parse_gold("boolean", re.split(r"[.\t]", record["gold_answer"])[0])
            wrong += not answers_match("boolean", got, gold)
            for kind in ("number", "choice", "regex"):
                extract_answer(kind, text, options=OPTIONS, pattern=r"(true|false)")
    assert not caplog.records
    assert wrong / len(records) >= 0.9


def test_strategyqa_true_is_never_read_from_an_incidental_mention(shared_data: Path) -> None:
    # the authors' code counted "true" anywhere; here a True needs a stated verdict
    for record in _records(shared_data, "strategyQA"):
        text = record["student_wrong_pred"]
        without_prompts = re.sub(r"(?i)true\s+or\s+false|\"true\"\s+or\s+\"false\"", "", text)
        if not re.search(r"(?i)\b(?:true|yes)\b", without_prompts):
            assert extract_answer("boolean", text) is not True, record["id"]
