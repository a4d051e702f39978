"""The student answering a split: render, generate, extract, score; streamed and resumable by row.

The exam (train split, eq. 1) and the evaluation (test split, Table 1) are the same
work with different templates and sampling; both go through ``answer_split``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fairspec.artifacts import JsonlAppender, read_jsonl, write_jsonl
from fairspec.engines import Engine, Sampling, make_engine
from fairspec.plan.stage_settings import (
    AnsweringSettings,
    AnswerSettings,
    DecontaminateSettings,
)
from fairspec.tasks import answers_match, extract_answer
from fairspec.tasks.data import DatasetSource, LoadedSplit, Row, load_rows
from fairspec.templates import render
from fairspec.weights import resolve_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scoring:
    """How answers are read and compared (the spec's task.answer section)."""

    extractor: str
    pattern: str | None = None
    tolerance: float = 1e-6

    @classmethod
    def from_settings(cls, answer: AnswerSettings) -> Scoring:
        """From a compiled stage's answer settings."""
        return cls(answer.extractor, answer.pattern, answer.tolerance)


def load_split(settings: AnsweringSettings | DecontaminateSettings, base_dir: Path) -> LoadedSplit:
    """The split a compiled exam or evaluate stage answers, or the build stage checks
    against (its dataset, fields, limit)."""
    dataset, answer = settings.dataset, settings.answer
    if dataset is None or answer is None or settings.fields is None:
        raise ValueError(f"{type(settings).__name__} names no split to load")
    return load_rows(DatasetSource.from_mapping(dataset.to_mapping()), dict(settings.fields),
                     answer.extractor, dataset.split, settings.limit, base_dir)


def sampling_from(settings: AnsweringSettings, seed: int) -> Sampling:
    """The engine's sampling from a compiled exam or evaluate stage's settings."""
    s = settings.sampling
    return Sampling(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                    max_new_tokens=s.max_new_tokens, do_sample=s.do_sample, seed=seed)


def engine_factory(settings: AnsweringSettings, model_ref: str, base_dir: Path, *,
                   chat_template: bool, log_dir: Path | None = None) -> Callable[[], Engine]:
    """Creates the stage's engine on first need (a resumed, finished split loads no model);
    the replicas of a data-parallel exam log to ``log_dir`` (the stage's work folder)."""
    replicas = settings.engines()

    def create() -> Engine:
        return make_engine(
            settings.engine, resolve_model(model_ref, base_dir), dtype=settings.dtype,
            device=settings.device, batch_size=settings.batch_size,
            use_chat_template=chat_template,
            vllm_settings=dict(settings.vllm) if settings.vllm is not None else None,
            replicas=replicas.replicas, per_replica=replicas.per_replica, log_dir=log_dir,
        )
    return create


#: Rows per chunk of the split (the unit of resume: a crash loses at most the chunk in
#: flight). Both engines seed each row (``seed + its position in the split``); hf batches
#: ``batch_size`` rows at a time, so its chunk stays 64; vLLM schedules everything it is
#: given (continuous batching), so it gets many more at once: 1024 per replica.
HF_CHUNK = 64
VLLM_CHUNK_PER_REPLICA = 1024


def chunk_rows(settings: AnsweringSettings) -> int:
    """How many rows an exam or evaluation hands its engine at a time."""
    replicas = settings.engines().replicas
    if settings.engine != "vllm":
        return HF_CHUNK * replicas  # each replica still batches its 64 rows
    return VLLM_CHUNK_PER_REPLICA * replicas


def score(row: Row, text: str, scoring: Scoring) -> tuple[Any, bool]:
    """(extracted answer y', whether it equals the gold y)."""
    options = row.fields.get("options") if scoring.extractor == "choice" else None
    predicted = extract_answer(scoring.extractor, text, options=options, pattern=scoring.pattern)
    return predicted, answers_match(scoring.extractor, predicted, row.gold, scoring.tolerance)


def answer_split(
    rows: Sequence[Row],
    template: str,
    engine_factory: Callable[[], Engine],
    sampling: Sampling,
    scoring: Scoring,
    out_path: Path,
    *,
    template_name: str = "template",
    chunk: int = 64,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Answer every row not already in ``out_path``; returns all records in row order.

    Rows go to the engine in fixed chunks of the whole split (rows ``[0, chunk)``,
    ``[chunk, 2 * chunk)``, ...), each sampled with the seed ``sampling.seed + its start``
    and appended (and fsynced) as it completes. A resumed run redoes every chunk that is
    not complete, whole: the engine sees the same prompts with the same seed, so a crash
    changes no answer (and loses at most the chunk in flight). The engine is only created
    if work remains.
    """
    done = {record["index"]: record for record in read_jsonl(out_path)}
    chunks = [(start, rows[start : start + chunk]) for start in range(0, len(rows), chunk)]
    todo = [(start, part) for start, part in chunks if any(row.index not in done for row in part)]
    if on_progress:
        on_progress(len(done), len(rows))
    if todo:
        log.info("%d of %d chunks to answer (%d rows already in %s)", len(todo), len(chunks),
                 len(done), out_path.name)
        partial = {row.index for _, part in todo for row in part if row.index in done}
        if partial:  # a chunk cut by a crash is redone whole: drop its rows first
            write_jsonl(out_path, [r for r in read_jsonl(out_path) if r["index"] not in partial])
            for index in partial:
                del done[index]
        engine = engine_factory()
        try:
            with JsonlAppender(out_path) as sink:
                for start, part in todo:
                    prompts = [render(template, row.fields, name=template_name, row=row.index)
                               for row in part]
                    records = []
                    seeded = replace(sampling, seed=sampling.seed + start)
                    for completion in engine.generate(prompts, seeded):
                        row = part[completion.position]
                        predicted, correct = score(row, completion.text, scoring)
                        records.append({
                            "index": row.index,
                            "fields": row.fields,
                            "gold": row.gold,
                            "gold_text": row.gold_text,
                            "output": completion.text,
                            "prediction": predicted,
                            "correct": correct,
                            "valid": predicted is not None,
                            "finish_reason": completion.finish_reason,
                            "prompt_tokens": completion.prompt_tokens,
                            "output_tokens": completion.output_tokens,
                        })
                        if on_progress:
                            on_progress(len(done) + len(records), len(rows))
                    records.sort(key=lambda r: r["index"])
                    sink.extend(records)
                    done.update((r["index"], r) for r in records)
                    if on_progress:
                        on_progress(len(done), len(rows))
        finally:
            engine.close()
    wanted = {row.index for row in rows}
    return [done[i] for i in sorted(done) if i in wanted]


def accuracy_stats(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts and accuracy; invalid extractions (no stated answer) counted apart."""
    total = len(records)
    correct = sum(1 for r in records if r["correct"])
    invalid = sum(1 for r in records if not r["valid"])
    return {
        "total": total,
        "correct": correct,
        "wrong": total - correct,
        "invalid": invalid,
        "wrong_with_answer": total - correct - invalid,
        "accuracy": correct / total if total else None,
        "truncated": sum(1 for r in records if r["finish_reason"] == "length"),
    }


#: Sample ``s`` of an evaluation is seeded ``seed + s * SAMPLE_SEED_STRIDE`` (and each row
#: ``+ its position``): below 2**24 rows, no two samples of any rows share a seed. Sample 0
#: is the one sampled pass of ``samples: 1`` (the paper's).
SAMPLE_SEED_STRIDE = 2**24
#: What each sample of a question keeps (``samples`` of a combined record).
SAMPLE_FIELDS = ("output", "prediction", "correct", "valid", "finish_reason", "output_tokens")


def sample_seed(seed: int, sample: int) -> int:
    """The seed of pass ``sample`` over a split (0: ``seed`` itself)."""
    return seed + sample * SAMPLE_SEED_STRIDE


def _vote_key(prediction: Any) -> tuple[str, Any]:
    """An extracted answer as a vote: equal numbers (4 and 4.0) are one answer, a boolean
    is never a number."""
    if isinstance(prediction, bool):
        return ("bool", prediction)
    if isinstance(prediction, int | float):
        return ("number", float(prediction))
    return ("text", str(prediction).strip())


def combine_samples(passes: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One record per question from ``k`` passes over the same rows (each in row order).

    With one pass, its records as they are. With more, the first pass's record (the
    paper's one sampled answer: ``correct`` and ``prediction`` stay the first sample's)
    with ``samples`` (each pass's answer), ``correct_count``, ``majority`` (the answer
    most samples state, the earliest sample's on a tie; None when none states one),
    ``majority_correct`` and ``any_correct`` (pass@k for this question)."""
    if len(passes) == 1:
        return list(passes[0])
    combined = []
    for answers in zip(*passes, strict=True):
        first = answers[0]
        if any(a["index"] != first["index"] for a in answers):
            raise ValueError(f"the passes do not answer the same rows (row {first['index']})")
        votes: Counter[tuple[str, Any]] = Counter(_vote_key(a["prediction"]) for a in answers
                                                  if a["valid"])
        majority = None
        if votes:
            top = max(votes.values())
            majority = next(a for a in answers if a["valid"] and votes[_vote_key(a["prediction"])] == top)
        combined.append({
            **first,
            "samples": [{k: a[k] for k in SAMPLE_FIELDS} for a in answers],
            "correct_count": sum(bool(a["correct"]) for a in answers),
            "majority": None if majority is None else majority["prediction"],
            "majority_correct": bool(majority is not None and majority["correct"]),
            "any_correct": any(a["correct"] for a in answers),
        })
    return combined


def sample_stats(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Over the ``k`` samples of combined records (:func:`combine_samples`): the mean
    accuracy, each sample's, the majority-vote accuracy and pass@k (a question counts when
    any of its k samples is right), and each question's count of right samples."""
    n = len(records)
    k = len(records[0]["samples"]) if records else 0
    majority = sum(r["majority_correct"] for r in records)
    any_right = sum(r["any_correct"] for r in records)
    return {
        "k": k,
        "mean_accuracy": sum(r["correct_count"] for r in records) / (n * k) if n else None,
        "per_sample_accuracy": [sum(bool(r["samples"][s]["correct"]) for r in records) / n
                                for s in range(k)] if n else [],
        "majority_correct": majority,
        "majority_accuracy": majority / n if n else None,
        "pass_correct": any_right,
        "pass_at_k": any_right / n if n else None,
        # index -> right samples, for the questions with any (a paired comparison's input)
        "correct_counts": [[r["index"], r["correct_count"]] for r in records if r["correct_count"]],
    }
