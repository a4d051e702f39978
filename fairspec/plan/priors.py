"""Output tokens per teacher call, for the plan's estimate: priors from the paper authors'
released records, and the lengths measured in this run's call store once calls exist.

The priors (:data:`OUTPUT_TOKEN_PRIORS`) were measured on the records the authors released
with their code (``zhuochunli/Learn-from-Committee``, MIT; offline copy in
``shared/data/fair-authors-record/``, described in ``shared/data/README.md``):

- ``Llama-2-7b-chat-hf_svamp_rationale_round0.json`` (sha256 ``5b8eae48...e8f4b8e9``): 387
  records (Llama-2-7B-chat's wrong answers on the SVAMP train split), each with
  ``gpt_rationale``, ``gemini_rationale`` and ``mistral_rationale`` = ``[text, score,
  score]``: 3 x 387 = 1161 rationale texts, none missing or empty.
- ``Llama-2-7b-chat-hf_svamp_feedback_round0.json`` (sha256 ``b0b302c8...8da71``): the same
  387 records with ``gpt_feedback``, ``gemini_feedback`` and ``mistral_feedback`` (text):
  1161 feedback texts, none missing or empty.

A text's length in tokens is ``len(text) / 4`` (Python characters, i.e. code points, over
4: the plan's :data:`~fairspec.plan.sizes.CHARS_PER_TOKEN`); a prior is the mean over
all 1161 texts of the role (the three teachers pooled), rounded to the nearest integer.
:func:`measure_authors_records` recomputes them from those two files. Per teacher
(rationale + feedback = tokens per sample):

=========  =========  ========  ================
teacher    rationale  feedback  per sample
=========  =========  ========  ================
gpt-3.5       90.7      116.5       207.1
gemini        27.8      147.9       175.7
mixtral      126.2      159.7       285.9
pooled        81.5      141.4       (1161 each)
=========  =========  ========  ================

What the records do not hold, and what stands in:

- **Review outputs.** The records keep each review's score, not the reviewer's text, so no
  review length can be measured; a review is assumed to write
  :data:`REVIEW_OUTPUT_TOKENS` tokens (the plan's earlier assumption; Figure 4 asks for a
  step-by-step review ending in one number).
- **boolean and multiple_choice tasks.** Teacher texts were released for SVAMP (math)
  only: the StrategyQA record (``..._strategyQA_false_round0.json``, 825 records) holds
  the student's wrong answers and no teacher output, and nothing was released for LogiQA.
  Those kinds use the SVAMP lengths, and the plan says so.

A prior never exceeds the teacher's ``max_tokens`` (a reply cannot be longer). The budget
(:mod:`fairspec.teachers.budget`) does not use these: it reserves each call's worst case.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("rationale", "feedback", "review")
#: Review replies: not in the authors' records (their scores only), so assumed.
REVIEW_OUTPUT_TOKENS = 50
#: Mean output tokens per call (chars/4) in the authors' SVAMP records; see the module docstring.
SVAMP_OUTPUT_TOKENS = {"rationale": 82, "feedback": 141}
#: Where each task kind's prior comes from: the records of the paper's math benchmark.
OUTPUT_TOKEN_PRIORS: dict[str, dict[str, int]] = {
    kind: {**SVAMP_OUTPUT_TOKENS, "review": REVIEW_OUTPUT_TOKENS}
    for kind in ("math", "boolean", "multiple_choice")
}
#: The files the priors were measured on and how many texts each role had.
PRIOR_RECORDS = {
    "rationale": ("Llama-2-7b-chat-hf_svamp_rationale_round0.json", 1161),
    "feedback": ("Llama-2-7b-chat-hf_svamp_feedback_round0.json", 1161),
}
AUTHORS_TEACHERS = ("gpt", "gemini", "mistral")


def prior_source(kind: str) -> str:
    """Where ``kind``'s prior comes from, in words (for the plan's assumption line)."""
    if kind == "math":
        where = "authors' records, math: SVAMP, 1161 texts per role, chars/4"
    else:
        where = (f"authors' records, math: SVAMP, chars/4; none were released for {kind}, "
                 "so the math lengths stand in")
    return f"{where}; review: not in the records, assumed"


def prior_output_tokens(kind: str, max_tokens: int) -> dict[str, int]:
    """role -> the prior output tokens of one call of a teacher with ``max_tokens``."""
    prior = OUTPUT_TOKEN_PRIORS.get(kind, OUTPUT_TOKEN_PRIORS["math"])
    return {role: max(1, min(prior[role], max_tokens)) for role in ROLES}


def measure_authors_records(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Recompute the priors from the authors' records in ``folder``: role -> {"mean": tokens
    (chars/4), "texts": count, "per_teacher": {teacher: mean}}."""
    folder = Path(folder)
    texts: dict[str, dict[str, list[str]]] = {}
    for role, (name, _) in PRIOR_RECORDS.items():
        records = json.loads((folder / name).read_text(encoding="utf-8"))
        texts[role] = {}
        for teacher in AUTHORS_TEACHERS:
            values = [record[f"{teacher}_{role}"] for record in records]
            texts[role][teacher] = [v[0] if isinstance(v, list) else v for v in values]
    out: dict[str, dict[str, Any]] = {}
    for role, by_teacher in texts.items():
        every = [t for values in by_teacher.values() for t in values]
        out[role] = {
            "mean": sum(len(t) for t in every) / len(every) / 4,
            "texts": len(every),
            "per_teacher": {name: sum(len(t) for t in values) / len(values) / 4
                            for name, values in by_teacher.items()},
        }
    return out


@dataclass(frozen=True)
class MeasuredLength:
    """Mean output tokens of one teacher's calls of one role found in the call store."""

    mean: float
    calls: int


def mean_output_tokens(records: Iterable[tuple[str, str, int | None]]
                       ) -> dict[str, dict[str, MeasuredLength]]:
    """(teacher, role, output_tokens) -> teacher -> role -> its mean; None counts are left out."""
    sums: dict[tuple[str, str], list[int]] = {}
    for teacher, role, tokens in records:
        if tokens is not None:
            sums.setdefault((teacher, role), []).append(tokens)
    out: dict[str, dict[str, MeasuredLength]] = {}
    order = {role: i for i, role in enumerate(ROLES)}
    for (teacher, role), values in sorted(sums.items(),
                                          key=lambda kv: (kv[0][0], order.get(kv[0][1], 9))):
        out.setdefault(teacher, {})[role] = MeasuredLength(sum(values) / len(values), len(values))
    return out


def as_json(measured: Mapping[str, Mapping[str, MeasuredLength]]) -> dict[str, Any]:
    return {t: {r: {"mean": round(m.mean, 1), "calls": m.calls} for r, m in roles.items()}
            for t, roles in measured.items()}
