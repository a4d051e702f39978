"""The evaluate stage: zero-shot accuracy of the base and the tuned student on the test split.

Prompts use the instruction format the student was tuned with (the Appendix C rationale
template, with or without the chat template as ``training.chat_template`` says), for
both models, so the comparison is the paper's Table 1 row. The base student's answers
are the same for every variant of a spec: they are kept once under the output folder's
``cache/`` by their own fingerprint and shared.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from fairspec.answering import Scoring, accuracy_stats, answer_split
from fairspec.artifacts import atomic_write_json, prepare_stage_folder, write_jsonl, write_manifest
from fairspec.dsl.schema import Spec
from fairspec.plan.graph import RunPlan
from fairspec.progress import CountProgress, counter
from fairspec.resources import resolve_path
from fairspec.stages.exam import engine_factory, sampling_from
from fairspec.tasks.data import load_rows


def run_evaluate(spec: Spec, run: RunPlan, base_dir: Path, folder: Path, output_dir: Path,
                 progress: CountProgress | None = None) -> dict[str, Any]:
    started = time.time()
    stage = run.stage("evaluate")
    settings = dict(stage.settings)
    prepare_stage_folder(folder, stage.fingerprint)
    ds = spec.task.dataset
    split = load_rows(ds, spec.task.fields, settings["answer"]["extractor"], settings["dataset"]["split"],
                      ds.limit.test, base_dir)
    template = resolve_path(settings["template"]["ref"], base_dir).read_text(encoding="utf-8")
    scoring = Scoring.from_settings(settings["answer"])
    sampling = sampling_from(settings, spec.seed)
    tuned = Path(run.run_dir) / "train" / "model"
    models = {"tuned": str(tuned)} if (tuned / "config.json").is_file() else {}
    if settings["base"]:
        models = {"base": spec.student.model, **models}
    metrics: dict[str, Any] = {"split": settings["dataset"]["split"], "dataset": split.source}
    for label, model in models.items():
        if label == "base":  # shared by every run with the same base fingerprint
            cache = output_dir / "cache" / "evaluate-base" / f"{settings['base_fingerprint']}.jsonl"
            cache.parent.mkdir(parents=True, exist_ok=True)
            out = cache
        else:
            out = folder / "tuned.partial.jsonl"
        records = answer_split(
            split.rows, template,
            engine_factory(settings, model, base_dir, chat_template=settings["chat_template"]),
            sampling, scoring, out, template_name=settings["template"]["ref"],
            on_progress=counter(progress, f"evaluate {label}", len(split.rows), "rows"),
        )
        if label == "base":
            shutil.copyfile(cache, folder / "base.jsonl")
        write_jsonl(folder / f"predictions-{label}.jsonl", records)
        metrics[label] = accuracy_stats(records)
    if not tuned.exists():
        metrics["tuned"] = None
        metrics["note"] = "no tuned model (training had no examples)"
    elif "base" in metrics and metrics["base"]["accuracy"] is not None:
        metrics["gain"] = metrics["tuned"]["accuracy"] - metrics["base"]["accuracy"]
    atomic_write_json(folder / "metrics.json", metrics)
    write_manifest(folder, stage="evaluate", fingerprint=stage.fingerprint,
                   inputs={"train": run.stage("train").fingerprint, "dataset": split.fingerprint},
                   outputs=[f"predictions-{m}.jsonl" for m in models] + ["metrics.json"],
                   counts={m: metrics[m]["correct"] for m in models}, started=started)
    return metrics
