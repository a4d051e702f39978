"""Tests for fairspec.tasks.data: benchmark splits -> typed rows, fingerprints, data errors."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from fairspec.hashing import sha256_file
from fairspec.resources import resource_root
from fairspec.tasks.data import MAX_LISTED_PROBLEMS, DataError, DatasetSource, load_rows

FIXTURES = Path(__file__).parent / "fixtures"
GSM8K = {"question": "question", "answer": "answer"}
LOGIQA = {"question": "query", "context": "context", "options": "options",
          "answer": "correct_option"}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_jsonl(path: Path, lines: list[object]) -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


# --- the real benchmark files ------------------------------------------------------------


def test_gsm8k_train_parses_every_final_answer(shared_data: Path) -> None:
    loaded = load_rows(DatasetSource(path="gsm8k"), GSM8K, "number", "train", None, shared_data)
    records = _jsonl(shared_data / "gsm8k" / "train.jsonl")
    assert loaded.total_rows == len(records) == 7473
    assert [row.index for row in loaded.rows] == list(range(7473))
    expected = [float(r["answer"].split("####")[-1].strip().replace(",", "")) for r in records]
    assert [row.gold for row in loaded.rows] == expected
    assert all(isinstance(row.gold, float) for row in loaded.rows)
    with_commas = [row for row in loaded.rows if "," in row.raw_answer.split("####")[-1]]
    assert len(with_commas) == 79
    assert all("," not in row.gold_text and "." not in row.gold_text for row in with_commas)
    first = loaded.rows[0]
    assert first.fields == {"question": records[0]["question"]}
    assert first.raw_answer == records[0]["answer"]
    assert first.gold_text == "72"
    assert loaded.fingerprint == sha256_file(shared_data / "gsm8k" / "train.jsonl")
    assert "gsm8k/train.jsonl" in loaded.source


def test_svamp_json_array_maps_one_column_per_field(shared_data: Path) -> None:
    fields = {"question": "Question", "context": "Body", "answer": "Answer"}
    loaded = load_rows(DatasetSource(path="svamp/hf_ChilleD_split"), fields, "number", "train", None,
                       shared_data)
    file = shared_data / "svamp" / "hf_ChilleD_split" / "train.json"
    records = json.loads(file.read_text(encoding="utf-8"))
    assert loaded.total_rows == len(loaded.rows) == 700
    for row, record in zip(loaded.rows, records, strict=True):
        assert row.fields == {"question": record["Question"], "context": record["Body"]}
        assert row.gold == float(record["Answer"])
    assert loaded.rows[0].gold_text == "145"
    assert loaded.fingerprint == sha256_file(file)


def test_strategyqa_gold_is_boolean(shared_data: Path) -> None:
    loaded = load_rows(DatasetSource(path="strategyqa/hf_ChilleD_split"), GSM8K, "boolean", "train",
                       None, shared_data)
    assert len(loaded.rows) == 1603
    assert all(isinstance(row.gold, bool) for row in loaded.rows)
    assert sum(row.gold for row in loaded.rows) == 738
    assert {row.gold_text for row in loaded.rows} == {"true", "false"}
    assert all(row.gold_text == str(row.raw_answer).lower() for row in loaded.rows)


def test_logiqa_options_and_choice_gold(shared_data: Path) -> None:
    loaded = load_rows(DatasetSource(path="logiqa/hf_lucasmccabe_equivalent"), LOGIQA, "choice",
                       "train", None, shared_data)
    assert len(loaded.rows) == 7376
    assert Counter(row.gold for row in loaded.rows) == {0: 1609, 1: 1814, 2: 2004, 3: 1949}
    record = _jsonl(shared_data / "logiqa" / "hf_lucasmccabe_equivalent" / "train.jsonl")[0]
    first = loaded.rows[0]
    assert first.fields == {"question": record["query"], "context": record["context"],
                            "options": record["options"]}
    assert first.gold_text == "C. " + record["options"][2]
    assert "answer" not in first.fields


def test_logiqa_parquet_loads_and_agrees_with_the_jsonl(shared_data: Path) -> None:
    parquet = "logiqa/train_parquet_viratzzs/logiqa_train.parquet"
    loaded = load_rows(DatasetSource(path=parquet), {"question": "prompt", "answer": "answer"},
                       "regex", "train", None, shared_data)
    assert loaded.total_rows == len(loaded.rows) == 7376
    assert {row.gold for row in loaded.rows} == {"A", "B", "C", "D"}
    assert loaded.rows[0].fields["question"][0]["role"] == "system"
    assert loaded.fingerprint == sha256_file(shared_data / parquet)
    jsonl = _jsonl(shared_data / "logiqa" / "hf_lucasmccabe_equivalent" / "train.jsonl")
    assert [ord(row.gold) - ord("A") for row in loaded.rows] == [r["correct_option"] for r in jsonl]


def test_limit_keeps_the_first_rows_and_counts_all(shared_data: Path) -> None:
    full = load_rows(DatasetSource(path="gsm8k"), GSM8K, "number", "test", None, shared_data)
    cut = load_rows(DatasetSource(path="gsm8k"), GSM8K, "number", "test", 10, shared_data)
    assert cut.total_rows == full.total_rows == 1319
    assert cut.rows == full.rows[:10]
    assert cut.fingerprint == full.fingerprint
    assert load_rows(DatasetSource(path="gsm8k"), GSM8K, "number", "test", 0, shared_data).rows == []
    parquet = "logiqa/train_parquet_viratzzs/logiqa_train.parquet"
    few = load_rows(DatasetSource(path=parquet), {"question": "prompt", "answer": "answer"},
                    "choice", "train", 3, shared_data)
    assert (few.total_rows, [row.index for row in few.rows]) == (7376, [0, 1, 2])


# --- shipped and fixture files -----------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_builtin_svamp_mini_folder(split: str, tmp_path: Path) -> None:
    fields = {"question": "question_concat", "answer": "Answer"}
    loaded = load_rows(DatasetSource(path="builtin:data/svamp-mini"), fields, "number", split, None,
                       tmp_path)
    file = resource_root() / "data" / "svamp-mini" / f"{split}.jsonl"
    records = _jsonl(file)
    assert loaded.total_rows == len(loaded.rows) == len(records) > 0
    assert [row.fields["question"] for row in loaded.rows] == [r["question_concat"] for r in records]
    assert [row.gold for row in loaded.rows] == [float(r["Answer"]) for r in records]
    assert loaded.fingerprint == sha256_file(file)


def test_csv_cells_are_read_as_written() -> None:
    loaded = load_rows(DatasetSource(path="data-csv"), GSM8K, "number", "train", None, FIXTURES)
    assert [row.gold for row in loaded.rows] == [1080.0, 7.0, 2.5, 12.0]
    assert [row.gold_text for row in loaded.rows] == ["1080", "7", "2.5", "12"]
    assert [row.raw_answer for row in loaded.rows] == ["1,080", "7", "2.5", "0012"]
    assert loaded.rows[1].fields["question"] == "Tom has 12 apples, gives away 5.\nHow many are left?"
    assert loaded.fingerprint == sha256_file(FIXTURES / "data-csv" / "train.csv")
    assert loaded.source == "data-csv/train.csv (csv, split 'train')"  # as the spec names it


def test_csv_options_cell_holds_a_json_array() -> None:
    fields = {"question": "question", "options": "options", "answer": "answer"}
    loaded = load_rows(DatasetSource(path="data-csv"), fields, "choice", "test", None, FIXTURES)
    assert [row.gold for row in loaded.rows] == [1, 0]
    assert loaded.rows[0].fields["options"] == ["green", "blue", "red"]
    assert [row.gold_text for row in loaded.rows] == ["B. blue", "A. 4"]


def test_a_single_file_serves_any_split(tmp_path: Path) -> None:
    file = _write_jsonl(tmp_path / "rows.jsonl", [{"question": "q", "answer": "3"}])
    for split in ("train", "test"):
        loaded = load_rows(DatasetSource(path="rows.jsonl"), GSM8K, "number", split, None, tmp_path)
        assert [row.gold for row in loaded.rows] == [3.0]
        assert loaded.split == split
    assert loaded.fingerprint == sha256_file(file)


def test_json_lines_named_json_still_load(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "train.json", [{"question": "a", "answer": 1}, {"question": "b",
                                                                              "answer": 2}])
    loaded = load_rows(DatasetSource(path="."), GSM8K, "number", "train", None, tmp_path)
    assert [row.gold for row in loaded.rows] == [1.0, 2.0]


def test_jsonl_folder_wins_over_csv_like_the_plan(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", [{"question": "a", "answer": 1}])
    (tmp_path / "train.csv").write_text("question,answer\nb,2\n", encoding="utf-8")
    loaded = load_rows(DatasetSource(path="."), GSM8K, "number", "train", None, tmp_path)
    assert [row.gold for row in loaded.rows] == [1.0]


# --- fingerprints --------------------------------------------------------------------------


def test_fingerprint_follows_the_file_content(shared_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "train.jsonl"
    shutil.copyfile(shared_data / "gsm8k" / "train.jsonl", copy)
    before = load_rows(DatasetSource(path="train.jsonl"), GSM8K, "number", "train", 5, tmp_path)
    assert before.fingerprint == sha256_file(shared_data / "gsm8k" / "train.jsonl")
    with copy.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"question": "one more", "answer": "#### 1"}) + "\n")
    after = load_rows(DatasetSource(path="train.jsonl"), GSM8K, "number", "train", 5, tmp_path)
    assert after.fingerprint != before.fingerprint
    assert after.fingerprint == sha256_file(copy)
    assert after.rows == before.rows
    assert after.total_rows == before.total_rows + 1


# --- errors ----------------------------------------------------------------------------------


def test_bad_rows_are_reported_together_with_row_line_and_field(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", [
        {"question": "fine", "options": ["x", "y"], "answer": 1},           # line 1, row 0
        "",                                                                  # blank line 2
        {"options": ["x", "y"], "answer": 0},                                # line 3, row 1
        {"question": "q", "options": ["x", "y"], "answer": "#### twelve"},   # line 4, row 2
        {"question": "q", "options": "x or y", "answer": 0},                 # line 5, row 3
        {"question": None, "options": ["x", "y"], "answer": 0},              # line 6, row 4
        '{"question": "broken", ',                                           # line 7, row 5
        {"question": "fine again", "options": ["x", "y"], "answer": "B"},    # line 8, row 6
    ])
    fields = {"question": "question", "options": "options", "answer": "answer"}
    with pytest.raises(DataError) as caught:
        load_rows(DatasetSource(path="."), fields, "choice", "train", None, tmp_path)
    message = str(caught.value)
    file = str(tmp_path / "train.jsonl")
    assert f"{file}:3: row 1: field 'question': column 'question' is missing" in message
    assert f"{file}:4: row 2: field 'answer'" in message and "'#### twelve'" in message
    assert f"{file}:5: row 3: field 'options'" in message and "list of option texts" in message
    assert f"{file}:6: row 4: field 'question': column 'question' is null" in message
    assert f"{file}:7: row 5: invalid JSON" in message
    assert "row 0" not in message and "row 6" not in message
    assert message.startswith("5 bad rows")
    assert len(caught.value.problems) == 5


def test_unparseable_number_gold_names_the_value(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "test.jsonl", [{"question": "q", "answer": "#### twelve"}])
    with pytest.raises(DataError, match=r"test\.jsonl:1: row 0: field 'answer': column 'answer'"):
        load_rows(DatasetSource(path="."), GSM8K, "number", "test", None, tmp_path)


def test_many_bad_rows_are_capped_in_the_message(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "train.jsonl",
                 [{"question": "q", "answer": "x"}] * (MAX_LISTED_PROBLEMS + 10)
                 + [{"question": "q", "answer": "1"}])
    with pytest.raises(DataError) as caught:
        load_rows(DatasetSource(path="."), GSM8K, "number", "train", None, tmp_path)
    message = str(caught.value)
    assert "... and 10 more problems" in message
    assert f"row {MAX_LISTED_PROBLEMS - 1}:" in message
    assert f"row {MAX_LISTED_PROBLEMS}:" not in message
    assert len(caught.value.problems) == MAX_LISTED_PROBLEMS + 10


def test_bad_rows_past_the_limit_are_not_checked(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", [{"question": "q", "answer": 1}, {"question": "q"}])
    loaded = load_rows(DatasetSource(path="."), GSM8K, "number", "train", 1, tmp_path)
    assert (len(loaded.rows), loaded.total_rows) == (1, 2)
    with pytest.raises(DataError, match="row 1"):
        load_rows(DatasetSource(path="."), GSM8K, "number", "train", None, tmp_path)


def test_missing_column_is_one_error_listing_the_available_ones(shared_data: Path) -> None:
    fields = {"question": "question", "context": "passage", "answer": "correct"}
    with pytest.raises(DataError) as caught:
        load_rows(DatasetSource(path="gsm8k"), fields, "number", "train", None, shared_data)
    message = str(caught.value)
    assert "column 'passage' (field 'context')" in message
    assert "column 'correct' (field 'answer')" in message
    assert "split 'train'" in message
    assert message.endswith("available columns: question, answer")
    assert len(caught.value.problems) == 2
    assert "row" not in message


def test_missing_csv_column_lists_the_header() -> None:
    with pytest.raises(DataError, match=r"column 'query' \(field 'question'\).*"
                                        r"available columns: question, answer, topic"):
        load_rows(DatasetSource(path="data-csv"), {"question": "query", "answer": "answer"}, "number",
                  "train", None, FIXTURES)


def test_csv_options_that_are_not_a_json_list_are_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text('question,options,answer\nq,"red, blue",A\n',
                                        encoding="utf-8")
    fields = {"question": "question", "options": "options", "answer": "answer"}
    with pytest.raises(DataError, match=r"train\.csv: row 0: field 'options'"):
        load_rows(DatasetSource(path="."), fields, "choice", "train", None, tmp_path)


def test_missing_split_file_and_missing_path(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", [{"question": "q", "answer": 1}])
    with pytest.raises(DataError, match=r"no file for split 'test'.*test\.jsonl"):
        load_rows(DatasetSource(path="."), GSM8K, "number", "test", None, tmp_path)
    with pytest.raises(DataError, match="no such data file or folder"):
        load_rows(DatasetSource(path="absent"), GSM8K, "number", "train", None, tmp_path)


def test_json_file_that_is_not_an_array(tmp_path: Path) -> None:
    (tmp_path / "train.json").write_text('{"question": "q", "answer": 1}', encoding="utf-8")
    with pytest.raises(DataError, match="JSON array"):
        load_rows(DatasetSource(path="."), GSM8K, "number", "train", None, tmp_path)


@pytest.mark.parametrize(
    ("fields", "kind", "limit", "message"),
    [
        (GSM8K, "numeric", None, "unknown extractor kind 'numeric'"),
        (GSM8K, "number", -1, "limit must be None or an integer >= 0, got -1"),
        ({"question": "question"}, "number", None, "'answer'"),
    ],
)
def test_bad_arguments_raise_value_error(
    fields: dict[str, str], kind: str, limit: int | None, message: str, tmp_path: Path
) -> None:
    _write_jsonl(tmp_path / "train.jsonl", [{"question": "q", "answer": 1}])
    with pytest.raises(ValueError, match=message):
        load_rows(DatasetSource(path="."), fields, kind, "train", limit, tmp_path)


def test_hub_dataset_offline_names_the_id_and_suggests_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # both libraries read the variables once, at import: set what they read, too
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # never a cached copy
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    dataset = DatasetSource(hf="fairspec-tests/no-such-dataset", config="main")
    with pytest.raises(DataError) as caught:
        load_rows(dataset, GSM8K, "number", "train", None, tmp_path)
    message = str(caught.value)
    assert "fairspec-tests/no-such-dataset (config main)" in message
    assert "split 'train'" in message
    assert "task.dataset.path" in message


def test_hub_code_path_loads_a_local_dataset_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``datasets.load_dataset`` also takes a folder: the hub path runs for real, offline."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    folder = str(resource_root() / "data" / "svamp-mini")
    fields = {"question": "question_concat", "answer": "Answer"}
    local = load_rows(DatasetSource(path="builtin:data/svamp-mini"), fields, "number", "test", None,
                      tmp_path)
    hub = load_rows(DatasetSource(hf=folder), fields, "number", "test", 5, tmp_path)
    assert (hub.total_rows, len(hub.rows)) == (local.total_rows, 5)
    assert [(r.index, r.fields, r.gold) for r in hub.rows] == \
        [(r.index, r.fields, r.gold) for r in local.rows[:5]]
    assert hub.source == f"hub dataset {folder}, split 'test'"
    again = load_rows(DatasetSource(hf=folder), fields, "number", "test", None, tmp_path)
    train = load_rows(DatasetSource(hf=folder), fields, "number", "train", 5, tmp_path)
    assert again.fingerprint == hub.fingerprint
    assert len({hub.fingerprint, train.fingerprint, local.fingerprint}) == 3
    with pytest.raises(DataError, match=r"has no split 'validation'"):
        load_rows(DatasetSource(hf=folder), fields, "number", "validation", None, tmp_path)
