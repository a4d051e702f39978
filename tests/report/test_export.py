"""``fairspec export``: a run's distillation set, read back with ``datasets``; and the
samples join the report's browser shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from run_folders import write

from fairspec.cli import cli
from fairspec.errors import FairspecError
from fairspec.report.collect import run_locator
from fairspec.report.export import export_run
from fairspec.report.samples import iter_samples

LOCAL = "/home/someone/private/svamp-train.jsonl"


def make_run(run_dir: Path) -> Path:
    write(run_dir / "run.json", {"name": "svamp", "spec": "svamp", "settings": {
        "task": {"dataset": {"path": LOCAL, "train_split": "train"}},
        "student": {"model": "/home/someone/models/student"}}})
    write(run_dir / "exam" / "mistakes.jsonl", [
        {"index": 3, "fields": {"question": "2+2?"}, "gold": 4.0, "gold_text": "4",
         "output": "It is 5.", "prediction": 5.0},
        {"index": 7, "fields": {"context": "ctx </script>", "question": "q?"}, "gold": 1.0,
         "gold_text": "1", "output": "no idea", "prediction": None},
    ])
    call = {"status": "ok", "finish_reason": "stop", "key": "c" * 64}
    write(run_dir / "teach" / "rationales.jsonl", [
        {"index": 3, "teacher": "gpt", "role": "rationale", "text": "2+2=4. The answer is 4.", **call},
        {"index": 3, "teacher": "gem", "role": "rationale", "text": "Four.", **call},
        {"index": 7, "teacher": "gpt", "role": "rationale", "text": "", **call},  # empty: not reviewed
        {"index": 7, "teacher": "gem", "role": "rationale", "text": "It is 1.", **call},
    ])
    write(run_dir / "teach" / "feedback.jsonl", [
        {"index": 3, "teacher": "gpt", "role": "feedback", "text": "You added wrong.", **call},
        {"index": 7, "teacher": "gem", "role": "feedback", "text": None, **{**call, "status": "error"}},
    ])
    write(run_dir / "review" / "reviews.jsonl", [
        {"index": 3, "author": "gem", "reviewer": "gpt", "text": "[2]", "status": "ok", "score": 2.0,
         "key": "d" * 64},
        {"index": 3, "author": "gpt", "reviewer": "gem", "text": "[5]", "status": "ok", "score": 4.6,
         "key": "e" * 64, "scored_by": "logprobs", "distribution": {"5": 0.7, "4": 0.2, "3": 0.1}},
        {"index": 7, "author": "gem", "reviewer": "gpt", "text": "?", "status": "ok", "score": None,
         "key": "f" * 64},
    ])
    write(run_dir / "review" / "accepted.jsonl", [
        {"index": 3, "teacher": "gpt", "text": "2+2=4. The answer is 4.", "scores": [4.6], "aggregate": 4.6}])
    return run_dir


def test_samples_join_every_stage_per_mistake(tmp_path):
    samples = list(iter_samples(run_locator(make_run(tmp_path / "svamp"))))
    assert [s["index"] for s in samples] == [3, 7]
    first, second = samples
    assert (first["question"], first["gold"], first["student_prediction"]) == ("2+2?", "4", "5")
    assert [(r["teacher"], r["accepted"], r["mean_score"]) for r in first["rationales"]] == \
        [("gem", False, 2.0), ("gpt", True, 4.6)]
    assert first["rationales"][1]["scores"][0]["distribution"] == {"5": 0.7, "4": 0.2, "3": 0.1}
    assert first["feedback"] == [{"teacher": "gpt", "text": "You added wrong."}]
    assert second["question"] == "context: ctx </script>\nquestion: q?"
    assert [(r["teacher"], r["mean_score"]) for r in second["rationales"]] == [("gem", None)]
    assert second["feedback"] == [] and second["student_prediction"] is None


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_export_round_trips_through_datasets_and_leaves_no_key_or_path(tmp_path, fmt):
    import datasets

    run_dir = make_run(tmp_path / "svamp")
    out = tmp_path / f"export-{fmt}"
    done = export_run(run_dir, out, fmt)
    assert (done["samples"], done["accepted"]) == (2, 1)
    rows = (datasets.load_from_disk(str(out)) if fmt == "hf"
            else datasets.load_dataset(str(out), split="train")).to_list()
    assert [r["index"] for r in rows] == [3, 7] and [r["accepted"] for r in rows] == [True, False]
    gpt = rows[0]["rationales"][1]
    assert (gpt["teacher"], gpt["accepted"], gpt["mean_score"]) == ("gpt", True, 4.6)
    assert gpt["scores"][0]["distribution"] == [{"score": 3, "probability": 0.1},
                                                {"score": 4, "probability": 0.2},
                                                {"score": 5, "probability": 0.7}]
    assert rows[1]["rationales"][0]["scores"] == [{"reviewer": "gpt", "score": None, "distribution": []}]
    card = (out / "README.md").read_text()
    assert "svamp-train" in card and "| with an accepted rationale | 1 |" in card
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for secret in (b"c" * 64, b"d" * 64, b"/home/someone", b"private"):
        assert secret not in everything


def test_export_refuses_a_full_folder_and_a_run_without_reviews(tmp_path):
    run_dir = make_run(tmp_path / "svamp")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(FairspecError, match="is not empty"):
        export_run(run_dir, full)
    assert (full / "keep.txt").read_text() == "mine"
    (run_dir / "review" / "reviews.jsonl").unlink()
    with pytest.raises(FairspecError, match="no review/reviews.jsonl"):
        export_run(run_dir, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_the_export_command(tmp_path):
    run_dir = make_run(tmp_path / "svamp")
    result = CliRunner().invoke(cli, ["export", str(run_dir), "--to", str(tmp_path / "out"),
                                      "--format", "parquet"])
    assert result.exit_code == 0, result.output
    assert "wrote 2 samples (1 with an accepted rationale)" in result.output
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.parquet")) == \
        ["train-00000-of-00001.parquet"]
    bad = CliRunner().invoke(cli, ["export", str(run_dir), "--to", str(tmp_path / "out")])
    assert bad.exit_code != 0 and "is not empty" in bad.output


def test_export_says_which_rationales_reach_the_gold_answer(tmp_path):
    import datasets

    from fairspec.artifacts import read_jsonl

    def read_rows(path: Path) -> list[dict]:
        return list(read_jsonl(path))

    run_dir = make_run(tmp_path / "svamp")
    call = {"status": "ok", "finish_reason": "stop", "key": "c" * 64}
    rationales = read_rows(run_dir / "teach" / "rationales.jsonl")
    # gold_check: require dropped mix's wrong rationale before any review: no review row
    write(run_dir / "teach" / "rationales.jsonl", [
        *rationales, {"index": 3, "teacher": "mix", "role": "rationale", "text": "It is 5.", **call}])
    for name in ("reviews.jsonl", "accepted.jsonl"):
        rows = read_rows(run_dir / "review" / name)
        write(run_dir / "review" / name, [
            {**r, "reaches_gold": (r.get("author") or r["teacher"]) == "gpt" or r["index"] == 7}
            for r in rows])
    out = tmp_path / "export"
    export_run(run_dir, out, "jsonl")
    rows = datasets.load_dataset(str(out), split="train").to_list()
    first = {r["teacher"]: r["reaches_gold"] for r in rows[0]["rationales"]}
    assert first == {"gem": False, "gpt": True, "mix": False}
    assert [r["reaches_gold"] for r in rows[1]["rationales"]] == [True]
