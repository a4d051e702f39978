"""The rules of recorded answers: ``student.exam.engine: recorded`` and ``provider: recorded``.

Each file named must exist and be readable, and each column a role reads must be in it
(with ``{teacher}`` and ``{author}`` filled in for every teacher it can be asked about),
so a wrong column name fails at validate, not in the middle of a run.
"""

from __future__ import annotations

from pathlib import Path

from fairspec.dsl.schema import RecordedRows, Spec
from fairspec.errors import FairspecError
from fairspec.resources import resolve_path
from fairspec.store.recorded_answers import REVIEWER_RANK, RecordedTable

FieldPath = tuple[str | int, ...]


def _found(path: FieldPath, message: str, hint: str | None = None) -> tuple[FieldPath, str, str | None]:
    return (path, message, hint)


def file_names(spec: Spec) -> dict[str, str]:
    """teacher -> the name its recorded files use for it (``{teacher}``, ``{author}``)."""
    return {t.name: (t.recorded.file_name if t.recorded and t.recorded.file_name else t.name)
            for t in spec.teachers}


def recorded_findings(spec: Spec, base_dir: Path) -> list[tuple[FieldPath, str, str | None]]:
    """(path, message, hint) for each broken rule of recorded answers."""
    out: list[tuple[FieldPath, str, str | None]] = []
    tables: dict[tuple[str, str, str, str], RecordedTable | str] = {}

    def table(path: FieldPath, ref: str, rows: RecordedRows) -> RecordedTable | None:
        file = resolve_path(ref, base_dir)
        key = (str(file), rows.match, rows.question_column, rows.index_column)
        if key not in tables:
            if not file.is_file():
                tables[key] = f"no such file: {file}"
            else:
                try:
                    tables[key] = RecordedTable(file, match=rows.match,
                                                question_column=rows.question_column,
                                                index_column=rows.index_column)
                except FairspecError as exc:
                    tables[key] = str(exc)
        found = tables[key]
        if isinstance(found, str):
            out.append(_found(path, found))
            return None
        return found

    exam = spec.student.exam
    where: FieldPath = ("student", "exam")
    if exam.engine == "recorded" and exam.recorded is None:
        out.append(_found(where + ("engine",), "engine recorded needs student.exam.recorded",
                           "recorded: {path: FILE, answer: COLUMN}"))
    if exam.recorded is not None:
        if exam.engine != "recorded":
            out.append(_found(where + ("recorded",), "student.exam.recorded is read only with "
                               "engine: recorded", "set engine: recorded, or remove it"))
        found = table(where + ("recorded", "path"), exam.recorded.path, exam.recorded)
        for key in ("answer", "prediction"):
            column = getattr(exam.recorded, key)
            if found is not None and column is not None and column not in found.columns:
                out.append(_found(where + ("recorded", key), f"no column '{column}' in "
                                   f"{found.path.name}", "its columns: " + ", ".join(found.columns)))
    names = file_names(spec)
    reviews = spec.review.enabled
    for i, teacher in enumerate(spec.teachers):
        answers = teacher.recorded
        if answers is None or teacher.provider != "recorded":
            continue
        path: FieldPath = ("teachers", i, "recorded")
        for key in ("base_url", "api_key_env"):
            if getattr(teacher, key) is not None and answers.fallback is None:
                out.append(_found(("teachers", i, key), f"'{key}' is used only by a recorded "
                                   "teacher's fallback", "set recorded.fallback, or remove it"))
        roles = ("rationale", "feedback") + (("review",) if reviews else ())
        for role in roles:
            source = getattr(answers, role)
            if source is None:
                if answers.fallback is None:
                    out.append(_found(path, f"no recorded {role} answers and no fallback",
                                       f"{role}: {{path: FILE, column: COLUMN}}, or fallback: openai"))
                continue
            if source.item == REVIEWER_RANK and role != "review":
                out.append(_found(path + (role, "item"), "item reviewer_rank is for review only",
                                   "an integer (0: the first item of a list)"))
            found = table(path + (role, "path"), source.path, answers)
            if found is None:
                continue
            authors = [n for n in names if not (spec.review.exclude_self and n == teacher.name)] \
                if role == "review" else [teacher.name]
            live = [t.name for t in spec.teachers if t.name in authors and t.provider != "recorded"]
            if role == "review" and live:
                out.append(_found(path + ("review",), "recorded review scores are of recorded "
                                  f"rationales, but {', '.join(live)} writes live ones",
                                  "make every teacher recorded, or drop recorded.review and set "
                                  "a fallback to review live"))
                continue
            for author in authors:
                column = source.column.format(teacher=names[teacher.name], author=names[author]) \
                    if _placeholders_ok(source.column) else None
                if column is None:
                    out.append(_found(path + (role, "column"), f"column '{source.column}' may "
                                       "hold only the placeholders {teacher} and {author}"))
                    break
                if column not in found.columns:
                    out.append(_found(path + (role, "column"),
                                       f"no column '{column}' in {found.path.name}",
                                       "its columns: " + ", ".join(found.columns)))
                    break
    return out


def _placeholders_ok(column: str) -> bool:
    try:
        column.format(teacher="t", author="a")
    except (KeyError, IndexError, ValueError):
        return False
    return True
