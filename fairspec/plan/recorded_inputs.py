"""What recorded answers put into a compiled stage: their files' provenance (name and
sha256: in the fingerprint, and in each recorded call's settings, so the call store and
the record say where an answer came from) and the paths the stage opens (settings only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fairspec.dsl.recorded_rules import file_names
from fairspec.dsl.schema import RecordedRows, Spec, Teacher
from fairspec.hashing import sha256_file
from fairspec.resources import resolve_path
from fairspec.store.recorded_answers import ROLES

_ROWS = ("match", "question_column", "index_column")


def _file(ref: str, base_dir: Path) -> dict[str, str]:
    path = resolve_path(ref, base_dir)
    return {"file": path.name, "sha256": sha256_file(path)}


def _rows(rows: RecordedRows) -> dict[str, str]:
    return {key: getattr(rows, key) for key in _ROWS}


def teacher_recorded(spec: Spec, teacher: Teacher, base_dir: Path) -> tuple[dict, dict] | None:
    """(provenance, what the committee opens) of a recorded teacher; None for the others."""
    answers = teacher.recorded
    if teacher.provider != "recorded" or answers is None:
        return None
    provenance: dict[str, Any] = {**_rows(answers), "names": file_names(spec),
                                  "fallback": answers.fallback}
    opens: dict[str, Any] = dict(provenance)
    for role in ROLES:
        source = getattr(answers, role)
        if source is None:
            continue
        where = {"column": source.column, "item": source.item}
        provenance[role] = {**_file(source.path, base_dir), **where}
        opens[role] = {"path": source.path, **where}
    return provenance, opens


def exam_recorded(spec: Spec, base_dir: Path) -> tuple[dict, dict] | None:
    """(provenance, what the exam opens) of a recorded exam; None for a sampled one."""
    exam = spec.student.exam.recorded
    if spec.student.exam.engine != "recorded" or exam is None:
        return None
    columns = {"answer": exam.answer, "prediction": exam.prediction,
               "only_mistakes": exam.only_mistakes, **_rows(exam)}
    return {**_file(exam.path, base_dir), **columns}, {"path": exam.path, **columns}
