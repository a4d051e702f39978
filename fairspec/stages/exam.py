"""The exam stage (paper 3.1, eq. 1): the student answers the train split; wrong answers form D_mistake."""

from __future__ import annotations

from typing import Any

from fairspec.answering import (
    Scoring,
    accuracy_stats,
    answer_split,
    chunk_rows,
    engine_factory,
    load_split,
    sampling_from,
)
from fairspec.artifacts import write_jsonl, write_stats
from fairspec.plan.stage_settings import ExamSettings
from fairspec.progress import counter
from fairspec.stages.context import StageContext
from fairspec.stages.rounds import earlier_mistakes, follows_round, student_after


def run(ctx: StageContext) -> dict[str, Any]:
    """Write exam.jsonl, mistakes.jsonl, stats.json and the manifest; return the stats."""
    ctx.prepare()
    settings = ctx.settings_as(ExamSettings)
    split = load_split(settings, ctx.services.base_dir)
    # round k >= 2: round k-1's tuned student, on the whole split or on what it got wrong
    student = student_after(ctx) if follows_round(ctx) else settings.model
    covered = earlier_mistakes(ctx)
    rows = split.rows if covered is None else [r for r in split.rows if r.index in covered]
    records = answer_split(
        rows, ctx.read_template(settings.template),
        engine_factory(settings, student, ctx.services.base_dir,
                       chat_template=settings.chat_template, log_dir=ctx.work_dir),
        sampling_from(settings, settings.seed), Scoring.from_settings(settings.answer),
        ctx.output("exam.jsonl"), template_name=settings.template.ref,
        chunk=chunk_rows(settings),
        on_progress=counter(ctx.services.progress, ctx.label, len(rows), "rows"),
    )
    mistakes = [r for r in records if not r["correct"]]
    write_jsonl(ctx.output("mistakes.jsonl"), mistakes)
    stats = {"split": settings.dataset.split, "dataset": split.source, **accuracy_stats(records),
             "mistakes": len(mistakes)}
    if follows_round(ctx):  # which student sat this exam, and on which questions
        stats.update(student=student, covers="mistakes" if covered is not None else "all")
    write_stats(ctx.output("stats.json"), stats)
    ctx.finish({"rows": len(records), "mistakes": len(mistakes)},
               extra_inputs={"dataset": split.fingerprint})
    return stats
