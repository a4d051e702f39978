"""Benchmark tasks: loading rows, reading answers out of model outputs, gold answers."""

from fairspec.tasks.data import DataError, LoadedSplit, Row, gold_display, load_rows
from fairspec.tasks.extract import ANSWER_KINDS, answers_match, extract_answer
from fairspec.tasks.gold import parse_gold

__all__ = ["ANSWER_KINDS", "DataError", "LoadedSplit", "Row", "answers_match", "extract_answer",
           "gold_display", "load_rows", "parse_gold"]
