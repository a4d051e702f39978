"""The teacher prompts of a mistake: P_rt(x), P_fb(x, r', y) and P_pr(x, r), rendered and sent
as one user message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairspec.templates import render

TEACH_ROLES = ("rationale", "feedback")


def user_messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def teach_prompts(templates: Mapping[str, str], mistake: dict[str, Any]) -> dict[str, str]:
    """The rendered P_rt(x) and P_fb(x, r', y) for one mistake."""
    fields = mistake["fields"]
    return {
        "rationale": render(templates["rationale"], fields, name="prompts.rationale",
                            row=mistake.get("index")),
        "feedback": render(templates["feedback"], {**fields, "student_answer": mistake["output"],
                                                   "gold_answer": mistake["gold_text"]},
                           name="prompts.feedback", row=mistake.get("index")),
    }


def review_prompt(template: str, mistake: dict[str, Any], rationale: str) -> str:
    """The rendered P_pr(x, r): a reviewer scores one rationale of one mistake."""
    return render(template, {**mistake["fields"], "rationale": rationale,
                             "gold_answer": mistake["gold_text"]}, name="prompts.review",
                  row=mistake.get("index"))


_HEAD_MARK = "\x00fairspec:rationale\x00"


def review_head(template: str, mistake: dict[str, Any], prompt: str) -> int | None:
    """How many leading characters of ``prompt`` (one rendered review of ``mistake``) every
    review of that mistake shares: the template rendered up to where the rationale goes
    (the instructions and the question), if ``prompt`` starts with it; None otherwise."""
    marked = review_prompt(template, mistake, _HEAD_MARK)
    at = marked.find(_HEAD_MARK)
    return at if at > 0 and prompt.startswith(marked[:at]) else None
