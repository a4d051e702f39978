"""Benchmark tasks: reading answers out of model outputs and gold answers out of datasets."""

from fairspec.tasks.extract import ANSWER_KINDS, answers_match, extract_answer
from fairspec.tasks.gold import parse_gold

__all__ = ["ANSWER_KINDS", "answers_match", "extract_answer", "parse_gold"]
