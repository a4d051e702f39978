"""``fairspec export``: a run's distillation set as a dataset others can load.

One row per student mistake (see :mod:`fairspec.report.samples`): the question, the gold
answer, the student's wrong answer, every teacher's rationale with each review score (and
its distribution, where scores were read from log-probabilities) and whether it was
accepted, every teacher's feedback; with a dataset card (README.md) whose ``configs`` tell
``datasets.load_dataset`` where the rows are. Only texts, names and scores leave the run
folder: no API key, call key, local path or provider setting.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from fairspec.artifacts import atomic_write_text, read_jsonl, upgrade_stats, write_jsonl
from fairspec.cards import dataset_card
from fairspec.errors import FairspecError
from fairspec.report.collect import read_run_info, run_locator
from fairspec.report.samples import iter_samples

FORMATS = ("jsonl", "parquet", "hf")
JSONL_FILE = "data/train.jsonl"
PARQUET_FILE = "data/train-00000-of-00001.parquet"
COLUMNS = {
    "index": "the question's index in the benchmark's train split",
    "question": "the question (its dataset fields; several as `name: value` lines)",
    "gold": "the gold answer",
    "student_answer": "the student's whole wrong answer on the exam",
    "student_prediction": "the answer extracted from it (null: none stated)",
    "accepted": "whether any teacher's rationale was accepted by the peer review",
    "rationales": "per teacher: `teacher`, `text`, `accepted`, `reaches_gold` (its final "
                  "answer is the gold one, read with the task's extractor; null: review.gold_check "
                  "was off), `mean_score` (of the valid "
                  "scores), `scores` (per reviewer: `reviewer`, `score`, `distribution`: "
                  "[{score, probability}] when read from log-probabilities, else empty)",
    "feedback": "per teacher: `teacher`, `text` (feedback on the student's wrong reasoning)",
    "test_overlap": "the training examples built from this row that hold a question of the "
                    "evaluation split (task.decontaminate; empty: none, or the check was off): "
                    "per example `kind`, `teacher`, `found_in` (question, rationale or feedback), "
                    "`test_index` (the test question's row) and `ngram` (the words shared, as "
                    "compared: lowercase, no punctuation)",
}


def overlaps_by_row(run_dir: Path) -> tuple[dict[int, list[dict[str, Any]]], dict[str, Any] | None]:
    """The build stage's contaminated examples (``build/overlaps.jsonl``) by train index, one
    entry per text that holds a test question, and its check's summary (stats.json's
    ``decontamination``; None: the build did not run the check)."""
    try:
        check = (upgrade_stats(json.loads((run_dir / "build" / "stats.json").read_text(encoding="utf-8")))
                 or {}).get("decontamination")
    except (OSError, ValueError):
        check = None
    found: dict[int, list[dict[str, Any]]] = {}
    path = run_dir / "build" / "overlaps.jsonl"
    if check and path.is_file():
        for row in read_jsonl(path):
            found.setdefault(int(row["train_index"]), []).extend(
                {"kind": row["kind"], "teacher": row["teacher"], "found_in": source,
                 "test_index": int(hit["test_index"]), "ngram": hit["ngram"]}
                for source, hit in row["found"].items())
    return found, check


def shareable(sample: dict[str, Any], overlaps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A sample as a dataset row: one fixed schema (a distribution as a list of
    ``{score, probability}``, so every row's columns have the same types); ``overlaps``:
    its training examples that hold a test question (:func:`overlaps_by_row`)."""
    rationales = []
    for r in sample["rationales"]:
        scores = [{"reviewer": s["reviewer"], "score": None if s["score"] is None else float(s["score"]),
                   "distribution": [{"score": int(k), "probability": float(p)}
                                    for k, p in sorted((s.get("distribution") or {}).items(),
                                                       key=lambda kv: int(kv[0]))]}
                  for s in r["scores"]]
        rationales.append({"teacher": r["teacher"], "text": r["text"], "accepted": r["accepted"],
                           "reaches_gold": r.get("reaches_gold"), "mean_score": r["mean_score"],
                           "scores": scores})
    return {**{k: sample[k] for k in ("index", "question", "gold", "student_answer",
                                      "student_prediction")},
            "accepted": any(r["accepted"] for r in rationales),
            "rationales": rationales, "feedback": sample["feedback"],
            "test_overlap": list(overlaps or [])}


def _features() -> Any:
    """The rows' schema, so an empty run (or one without reviews) still has typed columns."""
    from datasets import Features, List, Value

    score = {"reviewer": Value("string"), "score": Value("float64"),
             "distribution": List({"score": Value("int64"), "probability": Value("float64")})}
    return Features({
        "index": Value("int64"), "question": Value("string"), "gold": Value("string"),
        "student_answer": Value("string"), "student_prediction": Value("string"),
        "accepted": Value("bool"),
        "rationales": List({"teacher": Value("string"), "text": Value("string"),
                            "accepted": Value("bool"), "reaches_gold": Value("bool"),
                            "mean_score": Value("float64"),
                            "scores": List(score)}),
        "feedback": List({"teacher": Value("string"), "text": Value("string")}),
        "test_overlap": List({"kind": Value("string"), "teacher": Value("string"),
                              "found_in": Value("string"), "test_index": Value("int64"),
                              "ngram": Value("string")}),
    })


