"""Reads the 1-5 score out of a teacher's peer-review reply (paper Figure 4, P_pr).

The rules, in order (the first rule that finds anything decides; there is no
fallback to a later rule once one has found a candidate):

1. **The last bracketed score wins.** ``[4]``, ``[ 4 ]``, ``[4/5]``,
   ``[Score: 4]``. Figure 4 asks for "one number"; the authors' released code
   also read the last ``[...]``, so a reviewer that changes its mind
   ("[3] ... on reflection [4]") is read as 4. Brackets that do not hold a
   score (``[1, 2]``, ``[citation]``) are ignored.
2. **Else the last clearly stated score.** "Score: 4", "score of 4",
   "final score is 4", "Rating: 4", "I'd rate it 4/5", "I would give it a 4",
   "4 out of 5", a bare "4/5" (only when it reads as a valid score on this
   scale: the scale's maximum as denominator, a numerator in range; so a
   "20/5" or "290/2" in the reviewer's arithmetic is not a score),
   a bold ``**4**``, or a last line that is nothing but a number ("4",
   "4.", "**4**"): Figure 4 asks the reviewer to think step by step and end
   with one number, so "...the steps are sound.\n5" is read as 5.
   A bare number inside prose ("The answer is 10") is *not* a score: unlike
   the authors' code (which took the last number anywhere) we return None.
3. **Else None.**

**An example is not a score.** A candidate that the reply marks as an example is passed
over, in every rule: one written right after "e.g.", "for example", "for instance",
"such as", "example:" or "a score like" (``e.g. [4]``, ``such as a score of 4``, ``a
score like [5] would mean perfect``). A reviewer
that copies an instruction ("Write the number in square brackets, e.g. [4].") and then
condemns the rationale ("... it is wrong. [2]") is read as 2; a reply that only copies
the instruction has no score. The builtin P_pr gives no example at all.

The candidate found is then judged, never repaired:

- out of ``score_range`` -> None (invalid), never clamped ("Score: 7" -> None);
- a fraction whose denominator is not the scale's maximum ("[8/10]" on 1-5)
  -> None, never rescaled;
- a decimal with a non-zero fractional part ("[4.5]") -> None, never rounded;
  a whole decimal ("4.0") is that integer;
- a negative number -> None; numbers longer than 9 digits are not read at all.

``parse_score`` never raises on its text argument (None, empty, binary junk,
megabytes); only a malformed ``score_range`` raises ValueError.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Every repeat below is bounded ({0,6}, {1,9}): an unbounded \s* next to another optional
# \s* backtracks polynomially on long runs of spaces, and the text may be megabytes.
_SP = r"\s{0,6}"  # optional blank (a reply may put "Score:" and "4" on separate lines)
_SP1 = r"\s{1,6}"  # a required blank between words
# A number as a reviewer writes it: optional sign, at most 9 digits, optional decimals.
# The look-arounds keep it from matching inside a longer number or a word.
_NUM = r"(?<![\w.])(?P<num>-?\d{1,9}(?:\.\d{1,9})?)(?![\w]|\.\d)"
# An optional "/5" or "out of 5" after the number.
_DEN = rf"(?:{_SP}(?:/|\bout{_SP1}of\b){_SP}(?P<den>\d{{1,9}})(?![\w]|\.\d))?"
_BOLD = r"\*{0,2}"
_NOUN = r"(?:rationale|submission|answer|response|solution)"
_OBJECT = rf"(?:{_SP1}(?:it|this|that|the)(?:{_SP1}{_NOUN})?)?"  # " it", " this rationale"

_BRACKETED = re.compile(
    rf"\[{_SP}(?:(?:final{_SP1})?score{_SP}[:=]?{_SP})?{_NUM}{_DEN}{_SP}\]",
    re.IGNORECASE,
)

_STATED: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # "Score: 4", "score of 4", "final score is 4", "**Score:** 4", "I'd score it 4/5"
        rf"\bscore{_BOLD}{_OBJECT}{_SP}(?:[:=]|\bis\b|\bof\b|\b(?:would|will){_SP1}be\b|\bas\b)?"
        rf"{_SP}{_BOLD}{_SP}{_NUM}{_DEN}",
        # "Rating: 4", "rating of 4", "I'd rate it 4/5", "I rate this rationale a 4"
        rf"\brat(?:e|ed|ing)\b{_OBJECT}{_SP}(?:[:=]|\bas\b|\bat\b|\bof\b|\ba\b|\ban\b)?"
        rf"{_SP}{_BOLD}{_SP}{_NUM}{_DEN}",
        # "I would give it a 4", "I give this rationale a score of 5", "assign it 3"
        rf"\b(?:give|giving|assign|assigning|award|awarding){_OBJECT}{_SP1}"
        rf"(?:(?:a|an|the){_SP1})?(?:(?:score|rating|grade){_SP1}(?:of{_SP1})?)?"
        rf"{_BOLD}{_SP}{_NUM}{_DEN}",
        # bold "**4**" or "**4/5**"
        rf"\*\*{_SP}{_NUM}{_DEN}{_SP}\*\*",
    )
)

# "4/5" or "4 out of 5" anywhere (a score only if it reads as one on the scale; see parse_score).
_FRACTION = re.compile(
    rf"{_NUM}{_SP}(?:/|\bout{_SP1}of\b){_SP}(?P<den>\d{{1,9}})(?![\w]|\.\d)", re.IGNORECASE
)

# What a reviewer writes right before an example that is not its score: "e.g. [4]",
# "for example, a score of 4", "such as **4**" (at most a few blanks and
# punctuation, and an article, in between).
_EXAMPLE = re.compile(
    r"(?:\be\.?\s{0,2}g\.?|\bfor\s{1,6}(?:example|instance)|\bsuch\s{1,6}as"
    r"|\bexample\s{0,2}:|\b(?:score|rating|grade|mark)s?\s{1,6}like)"
    r"[\s,:;(\"'*]{0,6}(?:(?:a|an|the)\s{1,6})?$",
    re.IGNORECASE,
)


def _is_example(text: str, start: int) -> bool:
    """Whether the candidate starting at ``start`` is written as an example."""
    return _EXAMPLE.search(text[max(0, start - 24):start]) is not None


# A (stripped) line that is nothing but a number: "4", "4.", "**4**".
_ONLY_NUMBER = re.compile(rf"{_BOLD}{_SP}(?P<num>-?\d{{1,9}}(?:\.\d{{1,9}})?){_SP}{_BOLD}\.?")


def check_score_range(score_range: Sequence[int]) -> tuple[int, int]:
    """Return ``score_range`` as ``(low, high)``; ValueError unless two ints with low < high."""
    try:
        low, high = score_range
    except (TypeError, ValueError):
        raise ValueError(
            f"score_range must be two integers (low, high), got {score_range!r}"
        ) from None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (low, high)):
        raise ValueError(f"score_range must be two integers (low, high), got {score_range!r}")
    if low >= high:
        raise ValueError(f"score_range must be ordered with low < high, got {score_range!r}")
    return low, high


def _judge(num: str, den: str | None, low: int, high: int) -> int | None:
    """Turn a found number (and optional denominator) into a valid score, or None."""
    if den is not None and int(den) != high:
        return None
    whole, _, frac = num.partition(".")
    if frac.strip("0"):
        return None
    value = int(whole)
    return value if low <= value <= high else None


def _last_match(patterns: Sequence[re.Pattern[str]], text: str) -> re.Match[str] | None:
    """The match that ends last in ``text`` across ``patterns`` (ties: the longest), passing
    over the ones written as an example."""
    best: re.Match[str] | None = None
    for pattern in patterns:
        for match in pattern.finditer(text):
            if _is_example(text, match.start()):
                continue
            if best is None or (match.end(), -match.start()) > (best.end(), -best.start()):
                best = match
    return best


def _find(text: str, low: int, high: int) -> tuple[int | None, int, int] | None:
    """The candidate the rules pick: (its judged value, start, end of its number), or None."""
    bracketed = _last_match((_BRACKETED,), text)
    if bracketed is not None:
        return _judge(bracketed["num"], bracketed["den"], low, high), *bracketed.span("num")

    stripped = text.rstrip()
    line_start = stripped.rfind("\n") + 1
    last_line = stripped[line_start:]
    only = _ONLY_NUMBER.fullmatch(last_line.strip())
    if only is not None:
        offset = line_start + (len(last_line) - len(last_line.lstrip()))
        start, end = only.span("num")
        return _judge(only["num"], None, low, high), offset + start, offset + end

    stated = _last_match(_STATED, text)
    for fraction in _FRACTION.finditer(text):
        # a bare "a/b" counts only when it reads as a score on this scale ("4/5" on 1-5)
        is_score = (_judge(fraction["num"], fraction["den"], low, high) is not None
                    and not _is_example(text, fraction.start()))
        if is_score and (stated is None or fraction.end() > stated.end()):
            stated = fraction
    if stated is None:
        return None
    return _judge(stated["num"], stated["den"], low, high), *stated.span("num")


def parse_score(text: object, score_range: Sequence[int] = (1, 5)) -> int | None:
    """The review score in ``text``, or None when there is none or it is invalid.

    See the module docstring for the exact rules. ``text`` may be anything
    (None or a non-string gives None); only a malformed ``score_range`` raises.
    """
    low, high = check_score_range(score_range)
    if not isinstance(text, str) or not text:
        return None
    found = _find(text, low, high)
    return None if found is None else found[0]


def score_span(text: object, score_range: Sequence[int] = (1, 5)) -> tuple[int, int] | None:
    """Where in ``text`` the score :func:`parse_score` reads is written: the (start, end)
    character span of its number; None when it reads no valid score. Log-probability
    scoring reads the reviewer's distribution at the token that holds this span."""
    low, high = check_score_range(score_range)
    if not isinstance(text, str) or not text:
        return None
    found = _find(text, low, high)
    if found is None or found[0] is None:
        return None
    return found[1], found[2]


@dataclass(frozen=True)
class ScoredReview:
    """One peer review: who wrote it, the raw reply, and the score read from it (None: invalid)."""

    reviewer: str
    text: str | None
    score: int | None

    @classmethod
    def parse(
        cls, reviewer: str, text: str | None, score_range: Sequence[int] = (1, 5)
    ) -> ScoredReview:
        """Score ``text`` with :func:`parse_score`; logs (at DEBUG) a reply with no valid score."""
        score = parse_score(text, score_range)
        if score is None:
            preview = (text or "")[-80:]
            logger.debug("no valid score in %s's review (ends with %r)", reviewer, preview)
        return cls(reviewer=reviewer, text=text, score=score)
