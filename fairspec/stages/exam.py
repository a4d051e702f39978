"""The exam stage (paper 3.1, eq. 1): the student answers the train split; wrong answers form D_mistake."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fairspec.answering import Scoring, accuracy_stats, answer_split
from fairspec.artifacts import atomic_write_json, prepare_stage_folder, write_jsonl, write_manifest
from fairspec.dsl.schema import Spec
from fairspec.engines import Sampling, make_engine
from fairspec.plan.graph import Stage
from fairspec.progress import CountProgress, counter
from fairspec.resources import resolve_path
from fairspec.tasks.data import load_rows
from fairspec.weights import resolve_model


def sampling_from(settings: dict[str, Any], seed: int) -> Sampling:
    s = settings["sampling"]
    return Sampling(temperature=s["temperature"], top_p=s["top_p"], top_k=s["top_k"],
                    max_new_tokens=s["max_new_tokens"], do_sample=s["do_sample"], seed=seed)


def engine_factory(settings: dict[str, Any], model_ref: str, base_dir: Path, *, chat_template: bool):
    def create():
        return make_engine(
            settings["engine"], resolve_model(model_ref, base_dir), dtype=settings["dtype"],
            device=settings["device"], batch_size=settings["batch_size"],
            use_chat_template=chat_template, vllm_settings=settings.get("vllm"),
        )
    return create


def run_exam(spec: Spec, base_dir: Path, stage: Stage, folder: Path,
             progress: CountProgress | None = None) -> dict[str, Any]:
    """Write exam.jsonl, mistakes.jsonl, stats.json and the manifest; return the stats."""
    started = time.time()
    prepare_stage_folder(folder, stage.fingerprint)
    settings = dict(stage.settings)
    ds = spec.task.dataset
    split = load_rows(ds, spec.task.fields, settings["answer"]["extractor"], ds.train_split,
                      ds.limit.train, base_dir)
    template = resolve_path(settings["template"]["ref"], base_dir).read_text(encoding="utf-8")
    records = answer_split(
        split.rows, template,
        engine_factory(settings, spec.student.model, base_dir,
                       chat_template=settings["chat_template"]),
        sampling_from(settings, spec.seed), Scoring.from_settings(settings["answer"]),
        folder / "exam.jsonl", template_name=settings["template"]["ref"],
        on_progress=counter(progress, "exam", len(split.rows), "rows"),
    )
    mistakes = [r for r in records if not r["correct"]]
    write_jsonl(folder / "mistakes.jsonl", mistakes)
    stats = {"split": ds.train_split, "dataset": split.source, **accuracy_stats(records),
             "mistakes": len(mistakes)}
    atomic_write_json(folder / "stats.json", stats)
    write_manifest(folder, stage="exam", fingerprint=stage.fingerprint,
                   inputs={"dataset": split.fingerprint},
                   outputs=["exam.jsonl", "mistakes.jsonl", "stats.json"],
                   counts={"rows": len(records), "mistakes": len(mistakes)}, started=started)
    return stats
