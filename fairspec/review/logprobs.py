"""Review scores read from log-probabilities (``review.scoring: logprobs``).

A reviewer's reply states its score with one token ("[4]" -> the token "4"); at that
position the model held a distribution over every token it could have written. The
score read here is the probability-weighted mean over the integer scores of
``score_range`` at that position, renormalised over the score tokens (G-Eval's
probability-weighted score; Wang, Zhang & Choi, arXiv 2503.03064, find the mean of the
judgment distribution beats the greedy score in most settings).

Where the reply states a score is decided by the text parser (:func:`score_span`), so
both readings agree on the position. A token counts for score ``s`` when it reads like
the chosen token with ``s`` in place of its digit ("4", " 4", "[4" -> "3", " 3", "[3"),
whitespace aside. Scores must be single digits (a ``score_range`` within 0-9): "10"
would be two tokens, and its first one is also the score 1.

A :class:`ScoreReading` is what a provider returns for a call asked with
``score_logprobs`` and what the call store keeps with the reply (its JSON form).
``how`` says where it was read: ``stated`` (at the reply's own score token) or
``forced`` (a local reviewer that wrote no score was asked for it with one more forward
pass after a score cue, and its next-token distribution read).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fairspec.review.score import check_score_range, score_span

How = Literal["stated", "forced"]
HOWS: tuple[str, ...] = ("stated", "forced")
#: What a local reviewer that wrote no score is given before its score is read.
SCORE_CUE = "\n\nScore: ["
#: Alternatives per token asked of an API (the OpenAI and Gemini maximum).
TOP_LOGPROBS = 20


def check_single_digits(score_range: Sequence[int]) -> tuple[int, int]:
    """``score_range`` as (low, high); ValueError unless every score is one digit (0-9)."""
    low, high = check_score_range(score_range)
    if low < 0 or high > 9:
        raise ValueError(f"log-probability scores must be single digits (0-9), got "
                         f"score_range [{low}, {high}]")
    return low, high


@dataclass(frozen=True)
class TokenChoices:
    """One generated token: its text and the alternatives the model held there
    (token text, natural-log probability), the chosen one among them or not."""

    text: str
    alternatives: Sequence[tuple[str, float]]

    @classmethod
    def read(cls, token: str | None, logprob: float | None,
             top: Iterable[tuple[str | None, float | None]]) -> TokenChoices:
        """A token as an API returns it: its text and log-probability and its top
        alternatives, the chosen one added (an API may leave it out of the top list);
        entries without a text or a log-probability are dropped, and so are those whose
        log-probability is no log-probability (not a finite number at most 0, as a hostile or
        broken server may send: 1000, "abc", 1e308): a token left with none reads as no
        distribution, so the review falls back to its text score."""
        alternatives = [(t, value) for t, lp in top
                        if isinstance(t, str) and (value := _logprob(lp)) is not None]
        if isinstance(token, str) and (value := _logprob(logprob)) is not None:
            alternatives.append((token, value))
        return cls(text=token if isinstance(token, str) else "", alternatives=alternatives)


#: A log-probability a hair above 0 is rounding (a server's float of a probability of 1).
_ROUNDING = 1e-6


def _logprob(value: object) -> float | None:
    """``value`` as a log-probability (a finite number at most 0), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if value > _ROUNDING:
        return None
    return min(float(value), 0.0)


@dataclass(frozen=True)
class ScoreReading:
    """The reviewer's distribution over the scores: ``distribution`` maps each score of the
    range to its probability (renormalised, sums to 1); ``mass`` is the probability the
    reviewer put on score tokens there before renormalising; ``how`` is where it was read."""

    distribution: Mapping[int, float]
    mass: float
    how: How

    def __post_init__(self) -> None:
        if self.how not in HOWS:
            raise ValueError(f"how must be one of {HOWS}, got {self.how!r}")
        if not self.distribution or not math.isclose(sum(self.distribution.values()), 1.0,
                                                     abs_tol=1e-6):
            raise ValueError(f"a score distribution must sum to 1, got {dict(self.distribution)}")

    @property
    def expected(self) -> float:
        """The probability-weighted mean score."""
        return expected_score(self.distribution)

    def to_json(self) -> dict[str, Any]:
        return {"how": self.how, "mass": round(self.mass, 6),
                "distribution": {str(s): round(p, 6) for s, p in sorted(self.distribution.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScoreReading:
        distribution = {int(s): float(p) for s, p in data["distribution"].items()}
        total = sum(distribution.values())  # rounded to 6 places when stored
        return cls(distribution={s: p / total for s, p in distribution.items()},
                   mass=float(data["mass"]), how=data["how"])


def expected_score(distribution: Mapping[int, float]) -> float:
    """sum(s * p(s)) over a distribution that sums to 1."""
    return sum(score * p for score, p in distribution.items())


def distribution_at(chosen: str, digit_at: int, alternatives: Iterable[tuple[str, float]],
                    score_range: Sequence[int], how: How = "stated") -> ScoreReading | None:
    """The reading at one position: ``chosen`` is the token written there, its character
    ``digit_at`` the score's digit; each alternative that reads like ``chosen`` with another
    score's digit counts for that score. None when no alternative is a score token."""
    low, high = check_single_digits(score_range)
    prefix, suffix = chosen[:digit_at], chosen[digit_at + 1:]
    patterns = {(prefix + str(s) + suffix).strip(): s for s in range(low, high + 1)}
    probability: dict[int, float] = {}
    seen: set[str] = set()
    for token, logprob in alternatives:
        score = patterns.get(token.strip())
        if score is None or token in seen or logprob is None or not math.isfinite(logprob):
            continue
        seen.add(token)  # an API may list the chosen token twice
        probability[score] = probability.get(score, 0.0) + math.exp(logprob)
    mass = sum(probability.values())
    if mass <= 0.0:
        return None
    distribution = {s: probability.get(s, 0.0) / mass for s in range(low, high + 1)}
    return ScoreReading(distribution=distribution, mass=min(mass, 1.0), how=how)


def read_stated(text: str, tokens: Sequence[TokenChoices],
                score_range: Sequence[int]) -> ScoreReading | None:
    """The reading at the token where ``text`` states its score (``tokens`` are the reply's
    generated tokens, in order); None when the text states no valid score or the token
    list does not line up with the text there."""
    check_single_digits(score_range)
    span = score_span(text, score_range)
    if span is None:
        return None
    at = span[0]
    start = 0
    for token in tokens:
        end = start + len(token.text)
        if start <= at < end:
            digit_at = at - start
            if token.text[digit_at] != text[at]:
                return None  # the tokens do not spell the text here (e.g. split bytes)
            return distribution_at(token.text, digit_at, token.alternatives, score_range)
        start = end
    return None
