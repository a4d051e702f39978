"""The exam stage from recorded answers (``student.exam.engine: recorded``): the student's
answers come from a file, by question, instead of being sampled; the same outputs as the
sampled exam (exam.jsonl, mistakes.jsonl, stats.json).

Each train row's recorded answer is found by question text or row position. With
``only_mistakes`` the file lists only wrong answers: a listed row is a mistake (its final
answer read from ``prediction`` or by the task's extractor), an unlisted one counts as
answered right. Otherwise every row must be listed and is graded like a sampled answer;
rows the file does not answer are an error that lists them.
"""

from __future__ import annotations

from typing import Any

from fairspec.answering import Scoring, accuracy_stats, load_split, score
from fairspec.artifacts import write_jsonl, write_stats
from fairspec.errors import RecordedMissing, StageContractError
from fairspec.plan.stage_settings import ExamSettings
from fairspec.resources import resolve_path
from fairspec.stages.context import StageContext
from fairspec.store.recorded_answers import MAX_LISTED, RecordedTable
from fairspec.tasks import answers_match, extract_answer
from fairspec.tasks.data import Row


def run(ctx: StageContext) -> dict[str, Any]:
    ctx.prepare()
    settings = ctx.settings_as(ExamSettings)
    recorded = settings.recorded
    if recorded is None:
        raise StageContractError(f"stage {ctx.stage.name} is a recorded exam without recorded answers")
    split = load_split(settings, ctx.services.base_dir)
    table = RecordedTable(resolve_path(recorded.path, ctx.services.base_dir),
                          match=recorded.match, question_column=recorded.question_column,
                          index_column=recorded.index_column)
    scoring = Scoring.from_settings(settings.answer)
    records, unlisted = [], []
    for row in split.rows:
        found = table.find(row.index, str(row.fields.get("question", "")))
        if found is None:
            unlisted.append(row)
            if recorded.only_mistakes:
                records.append(_record(row, None, None, correct=True))
            continue
        text = found.get(recorded.answer)
        text = "" if text is None else str(text)
        if recorded.prediction is not None:
            predicted = _prediction(found.get(recorded.prediction), scoring, row)
            correct = answers_match(scoring.extractor, predicted, row.gold, scoring.tolerance)
        else:
            predicted, correct = score(row, text, scoring)
        # a file of wrong answers says so: a listed answer is a mistake, however it reads
        records.append(_record(row, text, predicted, correct=correct and not recorded.only_mistakes))
    if unlisted and not recorded.only_mistakes:
        shown = ", ".join(str(r.index) for r in unlisted[:MAX_LISTED])
        more = f" and {len(unlisted) - MAX_LISTED} more" if len(unlisted) > MAX_LISTED else ""
        raise RecordedMissing(
            f"{table.path}: {len(unlisted)} of {len(split.rows)} train rows have no recorded "
            f"answer (rows {shown}{more}); add them, or set only_mistakes: true if the file "
            "lists only wrong answers")
    write_jsonl(ctx.output("exam.jsonl"), records)
    mistakes = [r for r in records if not r["correct"]]
    write_jsonl(ctx.output("mistakes.jsonl"), mistakes)
    stats = {"split": settings.dataset.split, "dataset": split.source, **accuracy_stats(records),
             "mistakes": len(mistakes),
             "recorded": {**table.provenance(), "listed": len(records) - len(unlisted),
                          "only_mistakes": recorded.only_mistakes}}
    write_stats(ctx.output("stats.json"), stats)
    ctx.finish({"rows": len(records), "mistakes": len(mistakes)},
               extra_inputs={"dataset": split.fingerprint})
    return stats


def _prediction(value: Any, scoring: Scoring, row: Row) -> Any:
    """A recorded final answer, read the way the task reads one (None: none given, or none
    the task's extractor can read: an invalid answer, as a sampled one would be)."""
    if value is None or str(value).strip() == "":
        return None
    options = row.fields.get("options") if scoring.extractor == "choice" else None
    return extract_answer(scoring.extractor, str(value), options=options, pattern=scoring.pattern)


def _record(row: Row, text: str | None, predicted: Any, *, correct: bool) -> dict[str, Any]:
    return {"index": row.index, "fields": row.fields, "gold": row.gold, "gold_text": row.gold_text,
            "output": text, "prediction": predicted, "correct": correct,
            "valid": text is None or predicted is not None, "finish_reason": "recorded",
            "prompt_tokens": None, "output_tokens": None}