def _card_facts(run_dir: Path) -> dict[str, Any]:
    """What the card says of the run, from its ``run.json`` (names only, no path)."""
    info = read_run_info(run_dir)
    settings = info.get("settings") or {}
    dataset = (settings.get("task") or {}).get("dataset") or {}
    model = str((settings.get("student") or {}).get("model") or "")
    return {"spec": info.get("spec") or run_dir.name, "run": info.get("name") or run_dir.name,
            "dataset_hf": dataset.get("hf"),
            "dataset_name": None if dataset.get("hf")
            else Path(str(dataset.get("path") or "").removeprefix("builtin:")).stem or None,
            "train_split": dataset.get("train_split", "train"),
            "base_model_name": model.removeprefix("builtin:").rstrip("/").split("/")[-1] or None}


def export_run(run_dir: Path, to: Path, fmt: str = "jsonl") -> dict[str, Any]:
    """Write the run's samples to ``to`` in ``fmt`` (jsonl | parquet | hf) with a dataset
    card; returns what was written. ``to`` must be empty or absent."""
    run_dir, to = Path(run_dir), Path(to)
    if fmt not in FORMATS:
        raise FairspecError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    for stage, artifact in (("exam", "mistakes.jsonl"), ("teach", "rationales.jsonl"),
                            ("review", "reviews.jsonl")):
        if not (run_dir / stage / artifact).is_file():
            raise FairspecError(f"{run_dir} has no {stage}/{artifact}: export needs a run whose "
                                "exam, teach and review stages finished (fairspec run SPEC "
                                "--until review)")
    if to.exists() and any(to.iterdir()):
        raise FairspecError(f"{to} is not empty: export into a new folder")
    overlaps, check = overlaps_by_row(run_dir)
    rows = [shareable(s, overlaps.get(int(s["index"]))) for s in iter_samples(run_locator(run_dir))]
    to.mkdir(parents=True, exist_ok=True)
    partial = to / ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    data_files = _write(rows, partial, fmt)
    for item in partial.iterdir():
        item.rename(to / item.name)
    partial.rmdir()
    accepted = sum(1 for r in rows if r["accepted"])
    rationales = sum(len(r["rationales"]) for r in rows)
    counts = {"samples (the student's mistakes)": len(rows),
              "with an accepted rationale": accepted,
              "rationales": rationales,
              "accepted rationales": sum(1 for r in rows for x in r["rationales"] if x["accepted"]),
              "review scores": sum(len(x["scores"]) for r in rows for x in r["rationales"]),
              **_overlap_counts(rows, check)}
    card = _card_facts(run_dir)
    atomic_write_text(to / "README.md", dataset_card(
        card, counts=counts, columns=COLUMNS, data_files=data_files,
        title=f"{card['run']}: a FAIR distillation set"))
    overlapping = _overlapping(rows) if check and check.get("checked") else None
    return {"folder": str(to), "format": fmt, "samples": len(rows), "accepted": accepted,
            "overlapping_examples": overlapping}


def _overlapping(rows: list[dict[str, Any]]) -> int:
    """Training examples (question, kind, teacher) that hold a test question."""
    return len({(r["index"], o["kind"], o["teacher"]) for r in rows for o in r["test_overlap"]})


def _overlap_counts(rows: list[dict[str, Any]], check: dict[str, Any] | None) -> dict[str, Any]:
    """The card's line on test questions in the training set (task.decontaminate)."""
    if not check:
        return {"training examples checked for test questions": "no (task.decontaminate: off, "
                                                                "or the build stage has not run)"}
    if not check.get("checked"):
        return {"training examples checked for test questions":
                f"no: {check.get('reason', 'no reason given')}"}
    what = (f"training examples holding a {check['split']} question "
            f"({check['n']}-word n-grams, task.decontaminate: {check['mode']})")
    counts: dict[str, Any] = {what: f"{_overlapping(rows)} of {check['examples_checked']}"}
    if check["mode"] == "drop":
        counts[what] += " (dropped before training)"
    return counts


def _write(rows: list[dict[str, Any]], folder: Path, fmt: str) -> list[dict[str, str]] | None:
    if fmt == "jsonl":
        write_jsonl(folder / JSONL_FILE, rows)
        return [{"split": "train", "path": JSONL_FILE}]
    from datasets import Dataset

    dataset = Dataset.from_list(rows, features=_features())
    if fmt == "parquet":
        (folder / PARQUET_FILE).parent.mkdir(parents=True)
        dataset.to_parquet(str(folder / PARQUET_FILE))
        return [{"split": "train", "path": PARQUET_FILE}]
    dataset.save_to_disk(str(folder))
    return None
