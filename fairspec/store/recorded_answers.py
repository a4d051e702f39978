"""Answers recorded outside fairspec (an exam, rationales, feedback, review scores), looked
up by question instead of by prompt.

A :class:`RecordedTable` is one file of rows (a JSON array, JSON Lines, either gzipped,
or CSV), each naming its question by text (``match: question``; whitespace is
normalised) or by its row position in the split (``match: index``). A
:class:`RecordedTeacher` answers a teacher's calls from such tables: for each role a
column (``{teacher}`` and, for reviews, ``{author}`` stand for the names the files use)
and, when a cell holds a list, which item is the answer (``item: 0``; for reviews
``reviewer_rank``: the reviewer's 1-based position among the rationale's reviewers, the
way the FAIR authors' record lists the scores a rationale received). A review score is
answered as the text ``[score]``, which the review score parser reads back.

What a call is about comes with it as an :class:`About`; nothing here knows a spec.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairspec.errors import RecordedError
from fairspec.hashing import sha256_file

ROLES = ("rationale", "feedback", "review")
REVIEWER_RANK = "reviewer_rank"
#: shown for at most this many missing questions in an error
MAX_LISTED = 10


@dataclass(frozen=True)
class About:
    """What a teacher call is about: its role and question (and, for a review, whose
    rationale it scores and the reviewer's 1-based rank among that rationale's reviewers)."""

    role: str
    index: int
    question: str
    author: str | None = None
    rank: int | None = None

    def where(self) -> str:
        return f"row {self.index}" + (f" (review of {self.author})" if self.author else "")


def normalise(question: str) -> str:
    return " ".join(str(question).split())


def _read_rows(path: Path) -> list[Any]:
    name = path.name.lower()
    data = path.read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
        name = name[:-3]
    text = data.decode("utf-8-sig")
    if name.endswith(".csv"):
        return list(csv.DictReader(io.StringIO(text)))
    if name.endswith(".json"):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordedError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        if not isinstance(rows, list):
            raise RecordedError(f"{path}: a .json recorded file holds a JSON array of rows, "
                                f"got a {type(rows).__name__}")
        return rows
    if name.endswith(".jsonl"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RecordedError(f"{path}:{number}: invalid JSON: {exc.msg}") from None
        return rows
    raise RecordedError(f"{path}: unsupported recorded file type (use .json, .jsonl, .csv, "
                        "optionally gzipped)")


class RecordedTable:
    """One recorded file's rows, found by question text or by row position."""

    def __init__(self, path: Path, *, match: str = "question", question_column: str = "question",
                 index_column: str = "id") -> None:
        if match not in ("question", "index"):
            raise ValueError(f"match must be 'question' or 'index', got {match!r}")
        try:
            rows = _read_rows(path)
            self.sha256 = sha256_file(path)
        except (OSError, EOFError) as exc:
            raise RecordedError(f"cannot read recorded file {path}: {exc}") from None
        self.path, self.match = path, match
        key_column = question_column if match == "question" else index_column
        self.rows: dict[Any, dict[str, Any]] = {}
        self.columns: list[str] = []
        for number, row in enumerate(rows):
            if not isinstance(row, dict) or key_column not in row:
                raise RecordedError(f"{path}: row {number} has no '{key_column}' column "
                                    f"(match: {match})")
            self.columns += [c for c in row if c not in self.columns]
            self.rows.setdefault(self._key(row[key_column]), row)

    def _key(self, value: Any) -> Any:
        if self.match == "question":
            return normalise(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise RecordedError(f"{self.path}: row index {value!r} is not an integer") from None

    def find(self, index: int, question: str) -> dict[str, Any] | None:
        return self.rows.get(self._key(question if self.match == "question" else index))

    def provenance(self) -> dict[str, str]:
        return {"file": self.path.name, "sha256": self.sha256}


@dataclass(frozen=True)
class RecordedColumn:
    """Where one role's answers are: a table, a column (a template) and the item of a list."""

    table: RecordedTable
    column: str
    item: int | str | None = None

    def value(self, row: Mapping[str, Any], about: About, names: Mapping[str, str],
              teacher: str) -> Any:
        column = self.column.format(teacher=names.get(teacher, teacher),
                                    author=names.get(about.author or "", about.author or ""))
        if column not in row:
            raise RecordedError(f"{self.table.path}: {about.where()} has no column '{column}'")
        value = row[column]
        if self.item is None:
            return value
        position = (about.rank or 0) if self.item == REVIEWER_RANK else int(self.item)
        if not isinstance(value, list) or not 0 <= position < len(value):
            raise RecordedError(f"{self.table.path}: {about.where()}, column '{column}' has no "
                                f"item {position} (holds {type(value).__name__})")
        return value[position]


class RecordedTeacher:
    """A teacher whose answers were recorded: ``answer(about)`` is the reply text, or None
    where the files hold no answer for that question."""

    def __init__(self, name: str, columns: Mapping[str, RecordedColumn],
                 names: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.columns = dict(columns)
        self.names = dict(names or {})

    def answer(self, about: About) -> str | None:
        source = self.columns.get(about.role)
        if source is None:
            return None
        row = source.table.find(about.index, about.question)
        if row is None:
            return None
        value = source.value(row, about, self.names, self.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if about.role == "review":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise RecordedError(f"{source.table.path}: {about.where()}: a review score must be "
                                    f"a number, got {value!r}")
            return f"[{value}]"
        return str(value)

    def missing(self, abouts: Iterable[About]) -> list[About]:
        """The calls among ``abouts`` the files do not answer."""
        return [about for about in abouts if self.answer(about) is None]

    def provenance(self) -> dict[str, dict[str, str]]:
        return {role: {**column.table.provenance(), "column": column.column}
                for role, column in self.columns.items()}


def missing_message(teacher: str, missing: list[About], total: int) -> str:
    """``teacher gpt: 3 of 40 rationale calls have no recorded answer: row 4 "..." ...``."""
    roles = sorted({m.role for m in missing})
    shown = "; ".join(f"{m.where()}: {m.question[:60]!r}" for m in missing[:MAX_LISTED])
    more = f"; and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    return (f"teacher {teacher}: {len(missing)} of {total} {'/'.join(roles)} calls have no recorded "
            f"answer: {shown}{more}. Add them to the file, or set recorded.fallback to ask a "
            "live model for them")
