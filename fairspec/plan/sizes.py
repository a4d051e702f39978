"""What the estimate knows before anything runs: train rows, field lengths, prompt tokens.

Inputs are the real templates rendered with texts of the dataset's typical lengths (4
characters per token), measured on local data where there is some.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fairspec.dsl.loader import template_ref
from fairspec.dsl.schema import Spec
from fairspec.resources import resolve_path
from fairspec.tasks.data import DATA_SUFFIXES, data_suffix, read_text
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


def count_train_rows(spec: Spec, base_dir: Path) -> int | None:
    """Train rows after the limit: counted from local data, or known for the paper's hub ids."""
    ds = spec.task.dataset
    rows: int | None = None
    if ds.hf is not None and ds.train_split == "train":
        rows = KNOWN_TRAIN_ROWS.get(ds.hf)
    elif ds.path is not None:
        file = _local_split_file(spec, base_dir, ds.train_split)
        rows = len(_read_rows(file, limit=None)) if file else None
    if ds.limit.train is not None:
        rows = ds.limit.train if rows is None else min(rows, ds.limit.train)
    return rows


def _local_split_file(spec: Spec, base_dir: Path, split: str) -> Path | None:
    local = resolve_path(spec.task.dataset.path or "", base_dir)
    if local.is_file():
        return local
    for suffix in DATA_SUFFIXES:
        if (local / f"{split}{suffix}").is_file():
            return local / f"{split}{suffix}"
    return None


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


def field_chars(spec: Spec, base_dir: Path) -> dict[str, int]:
    """Mean characters per template field, measured on local data where possible."""
    chars = dict(task_kind(spec.task.kind).field_chars)  # typical lengths, per task kind
    if spec.task.dataset.path is None:
        return chars
    file = _local_split_file(spec, base_dir, spec.task.dataset.train_split)
    rows = _read_rows(file) if file else []
    for name, column in spec.task.fields.items():
        values = [row.get(column) for row in rows if isinstance(row, dict) and column in row]
        if values:
            chars[name] = int(sum(len(json.dumps(v, ensure_ascii=False)) for v in values) / len(values))
    return chars


def _filler(n_chars: int) -> str:
    return ("word " * (max(n_chars, 1) // 5 + 1))[: max(n_chars, 1)]


def prompt_tokens(spec: Spec, base_dir: Path, role: str, extra: dict[str, int]) -> int:
    """Tokens of the template of ``role`` rendered with fields of their typical lengths
    (``extra``: characters of the variables the role adds, e.g. the rationale reviewed)."""
    chars = field_chars(spec, base_dir)
    variables: dict[str, Any] = {}
    for name in spec.task.fields:
        if name == "answer":
            continue
        if name == "options":
            variables[name] = [_filler(chars.get(name, 400) // 4)] * 4
        else:
            variables[name] = _filler(chars.get(name, 100))
    variables.update({k: _filler(v) for k, v in extra.items()})
    source = resolve_path(template_ref(spec, role), base_dir).read_text(encoding="utf-8")
    return int(len(render(source, variables, name=role)) / CHARS_PER_TOKEN) + 8
