"""Tests for fairspec.tasks.gold: gold answers of the four benchmarks, and bad golds."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import fairspec.tasks.gold as gold_module
from fairspec.tasks import parse_gold


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(gold_module)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("number", "She sold <<48/2=24>>24 clips.\n#### 72", 72.0),
        ("number", "#### 1,080", 1080.0),
        ("number", "1,234,567", 1234567.0),
        ("number", "-47", -47.0),
        ("number", " 145 ", 145.0),
        ("number", 145.0, 145.0),
        ("number", 7, 7.0),
        ("number", "2.5", 2.5),
        ("boolean", True, True),
        ("boolean", "false", False),
        ("boolean", " TRUE ", True),
        ("choice", 0, 0),
        ("choice", "3", 3),
        ("choice", "b", 1),
        ("choice", "D", 3),
        ("choice", 2.0, 2),
        ("regex", "  Paris ", "Paris"),
        ("regex", 12, "12"),
    ],
)
def test_parse_gold_reads_valid_values(kind: str, value: object, expected: object) -> None:
    got = parse_gold(kind, value, options=["w", "x", "y", "z"] if kind == "choice" else None)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("number", "#### seventy"),
        ("number", "1,08"),
        ("number", ""),
        ("number", True),
        ("number", float("nan")),
        ("number", None),
        ("boolean", "maybe"),
        ("boolean", 1),
        ("boolean", None),
        ("choice", 4),
        ("choice", -1),
        ("choice", "e"),
        ("choice", True),
        ("choice", 1.5),
        ("choice", "ab"),
        ("regex", "   "),
        ("regex", None),
    ],
)
def test_parse_gold_rejects_bad_values_naming_them(kind: str, value: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_gold(kind, value, options=["w", "x", "y", "z"] if kind == "choice" else None)
    assert repr(value) in str(info.value)


def test_choice_range_follows_the_options() -> None:
    assert parse_gold("choice", "e") == 4  # without options any letter A-Z
    with pytest.raises(ValueError, match="0-1"):
        parse_gold("choice", 2, options=["yes", "no"])


def test_numpy_cells_parse() -> None:
    numpy = pytest.importorskip("numpy")
    assert parse_gold("choice", numpy.int64(2)) == 2
    assert parse_gold("boolean", numpy.bool_(True)) is True
    assert parse_gold("number", numpy.float32(1.5)) == 1.5


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="'math'"):
        parse_gold("math", "1")


# --- every row of the real train files ---------------------------------------------------------


def test_gsm8k_train_golds_parse(shared_data: Path) -> None:
    lines = (shared_data / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    golds = [parse_gold("number", json.loads(line)["answer"]) for line in lines]
    assert len(golds) == 7473
    assert golds[0] == 72.0  # train[0], "#### 72"
    assert all(g.is_integer() for g in golds)  # the README: all finals are integers
    with_commas = [json.loads(line)["answer"].split("####")[-1] for line in lines]
    assert sum("," in final for final in with_commas) == 79
    assert max(golds) >= 1000  # separators were dropped, not read as a decimal point


def test_svamp_train_golds_parse(shared_data: Path) -> None:
    rows = json.loads((shared_data / "svamp" / "hf_ChilleD_split" / "train.json").read_text())
    golds = [parse_gold("number", row["Answer"]) for row in rows]
    assert len(golds) == 700 and golds[0] == 145.0
    # the HF copy holds the same answers as strings ("145")
    assert [parse_gold("number", str(int(row["Answer"]))) for row in rows] == golds


def test_strategyqa_train_golds_parse(shared_data: Path) -> None:
    rows = json.loads((shared_data / "strategyqa" / "hf_ChilleD_split" / "train.json").read_text())
    golds = [parse_gold("boolean", row["answer"]) for row in rows]
    assert len(golds) == 1603 and sum(golds) == 738  # the README's count of true
    # the authors' code compared str(answer).lower(): "true" / "false"
    assert [parse_gold("boolean", str(row["answer"]).lower()) for row in rows] == golds


def test_logiqa_train_golds_parse(shared_data: Path) -> None:
    path = shared_data / "logiqa" / "hf_lucasmccabe_equivalent" / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    golds = [parse_gold("choice", row["correct_option"], options=row["options"]) for row in rows]
    assert len(golds) == 7376
    assert [golds.count(i) for i in range(4)] == [1609, 1814, 2004, 1949]  # the README's counts
    # the authors' code used str(correct_option); letters as in the raw txt files also parse
    assert [parse_gold("choice", str(row["correct_option"])) for row in rows] == golds
    assert [parse_gold("choice", "abcd"[g]) for g in golds] == golds
