"""Whether a teacher's rationale reaches the gold answer (``review.gold_check``).

The rationale's final answer is read with the task's own extractor (the one the exam
reads the student with) and compared with the mistake's gold answer under the task's
tolerance. A rationale whose answer cannot be read does not reach the gold answer.
This is the STaR-style rejection filter: ``gold_check: require`` drops such a rationale
before any reviewer is asked; ``report`` only records it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fairspec.tasks.extract import answers_match, extract_answer

GoldCheck = Literal["off", "report", "require"]
GOLD_CHECKS: tuple[str, ...] = ("off", "report", "require")


def reaches_gold(text: str | None, mistake: Mapping[str, Any], answer: Mapping[str, Any]
                 ) -> bool:
    """Whether ``text`` (a rationale of ``mistake``, a row of ``mistakes.jsonl``) states
    the gold answer, read as ``answer`` (the task's answer settings: ``extractor``,
    ``pattern``, ``tolerance``) says."""
    extractor = answer["extractor"]
    options = mistake.get("fields", {}).get("options") if extractor == "choice" else None
    predicted = extract_answer(extractor, text, options=options, pattern=answer.get("pattern"))
    return answers_match(extractor, predicted, mistake["gold"], answer.get("tolerance", 1e-6))


def gold_verdict(check: str, text: str | None, mistake: Mapping[str, Any],
                 answer: Mapping[str, Any]) -> bool | None:
    """The ``reaches_gold`` field of a rationale under ``check``: None when it is off."""
    if check not in GOLD_CHECKS:
        raise ValueError(f"gold_check must be one of {', '.join(GOLD_CHECKS)}, got {check!r}")
    return None if check == "off" else reaches_gold(text, mistake, answer)
