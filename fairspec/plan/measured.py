"""What a run's folder and the call store have measured: the exam's mistakes and the
teachers' output lengths, which replace the estimate's assumptions once they exist.

The output lengths are those of this run's calls already in the call store, found by their
keys: the requests the teach and review stages make (:mod:`fairspec.store.teacher_requests`),
built from the finished exam's first :data:`MEASURE_MISTAKES` mistakes and the stored
rationales; so only this run's requests count, whichever run paid for them. Until the store,
the exam's mistakes and the templates can be read, nothing is measured and the priors stand.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

from fairspec.artifacts import is_done, read_jsonl
from fairspec.errors import DataError, RecordedError, StoreDamaged, TemplateRenderError
from fairspec.hashing import canonical_json
from fairspec.plan.graph import RunPlan
from fairspec.plan.kinds import settings_of
from fairspec.plan.priors import MeasuredLength, mean_output_tokens
from fairspec.plan.stage_settings import ExamSettings, ReviewSettings, TeacherSettings, TeachSettings
from fairspec.resources import resolve_path
from fairspec.review.policy import reviewable
from fairspec.store import completed_calls, default_store_path
from fairspec.store.recorded_answers import RecordedTable
from fairspec.store.teacher_requests import (
    TeachRequest,
    review_messages,
    reviewers_of,
    teach_requests,
    teacher_identity,
)

log = logging.getLogger(__name__)

#: Output lengths are measured on the calls of at most this many mistakes (the first ones of
#: the exam's mistakes.jsonl: the teach stage works through them in that order).
MEASURE_MISTAKES = 500


def recorded_mistakes(run: RunPlan, base_dir: Path) -> int | None:
    """A recorded exam that lists only wrong answers: how many it lists (None otherwise, or
    when its file cannot be read: the exam stage says why)."""
    exam = settings_of(run.stage("exam"), ExamSettings)
    recorded = exam.recorded
    if recorded is None or not recorded.only_mistakes:
        return None
    try:
        table = RecordedTable(resolve_path(recorded.path, base_dir), match=recorded.match,
                              question_column=recorded.question_column,
                              index_column=recorded.index_column)
    except RecordedError:
        return None
    limit = exam.limit
    if limit is None:
        return len(table.rows)
    if recorded.match == "index":  # the rows the exam reads are the first ``limit``
        return sum(1 for position in table.rows if position < limit)
    return min(limit, len(table.rows))


def measured_mistakes(run: RunPlan) -> int | None:
    """Mistakes counted from this run's finished exam (its manifest must match the plan)."""
    folder = Path(run.run_dir) / "exam"
    if not is_done(folder, run.stage("exam").fingerprint):
        return None
    try:
        with (folder / "mistakes.jsonl").open(encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    except (OSError, UnicodeDecodeError):  # missing or unreadable: nothing measured yet
        return None


def _exam_mistakes_file(run: RunPlan) -> Path | None:
    """The finished exam's mistakes.jsonl of this run, or of a sibling run sharing its exam."""
    fingerprint = run.stage("exam").fingerprint
    own = Path(run.run_dir)
    candidates = [own]
    try:
        candidates += sorted(p for p in own.parent.iterdir() if p.is_dir() and p != own)
    except OSError:  # no output folder yet: no sibling either
        pass
    for folder in candidates:
        if is_done(folder / "exam", fingerprint) and (folder / "exam" / "mistakes.jsonl").is_file():
            return folder / "exam" / "mistakes.jsonl"
    return None


def _file_signature(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class _Sources:
    """Where a run's stored calls are looked up from (the caches' key: a file's signature
    makes a changed file a new key)."""

    store: str
    store_signature: tuple[tuple[int, int], tuple[int, int]]
    mistakes: str
    mistakes_signature: tuple[int, int]
    templates: str  # canonical JSON of the teach stage's {role: template source}
    rationale_sample: int


@contextmanager
def _rendering(path: str) -> Iterator[None]:
    """A mistake of ``path`` that lacks what a template reads is a damaged exam file."""
    try:
        yield
    except (KeyError, TemplateRenderError) as exc:
        raise DataError(f"{path}: a mistake the templates cannot render ({exc})") from None


@lru_cache(maxsize=8)
def _mistakes(path: str, signature: tuple[int, int]) -> tuple[dict[str, Any], ...]:
    """The first mistakes of the exam's file, read as the teach stage reads them."""
    return tuple(islice(read_jsonl(Path(path)), MEASURE_MISTAKES))


@lru_cache(maxsize=16)
def _teach_requests(path: str, signature: tuple[int, int], templates: str,
                    rationale_sample: int) -> tuple[TeachRequest, ...]:
    """One teacher's teach requests for the first mistakes (the same for every teacher)."""
    with _rendering(path):
        return tuple(teach_requests(json.loads(templates), _mistakes(path, signature),
                                    rationale_sample))


@lru_cache(maxsize=64)
def _teacher_calls(sources: _Sources, teacher: str
                   ) -> tuple[tuple[str, dict[str, Any], int | None, str | None], ...]:
    """(role, mistake, output tokens, reviewable text or None) of one teacher's stored teach
    calls (``teacher``: the canonical JSON of its settings)."""
    who = json.loads(teacher)
    requests = _teach_requests(sources.mistakes, sources.mistakes_signature, sources.templates,
                               sources.rationale_sample)
    keys = {teacher_identity(who, r.messages, r.sample_index).key: r for r in requests}
    out = []
    for key, (status, text, tokens) in completed_calls(sources.store, keys).items():
        request = keys[key]
        usable = text if reviewable({"status": status, "text": text}) else None
        out.append((request.role, request.mistake, tokens, usable))
    return tuple(out)


@lru_cache(maxsize=256)
def _review_calls(sources: _Sources, author: str, reviewer: str, template: str
                  ) -> tuple[int | None, ...]:
    """Output tokens of ``reviewer``'s stored reviews of ``author``'s rationales."""
    who = json.loads(reviewer)
    with _rendering(sources.mistakes):
        keys = [teacher_identity(who, review_messages(template, mistake, text)).key
                for role, mistake, _, text in _teacher_calls(sources, author)
                if role == "rationale" and text is not None]
    return tuple(tokens for _, _, tokens in completed_calls(sources.store, keys).values())


def _who(teacher: TeacherSettings) -> str:
    return canonical_json({"provider": teacher.provider, "base_url": teacher.base_url,
                           "model": teacher.model, "generation": teacher.generation})


def _sources(run: RunPlan, base_dir: Path, call_store: str | os.PathLike[str] | None
             ) -> _Sources | None:
    """Where this run's stored calls are found; None while the store or the finished exam's
    mistakes are missing (nothing measured yet)."""
    store = Path(call_store) if call_store is not None \
        else default_store_path(Path(run.run_dir).parent)
    mistakes = _exam_mistakes_file(run) if store.is_file() else None
    if mistakes is None:
        return None
    teach = settings_of(run.stage("teach"), TeachSettings)
    templates = canonical_json({role: resolve_path(ref.ref, base_dir).read_text(encoding="utf-8")
                                for role, ref in teach.templates.items()})
    return _Sources(str(store), (_file_signature(store), _file_signature(Path(f"{store}-wal"))),
                    str(mistakes), _file_signature(mistakes), templates, teach.rationale_sample)


def _measured_calls(sources: _Sources, run: RunPlan, base_dir: Path
                    ) -> list[tuple[str, str, int | None]]:
    """(teacher, role, output tokens) of this run's teach and review calls in the store."""
    teachers = {t.name: _who(t) for t in settings_of(run.stage("teach"), TeachSettings).teachers}
    rows = [(name, role, tokens) for name, who in teachers.items()
            for role, _, tokens, _ in _teacher_calls(sources, who)]
    review = settings_of(run.stage("review"), ReviewSettings)
    if review.enabled and review.template is not None:
        template = resolve_path(review.template.ref, base_dir).read_text(encoding="utf-8")
        for reviewer in review.teachers or ():
            for author in teachers:
                if reviewer.name not in reviewers_of(run.stage("review").settings, author):
                    continue
                rows += [(reviewer.name, "review", tokens) for tokens in _review_calls(
                    sources, teachers[author], _who(reviewer), template)]
    return rows


def measured_output_tokens(run: RunPlan, base_dir: Path,
                           call_store: str | os.PathLike[str] | None = None
                           ) -> dict[str, dict[str, MeasuredLength]]:
    """teacher -> role -> mean output tokens of this run's calls already in the call store.

    Empty when nothing was found, or nothing can be yet: the store, the finished exam's
    mistakes or the templates are missing, or one of them cannot be read (the stage that
    reads it says why; the plan keeps its priors)."""
    try:
        sources = _sources(run, base_dir, call_store)
        return {} if sources is None else mean_output_tokens(_measured_calls(sources, run, base_dir))
    except (OSError, DataError, StoreDamaged) as exc:  # a file vanished, or is damaged
        log.info("no output lengths measured for %s: %s", run.name, exc)
        return {}
