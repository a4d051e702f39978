"""Finds test questions inside training text: word n-gram overlap after normalisation.

The check of GPT-3 (Brown et al. 2020, appendix C), the kind of n-gram decontamination
open-r1 and NeMo-Skills run on distillation data (open-r1's script defaults to 8-grams): a
training text is contaminated by a test question when they share a word n-gram
(:data:`NGRAM` = 13 words, GPT-3's n) after both are normalised (:func:`normalise`: Unicode
NFKC, lowercase, punctuation and symbols deleted, whitespace collapsed). A test question
shorter than n words is its own single n-gram: the whole normalised question must appear
in the training text, word for word.

Two choices beyond the plain method, both to keep false alarms out:

- A question is every text field of its row (``context``, ``question``, ``options``, in
  ``task.fields`` order), so a multiple-choice query shared by many rows ("Which of the
  following can be derived?") is not a question of its own.
- An n-gram that occurs in more than :data:`SHARED_LIMIT` test questions is the task's
  template text, not a question, and is not looked for.

The test side is built once into a table of hashed n-grams (:class:`TestNgrams`); a
training text is then one pass over its words with one hash and one lookup per n-gram:
GSM8K's 7,473 training questions with a rationale and a feedback each (1.1 M words)
against its 1,319 test questions take about a second on two CPU cores.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Words per n-gram (GPT-3's 13).
NGRAM = 13
#: An n-gram in more than this many test questions is template text, not a question.
SHARED_LIMIT = 10

_SPACE = re.compile(r"\s+")


def _deleted(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"


@functools.cache
def _deletions() -> dict[int, None]:
    """Every punctuation (P*) and symbol (S*) character of the Basic Multilingual Plane, for
    one ``str.translate``; rarer ones go through the slower check of each character."""
    return {code: None for code in range(0x10000) if _deleted(chr(code))}


def normalise(text: str) -> str:
    """``text`` as the check compares it: NFKC, lowercase, punctuation and symbols deleted
    (``Tom's`` -> ``toms``, ``$1,000.`` -> ``1000``), whitespace collapsed to one space."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_deletions())
    if not text.isascii():
        text = "".join(c for c in text if not _deleted(c))
    return _SPACE.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """The normalised words of ``text``."""
    return normalise(text).split()


def question_text(fields: Mapping[str, Any], names: Iterable[str]) -> str:
    """A row's question as the check sees it: its text fields ``names`` in order (a list,
    such as the options, as its items), joined by spaces; missing fields are skipped."""
    parts: list[str] = []
    for name in names:
        value = fields.get(name)
        if isinstance(value, list | tuple):
            parts.extend(str(item) for item in value)
        elif value is not None:
            parts.append(str(value))
    return " ".join(parts)


@dataclass(frozen=True)
class Match:
    """The first test question found in a training text: its index in the test split and
    the normalised n-gram both contain."""

    test_index: int
    ngram: str


class TestNgrams:
    """The test questions' n-grams, hashed, built once; :meth:`find` looks them up in a
    training text.

    Args:
        questions: ``(test index, question text)`` pairs.
        n: words per n-gram; a question of fewer words is one n-gram of its own length.
        shared_limit: n-grams in more than this many questions are left out.
    """

    __test__ = False  # not a pytest class, despite its name

    def __init__(self, questions: Iterable[tuple[int, str]], *, n: int = NGRAM,
                 shared_limit: int = SHARED_LIMIT) -> None:
        self.n = n
        owners: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
        self.questions = 0
        self.short_questions = 0
        for index, text in questions:
            tokens = words(text)
            if not tokens:
                continue
            self.questions += 1
            size = min(n, len(tokens))
            self.short_questions += size < n
            for gram in _grams(tokens, size):
                owners[size][hash(gram)].add(index)
        #: gram length -> hash -> the test index reported (the lowest of its owners)
        self._tables: dict[int, dict[int, int]] = {}
        self.shared_ngrams = 0
        for size, table in owners.items():
            kept = {h: min(owner) for h, owner in table.items() if len(owner) <= shared_limit}
            self.shared_ngrams += len(table) - len(kept)
            self._tables[size] = kept
        # the full n first (most questions), then the short questions' lengths
        self._sizes = sorted(self._tables, reverse=True)

    def find(self, text: str) -> Match | None:
        """The first test question ``text`` contains an n-gram of, or None."""
        tokens = words(text)
        for size in self._sizes:
            table = self._tables[size]
            for gram in _grams(tokens, size):
                owner = table.get(hash(gram))
                if owner is not None:
                    return Match(owner, gram)
        return None


def _grams(tokens: list[str], size: int) -> Iterable[str]:
    return (" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1))
