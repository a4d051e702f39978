"""The evaluate stage: zero-shot accuracy of the base and the tuned student on the test split.

Prompts use the instruction format the student was tuned with (the Appendix C rationale
template, with or without the chat template as ``training.chat_template`` says), for
both models, so the comparison is the paper's Table 1 row. The base student's answers
are the same for every variant of a spec: they are kept once in the output folder's
cache (``cache/evaluate-base/<fingerprint>.jsonl``) and shared. The accuracies go into the
tuned model's card too (:func:`add_card_results`). metrics.json gives each accuracy its 95%
interval and the questions it got right, and base against tuned paired by question (McNemar's
exact test, the difference's interval: :mod:`fairspec.report.significance`).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fairspec.answering import (
    Scoring,
    accuracy_stats,
    answer_split,
    chunk_rows,
    combine_samples,
    engine_factory,
    load_split,
    sample_seed,
    sample_stats,
    sampling_from,
)
from fairspec.artifacts import atomic_write_text, write_jsonl, write_stats
from fairspec.cards import with_results
from fairspec.plan.stage_settings import EvaluateSettings
from fairspec.progress import counter
from fairspec.report import significance
from fairspec.stages.context import StageContext


def run(ctx: StageContext) -> dict[str, Any]:
    ctx.prepare()
    settings = ctx.settings_as(EvaluateSettings)
    split = load_split(settings, ctx.services.base_dir)
    template = ctx.read_template(settings.template)
    scoring = Scoring.from_settings(settings.answer)
    sampling = sampling_from(settings, settings.seed)
    tuned = ctx.input("train", "model/")
    models = {"tuned": str(tuned)} if (tuned / "config.json").is_file() else {}
    if settings.base:
        models = {"base": settings.model, **models}
    metrics: dict[str, Any] = {"split": settings.dataset.split, "dataset": split.source}
    predictions: dict[str, list[dict[str, Any]]] = {}
    k = settings.samples
    for label, model in models.items():
        passes = []
        for sample in range(k):
            tag = "" if sample == 0 else f".sample-{sample}"
            if label == "base":  # shared by every run with the same base fingerprint
                out = ctx.cache("evaluate-base", f"{settings.base_fingerprint}{tag}.jsonl")
            else:
                out = ctx.work_dir / f"tuned{tag}.partial.jsonl"
            progress = f"{ctx.label} {label}" + (f" sample {sample + 1}/{k}" if k > 1 else "")
            passes.append(answer_split(
                split.rows, template,
                engine_factory(settings, model, ctx.services.base_dir,
                               chat_template=settings.chat_template,
                               log_dir=ctx.work_dir / label),
                replace(sampling, seed=sample_seed(sampling.seed, sample)), scoring, out,
                template_name=settings.template.ref, chunk=chunk_rows(settings),
                on_progress=counter(ctx.services.progress, progress, len(split.rows), "rows"),
            ))
            if label == "base" and sample == 0:
                shutil.copyfile(out, ctx.output("base.jsonl"))
        records = combine_samples(passes)
        write_jsonl(ctx.output(f"predictions-{label}.jsonl"), records)
        metrics[label] = accuracy_stats(records)
        if k > 1:
            metrics[label]["samples"] = sample_stats(records)
        predictions[label] = records
    if not tuned.exists():
        metrics["tuned"] = None
        metrics["note"] = "no tuned model (training had no examples)"
    elif "base" in metrics and metrics["base"]["accuracy"] is not None:
        metrics["gain"] = metrics["tuned"]["accuracy"] - metrics["base"]["accuracy"]
        metrics["changes"] = changes(predictions["base"], predictions["tuned"])
    add_statistics(metrics, predictions)
    add_card_results(ctx, settings.card, metrics)
    write_stats(ctx.output("metrics.json"), metrics)
    ctx.finish({m: metrics[m]["correct"] for m in models},
               extra_inputs={"dataset": split.fingerprint})
    return metrics


def add_card_results(ctx: StageContext, facts: Mapping[str, Any] | None,
                     metrics: dict[str, Any]) -> None:
    """The accuracy before and after, in the tuned model's card (``model/README.md``, which
    the train stage wrote with an empty results block): a file inside an input that the
    plan declares this stage rewrites (``amends``), so the model folder is what one shares."""
    card = ctx.amend("train", "model/README.md")
    if not metrics.get("tuned") or facts is None or not card.is_file():
        return
    text = card.read_text(encoding="utf-8")
    atomic_write_text(card, with_results(text, facts, metrics,
                                         headline=significance.evaluation_headline(metrics)))


def add_statistics(metrics: dict[str, Any], predictions: dict[str, list[dict[str, Any]]]) -> None:
    """Into ``metrics``: each accuracy's 95% interval (``ci95``) and the questions it got
    right (``correct_indices``); what identifies the questions (``questions``: a variant's
    evaluation pairs with this one when it answered the same); base against tuned paired
    by question (``paired``: the four counts, McNemar's exact p, the difference's
    ``diff_ci95``); and the methods (``statistics``). Intervals and p are null without scipy.
    With k samples a question, each student's ``samples`` summary gains its intervals and
    base against tuned is also compared on the per-question correctness rates
    (``paired_rates``: the mean difference, a paired t-test's p and its interval)."""
    rates: dict[str, dict[Any, float]] = {}
    for label, records in predictions.items():
        right = significance.correct_indices(records)
        metrics[label].update(significance.accuracy_fields(len(right), len(records)),
                              correct_indices=right)
        summary = metrics[label].get("samples")
        if summary:
            rates[label] = significance.rates(summary["correct_counts"],
                                              [r["index"] for r in records], summary["k"])
            summary.update(significance.sample_fields(summary, list(rates[label].values())))
    if predictions:
        metrics["questions"] = significance.question_set(next(iter(predictions.values())))
    if metrics.get("base") and metrics.get("tuned"):
        paired = significance.pair(predictions["base"], predictions["tuned"])
        if paired is not None:
            metrics["paired"] = significance.paired_fields(paired)
        if "base" in rates and "tuned" in rates:
            paired_rates = significance.paired_rates(rates["base"], rates["tuned"])
            if paired_rates is not None:
                metrics["paired_rates"] = paired_rates
    metrics["statistics"] = {**significance.METHODS,
                             **({"samples": significance.SAMPLE_METHODS} if rates else {})}


def changes(base: list[dict[str, Any]], tuned: list[dict[str, Any]]) -> dict[str, Any]:
    """Question by question, what tuning changed: the questions gained and lost, and why each
    lost one is wrong now (no stated answer, the token budget ran out first, or another
    answer), so a drop in accuracy explains itself."""
    before = {r["index"]: r for r in base}
    gained, lost = [], []
    for after in tuned:
        was = before.get(after["index"])
        if was is None or was["correct"] == after["correct"]:
            continue
        (gained if after["correct"] else lost).append(after)
    unanswered = [r for r in lost if not r["valid"]]
    return {
        "gained": [r["index"] for r in gained],
        "lost": [r["index"] for r in lost],
        "lost_no_answer": [r["index"] for r in unanswered if r["finish_reason"] != "length"],
        "lost_truncated": [r["index"] for r in unanswered if r["finish_reason"] == "length"],
        "lost_other_answer": [r["index"] for r in lost if r["valid"]],
    }
