"""Gold answers: turn a dataset's answer column into the typed value extraction yields.

:func:`parse_gold` uses the same kinds as :func:`fairspec.tasks.extract_answer`, so an
extracted answer and a gold answer compare with :func:`fairspec.tasks.answers_match`:

- ``number``: a number, or numeric text; a GSM8K solution is read after its last
  ``####``; thousands separators are dropped (``"1,080"`` -> 1080.0).
- ``boolean``: a bool, or the text ``true`` / ``false`` (any case).
- ``choice``: a 0-based index (int or digits), or an option letter (``a``-``d``,
  ``A``-``D`` for four options).
- ``regex``: the text itself, stripped.

A gold answer that does not parse raises ValueError naming the value: a gold
that cannot be read is a data error, never a silent "wrong". :func:`gold_display`
writes a parsed gold answer the way a prompt shows it.

These functions are keyed by the answer (extractor) kind, not the task kind: a task
kind's default extractor is in :mod:`fairspec.tasks.kinds`, and a spec may override
it (``regex`` reads the gold as text for any task kind).
"""

from __future__ import annotations

import logging
import math
import operator
import re
from collections.abc import Sequence

from fairspec.tasks.extract import ANSWER_KINDS, Answer

logger = logging.getLogger(__name__)

_GOLD_NUMBER_RE = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_THOUSANDS_RE = re.compile(r"(?<=[0-9]),(?=[0-9]{3}(?![0-9]))")
_BOOLEANS = {"true": True, "false": False}


def parse_gold(kind: str, value: object, options: Sequence[str] | None = None) -> Answer:
    """The gold answer ``value`` as the type ``kind`` calls for.

    Args:
        kind: ``"number"``, ``"boolean"``, ``"choice"`` or ``"regex"``.
        value: the dataset's answer cell.
        options: the option texts (choice only); when given, an index must be
            below ``len(options)``; without them any index below 26 (A-Z) is valid.

    Raises:
        ValueError: an unknown kind, or a value that is not a valid gold answer.

    Examples:
        >>> parse_gold("number", "Natalia sold 48+24 = <<48+24=72>>72 clips.\\n#### 1,080")
        1080.0
        >>> parse_gold("number", "145")
        145.0
        >>> parse_gold("boolean", "False")
        False
        >>> parse_gold("choice", "c")
        2
    """
    if kind not in ANSWER_KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; expected one of {', '.join(ANSWER_KINDS)}")
    if kind == "number":
        return _gold_number(value)
    if kind == "boolean":
        return _gold_boolean(value)
    if kind == "choice":
        return _gold_choice(value, options)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"regex gold answer must be non-empty text, got {value!r}")


def _gold_number(value: object) -> float:
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        final = value.rpartition("####")[2].strip()
        final = _THOUSANDS_RE.sub("", final)
        if _GOLD_NUMBER_RE.fullmatch(final):
            number = float(final)
    else:
        try:  # numpy and other number types
            number = float(operator.index(value))  # type: ignore[arg-type]
        except TypeError:
            try:
                number = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                number = None
    if number is None or not math.isfinite(number):
        raise ValueError(f"numeric gold answer expected, got {value!r}")
    return number


def _gold_boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    if getattr(getattr(value, "dtype", None), "kind", None) == "b":  # numpy.bool_
        return bool(value)  # type: ignore[arg-type]
    raise ValueError(f"boolean gold answer expected (true/false), got {value!r}")


def _gold_choice(value: object, options: Sequence[str] | None) -> int:
    count = len(options) if options is not None else 26
    if count < 1:
        raise ValueError(f"options must hold at least one option, got {options!r}")
    index: int | None = None
    if isinstance(value, bool):
        index = None
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            index = int(text)
        elif len(text) == 1 and text.isascii() and text.isalpha():
            index = ord(text.upper()) - ord("A")
    elif isinstance(value, float):
        index = int(value) if value.is_integer() else None
    else:
        try:
            index = operator.index(value)  # int, numpy integers
        except TypeError:
            index = None
    if index is None or not 0 <= index < count:
        raise ValueError(
            f"choice gold answer must be an option index 0-{count - 1} or letter "
            f"A-{chr(ord('A') + count - 1)}, got {value!r}"
        )
    return index


def gold_display(kind: str, gold: Answer, options: Sequence[str] | None = None) -> str:
    """A gold answer as a prompt shows it.

    >>> gold_display("number", 145.0)
    '145'
    >>> gold_display("number", 2.5)
    '2.5'
    >>> gold_display("boolean", False)
    'false'
    >>> gold_display("choice", 2, ["red", "green", "blue"])
    'C. blue'
    """
    if kind == "boolean" and isinstance(gold, bool):
        return "true" if gold else "false"
    if kind == "number" and isinstance(gold, float):
        return str(int(gold)) if gold.is_integer() and abs(gold) < 1e16 else repr(gold)
    if kind == "choice" and isinstance(gold, int):
        letter = chr(ord("A") + gold)
        return f"{letter}. {options[gold]}" if options is not None else letter
    return str(gold)
