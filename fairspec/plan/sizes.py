"""What the estimate knows before anything runs: train rows, field lengths, prompt tokens.

Inputs are the real templates rendered with texts of the dataset's typical lengths (4
characters per token), measured on local data where there is some.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairspec.errors import DataError
from fairspec.plan.stage_settings import AnsweringSettings, DatasetRef
from fairspec.resources import resolve_path
from fairspec.tasks.data import data_suffix, read_text, split_file
from fairspec.tasks.kinds import task_kind
from fairspec.templates import render

CHARS_PER_TOKEN = 4.0
#: Rows of the hub datasets the paper used (paper Table 6), for a plan made before any download.
KNOWN_TRAIN_ROWS = {
    "openai/gsm8k": 7473,
    "ChilleD/SVAMP": 700,
    "ChilleD/StrategyQA": 1603,
    "lucasmccabe/logiqa": 7376,
}


@dataclass(frozen=True)
class TaskText:
    """What a prompt's size depends on: the task kind, its fields, the train split (its
    rows counted and measured when it is a local file) and the spec's folder."""

    task_kind: str
    fields: Mapping[str, str]
    dataset: DatasetRef
    limit: int | None
    base_dir: Path

    @classmethod
    def of(cls, exam: AnsweringSettings, base_dir: Path) -> TaskText:
        """The train split a compiled exam answers."""
        return cls(exam.answer.task_kind, exam.fields, exam.dataset, exam.limit, base_dir)

    def local_file(self) -> Path | None:
        """The split's local file (None: on the hub, or not found)."""
        if self.dataset.path is None:
            return None
        try:
            return split_file(resolve_path(self.dataset.path, self.base_dir), self.dataset.split)
        except DataError:
            return None


def count_train_rows(text: TaskText) -> int | None:
    """Train rows after the limit: counted from local data, or known for the paper's hub ids."""
    ds = text.dataset
    rows: int | None = None
    if ds.hf is not None and ds.split == "train":
        rows = KNOWN_TRAIN_ROWS.get(ds.hf)
    elif ds.path is not None:
        file = text.local_file()
        rows = len(_read_rows(file, limit=None)) if file else None
    if text.limit is not None:
        rows = text.limit if rows is None else min(rows, text.limit)
    return rows


def _read_rows(file: Path, limit: int | None = 200) -> list[dict[str, Any]]:
    """Rows of a local jsonl/json file (others: none; the estimate then uses typical lengths)."""
    suffix = data_suffix(file).removesuffix(".gz")
    try:
        if suffix == ".jsonl":
            rows = [json.loads(line) for line in read_text(file).splitlines() if line.strip()]
            return rows[:limit] if limit else rows
        if suffix == ".json":
            data = json.loads(read_text(file))
            rows = data if isinstance(data, list) else []
            return rows[:limit] if limit else rows
    except (OSError, ValueError, EOFError):
        return []
    return []


def field_chars(text: TaskText) -> dict[str, int]:
    """Mean characters per template field, measured on local data where possible."""
    chars = dict(task_kind(text.task_kind).field_chars)  # typical lengths, per task kind
    if text.dataset.path is None:
        return chars
    file = text.local_file()
    rows = _read_rows(file) if file else []
    for name, column in text.fields.items():
        values = [row.get(column) for row in rows if isinstance(row, dict) and column in row]
        if values:
            chars[name] = int(sum(len(json.dumps(v, ensure_ascii=False)) for v in values) / len(values))
    return chars


def _filler(n_chars: int) -> str:
    return ("word " * (max(n_chars, 1) // 5 + 1))[: max(n_chars, 1)]


def prompt_tokens(text: TaskText, role: str, template: str, extra: dict[str, int]) -> int:
    """Tokens of ``role``'s template (``template``: its reference) rendered with fields of
    their typical lengths (``extra``: characters of the variables the role adds, e.g. the
    rationale reviewed)."""
    chars = field_chars(text)
    variables: dict[str, Any] = {}
    for name in text.fields:
        if name == "answer":
            continue
        if name == "options":
            variables[name] = [_filler(chars.get(name, 400) // 4)] * 4
        else:
            variables[name] = _filler(chars.get(name, 100))
    variables.update({k: _filler(v) for k, v in extra.items()})
    source = resolve_path(template, text.base_dir).read_text(encoding="utf-8")
    return int(len(render(source, variables, name=role)) / CHARS_PER_TOKEN) + 8
