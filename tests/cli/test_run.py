"""`fairspec run` end to end on the CPU with the tiny local model: every stage, the report and
the record; a rerun does nothing; the record replays with no key; variants share stages and calls."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from tiny_runs import STAGES, TinyRun, fairspec, stored_calls, tracking_env

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def finished(quickstart_run: TinyRun) -> tuple[Path, Path]:
    """The tiny quickstart's main run, made once per test run (``quickstart_run`` in
    tests/conftest.py; the spec is ``tiny_runs.tiny_spec``): its folder and spec."""
    return quickstart_run.folder, quickstart_run.spec


#: what the libraries print on their own: progress bars and the Trainer's raw log dicts
LIBRARY_NOISE = ("de-quantizing GGUF", "Loading weights", "Writing model shards", "Map:",
                 "Saving the dataset", "{'loss'", "'train_runtime'", "it/s]")


def test_the_console_holds_fairspec_lines_only(finished):
    folder, _ = finished
    console = (folder / "console.txt").read_text()
    assert (folder / "cache" / "models").is_dir()  # the conversion did happen in this run
    stats = json.loads((folder / "runs" / "quickstart" / "train" / "stats.json").read_text())
    assert stats["steps"] > 0 and stats["attention"] == "eager"  # the spec's kernel was loaded
    assert "quickstart train: done" in console and "quickstart exam: done" in console
    assert [noise for noise in LIBRARY_NOISE if noise in console] == []
    assert re.search(r"train .*steps.* loss \d+\.\d{3} \(fb \d+\.\d{3}, rt \d+\.\d{3}\)", console), console


def test_every_stage_writes_its_manifest_report_and_record(finished):
    folder, _ = finished
    run_dir = folder / "runs" / "quickstart"
    for stage in STAGES:
        assert json.loads((run_dir / stage / "manifest.json").read_text())["stage"] == stage
    report = (run_dir / "report" / "report.md").read_text()
    assert "paper Table 1" in report and "paper Table 2" in report and "paper Table 5" in report
    page = (run_dir / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 1 and "<table>" in page  # self-contained
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert metrics["base"]["total"] == 3
    # the quickstart reviews with log-probabilities: every review has a distribution and
    # a real-valued score, and the report says how they were read
    reviews = [json.loads(line) for line in (run_dir / "review" / "reviews.jsonl").read_text()
               .splitlines()]
    assert reviews and all(r["scored_by"] in ("logprobs", "logprobs-forced") for r in reviews)
    assert all(abs(sum(r["distribution"].values()) - 1) < 1e-4 and 1 <= r["score"] <= 5
               for r in reviews)
    assert "Scores were read from log-probabilities" in report
    assert (run_dir / "report" / "review_distributions.png").is_file()
    record = run_dir / "record"
    assert json.loads((record / "metrics.json").read_text()) == metrics
    stages = json.loads((record / "stages.json").read_text())
    assert all(s["complete"] for s in stages["stages"].values()) and stages["seed"] == 42
    assert "torch" in json.loads((record / "environment.json").read_text())["packages"]
    assert json.loads((record / "datasets.json").read_text())["train"]["fingerprint"]
    # every call behind a rationale, feedback or review is exported, and nothing else
    used = {json.loads(line)["key"] for name in ("teach/rationales.jsonl", "teach/feedback.jsonl",
                                                 "review/reviews.jsonl")
            for line in (run_dir / name).read_text().splitlines()}
    exported = {json.loads(line)["key"] for line in (record / "calls.jsonl").read_text().splitlines()}
    assert exported == used and len(used) > 0
    spec_text = (record / "spec.yaml").read_text()
    assert "variants: []" in spec_text and "templates/prompts.rationale.j2" in spec_text


def test_the_record_differs_from_its_spec_only_by_what_the_run_resolved(finished):
    """Templates, data and the model travel as copies or relative paths: `fairspec diff`
    compares them by what they hold, so only the resolved answer extractor is left."""
    folder, spec = finished
    record = folder / "runs" / "quickstart" / "record"
    assert json.loads((record / "spec_files.json").read_text()) == \
        [{"file": "spec.yaml", "sha256": hashlib.sha256(spec.read_bytes()).hexdigest()}]
    result = fairspec("diff", "--json", str(spec), str(record), cwd=folder)
    assert result.returncode == 1, result.stdout + result.stderr
    differences = json.loads(result.stdout)["differences"]
    assert [(d["section"], d["key"], d["a"], d["b"]) for d in differences] == \
        [("spec", "task.answer.extractor", None, "number")]


def test_a_second_run_does_nothing(finished):
    folder, spec = finished
    calls = stored_calls(folder / "runs")
    again = fairspec("run", str(spec), "--variant", "main", cwd=folder)
    assert again.returncode == 0, again.stderr
    assert f"0 stage(s) run, {len(STAGES)} already done" in again.stdout
    assert stored_calls(folder / "runs") == calls


def test_the_record_replays_without_a_key_to_identical_files(finished):
    folder, _ = finished
    run_dir = folder / "runs" / "quickstart"
    record = run_dir / "record"
    bare = {k: v for k, v in os.environ.items() if "KEY" not in k and "TOKEN" not in k}
    replayed = fairspec("run", str(record / "spec.yaml"), "--replay", str(record / "calls.jsonl"),
                        "--until", "build", cwd=folder, env=bare)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    rerun = record / "rerun" / "quickstart"
    for name in ("exam/mistakes.jsonl", "teach/rationales.jsonl", "teach/feedback.jsonl",
                 "review/reviews.jsonl", "review/accepted.jsonl", "build/preview.jsonl"):
        assert (rerun / name).read_bytes() == (run_dir / name).read_bytes(), name
    from datasets import load_from_disk

    assert json.loads((rerun / "build" / "stats.json").read_text())["examples"] > 0
    assert load_from_disk(str(rerun / "build" / "dataset")).to_list() == \
        load_from_disk(str(run_dir / "build" / "dataset")).to_list()
    assert not (record / "rerun" / "calls.sqlite").exists() or stored_calls(record / "rerun") == \
        sum(1 for _ in (record / "calls.jsonl").open())


def test_a_copied_record_replays_elsewhere_without_the_run_folder_or_the_exam(finished, tmp_path):
    """No absolute path in the record, and its exam answers travel with it: a copy in another
    folder, with the run folder gone, replays teach, review and build to identical files
    without sampling the exam again."""
    import shutil

    folder, _ = finished
    run_dir = folder / "runs" / "quickstart"
    record = run_dir / "record"  # what a replay made under record/rerun is its own run
    texts = [p for p in record.rglob("*") if p.is_file()
             and p.suffix in (".yaml", ".json", ".jsonl", ".j2")
             and (record / "rerun" not in p.parents or p.parent.name == "exam")]
    assert record / "rerun" / "quickstart" / "exam" / "exam.jsonl" in texts
    assert texts and not [p for p in texts if str(folder) in p.read_text()
                          or str(REPO) in p.read_text()]
    copy = tmp_path / "elsewhere" / "record"
    shutil.copytree(run_dir / "record", copy, ignore=shutil.ignore_patterns("calls.sqlite"))
    shutil.rmtree(copy / "rerun" / "quickstart", ignore_errors=False)  # keep only the exam seed
    shutil.copytree(run_dir / "record" / "rerun" / "quickstart" / "exam",
                    copy / "rerun" / "quickstart" / "exam")
    hidden = folder / "runs-hidden"
    (folder / "runs").rename(hidden)
    try:
        bare = {k: v for k, v in os.environ.items() if "KEY" not in k and "TOKEN" not in k}
        replayed = fairspec("run", str(copy / "spec.yaml"), "--replay", str(copy / "calls.jsonl"),
                            "--until", "build", cwd=tmp_path, env=bare)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "quickstart exam: already done" in replayed.stdout  # the exam was not sampled again
        rerun = copy / "rerun" / "quickstart"
        original = hidden / "quickstart"
        for name in ("exam/mistakes.jsonl", "teach/rationales.jsonl", "teach/feedback.jsonl",
                     "review/reviews.jsonl", "review/accepted.jsonl", "build/preview.jsonl"):
            assert (rerun / name).read_bytes() == (original / name).read_bytes(), name
    finally:
        hidden.rename(folder / "runs")


def test_variants_share_stages_and_make_no_teacher_call(finished):
    folder, spec = finished
    calls = stored_calls(folder / "runs")
    done = fairspec("run", str(spec), "--variant", "no-review", "--variant", "alpha-one",
                    "--until", "build", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for stage in ("exam", "teach"):
        assert f"quickstart.no-review {stage}: shared, copied" in out
    for stage in ("review", "build"):  # review off: its own review (no call) and training set
        assert f"quickstart.no-review {stage}: done" in out
    for stage in ("exam", "teach", "review", "build"):  # alpha only changes training
        assert f"quickstart.alpha-one {stage}: shared, copied" in out
    assert stored_calls(folder / "runs") == calls
    manifest = json.loads((folder / "runs" / "quickstart.no-review" / "teach" / "manifest.json").read_text())
    main = json.loads((folder / "runs" / "quickstart" / "teach" / "manifest.json").read_text())
    assert manifest["fingerprint"] == main["fingerprint"]


def scalar_tags(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return set(events.Tags()["scalars"])


def test_tensorboard_holds_the_trainers_losses_and_fairspecs_metrics(finished):
    folder, _ = finished
    board = folder / "runs" / "quickstart" / "tensorboard"
    files = sorted(p.name for p in board.glob("events.out.tfevents.*"))
    assert len(files) == 2 and sum(name.endswith(".fairspec") for name in files) == 1, files
    tags = scalar_tags(board)
    assert {"train/loss", "train/feedback_loss", "train/rationale_loss"} <= tags  # the Trainer's
    assert {"accuracy/base", "accuracy/tuned", "accuracy/student", "exam/wrong",
            "review/accepted_share", "teachers/calls", "teachers/usd"} <= tags  # fairspec's


def test_the_model_and_the_built_set_have_their_cards(finished):
    from huggingface_hub import ModelCard

    folder, _ = finished
    run_dir = folder / "runs" / "quickstart"
    card = ModelCard.load(run_dir / "train" / "model" / "README.md")
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results["zero-shot accuracy, after FAIR tuning"] == round(metrics["tuned"]["accuracy"], 6)
    assert results["zero-shot accuracy, before tuning (base student)"] == \
        round(metrics["base"]["accuracy"], 6)
    built = json.loads((run_dir / "build" / "stats.json").read_text())
    assert f"| svamp-mini | train | {built['mistakes']} |" in card.text
    dataset_card = (run_dir / "build" / "dataset" / "README.md").read_text()
    assert f"| examples | {built['examples']} |" in dataset_card
    from datasets import load_from_disk

    assert len(load_from_disk(str(run_dir / "build" / "dataset"))) == built["examples"]
    assert str(folder) not in card.content and str(folder) not in dataset_card


def test_export_of_the_run_loads_with_datasets(finished):
    import datasets

    folder, _ = finished
    run_dir = folder / "runs" / "quickstart"
    done = fairspec("export", str(run_dir), "--to", str(folder / "shared-set"), cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = datasets.load_dataset(str(folder / "shared-set"), split="train").to_list()
    mistakes = [json.loads(line) for line in (run_dir / "exam" / "mistakes.jsonl").read_text().splitlines()]
    accepted = [json.loads(line) for line in (run_dir / "review" / "accepted.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [m["index"] for m in mistakes]
    assert sum(x["accepted"] for r in rows for x in r["rationales"]) == len(accepted)
    assert all(s["distribution"] for r in rows for x in r["rationales"] for s in x["scores"])


def test_a_variant_tracks_into_the_same_mlflow_experiment(finished):
    from mlflow.tracking import MlflowClient

    folder, spec = finished
    env = tracking_env(folder)
    done = fairspec("run", str(spec), "--variant", "alpha-one", cwd=folder, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE")})
    try:
        client = MlflowClient()
        experiment = client.get_experiment_by_name("quickstart")
        runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    finally:
        for k in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE"):
            os.environ.pop(k, None)
    assert set(runs) == {"quickstart", "quickstart.alpha-one"}
    for name, run in runs.items():
        metrics = run.data.metrics
        assert "loss" in metrics and "rationale_loss" in metrics, name  # the Trainer's
        assert "accuracy/tuned" in metrics and "teachers/calls" in metrics, name  # fairspec's
        assert run.data.params["training.alpha"] == ("1.0" if name.endswith("alpha-one") else "0.5")
