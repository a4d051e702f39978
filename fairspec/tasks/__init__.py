"""Benchmark tasks: the task kinds, loading rows, reading answers out of model outputs, gold answers.

Layer 1: nothing here imports the spec language (``fairspec.dsl``) or anything above it;
the spec language builds its task kinds from :data:`TASK_KINDS`.
"""

from fairspec.tasks.data import DATA_SUFFIXES, DataError, DatasetSource, LoadedSplit, Row, load_rows
from fairspec.tasks.extract import ANSWER_KINDS, answers_match, extract_answer
from fairspec.tasks.gold import gold_display, parse_gold
from fairspec.tasks.kinds import TASK_KINDS, TaskKindInfo, task_kind

__all__ = ["ANSWER_KINDS", "DATA_SUFFIXES", "DataError", "DatasetSource", "LoadedSplit", "Row",
           "TASK_KINDS", "TaskKindInfo", "answers_match", "extract_answer", "gold_display",
           "load_rows", "parse_gold", "task_kind"]
