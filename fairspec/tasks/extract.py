"""Answer extraction: turn a model's free-text output into a typed answer, or None.

One public entry point, :func:`extract_answer`, with four kinds (the spec's
``task.answer.extractor``): ``number`` -> float, ``boolean`` -> bool, ``choice`` ->
0-based option index, ``regex`` -> str. :func:`answers_match` compares an extracted
answer with a gold answer (see :mod:`fairspec.tasks.gold`).

Precedence for number, boolean and choice (the first rule that yields a valid
value wins; within a rule the LAST valid occurrence wins, so a model that
corrects itself is read at its final word):

1. ``\\boxed{X}``
2. ``#### X`` (GSM8K style)
3. a "final answer" marker: ``Final answer: X``, ``The final answer is X``
4. an answer marker: ``Answer: X``, ``The answer is X``, ``My answer: X``,
   ``The answer to the question "..." is X``, ``Conclusion: X``, ``Verdict: X``,
   ``The correct option is X``
5. a stated sentence: boolean ``I believe this statement is false``, ``I would
   answer "true"``; choice ``Option C is correct``, ``(B) is the best``
6. the opening: boolean ``True.``, ``False:``, ``Yes,``, ``No.`` at the start (not
   ``True or False: ...``, the question restated); choice a label ``(B) ...`` or
   ``C. ...`` at the start, unless the output goes through the options
   (``A. ...\\nB. ...``)
7. a fallback: number -> the last number in the text; choice -> the only option
   letter mentioned (``(B)``, ``option B``), else the only option text quoted;
   boolean -> none. ``true`` somewhere in an explanation is not a verdict (the
   paper authors' code counted it; this module deliberately does not).

What follows a marker is read on the marker's line; when that line is blank,
the next non-blank line counts only if it opens with the value (``Answer:\\n\\nFalse.``
is False; ``Answer:\\nRobin has 43 packs...`` is not 43). Numbers: thousands
separators (``1,080``), a currency sign (``$18.50``), a sign (``-13``, ``x = -280``),
decimals, simple fractions (``3/4``, ``\\frac{3}{4}``) and units after the number
(``12 apples``, ``10%``); after a marker the first number of its first sentence is
taken, or the first after its last ``=`` (``Answer: 24 - 10 = 14`` is 14);
``Answer: B)`` takes the number the output listed as ``B) 1,052``. Not read: numbers
written as words (``seven``), scientific notation, mixed numbers. A verdict word
must stand alone (``No.``, ``False,``, ``yes because``; not ``No one``), and a bare
capital ``A``/``I`` followed by a word reads as English, not as an option letter.

Extraction never raises on any text: only the last 100 markers of each kind are
read, and an internal failure is logged as a warning and read as "no answer".
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence

logger = logging.getLogger(__name__)

ANSWER_KINDS: tuple[str, ...] = ("number", "boolean", "choice", "regex")

Answer = float | bool | int | str

# how far after a marker the answer may sit; bounds the work on huge outputs
_SEGMENT_CHARS = 1000
# only the last markers of each kind are read, so that a pathological output stays cheap
_MAX_MARKERS = 100
_MAX_NUMBER_CHARS = 400
_MARKUP = " \t\r\n*_`'\"“”‘’>#"

_NUMBER_RE = re.compile(
    r"(?<![\w./])"
    r"(?P<sign>[-\u2212])?"
    r"(?:"
    r"(?P<num>[0-9]+)/(?P<den>[0-9]+)(?![0-9/]|[.,][0-9])"
    r"|(?P<int>[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.(?P<dec>[0-9]+))?"
    r")"
)
_FRAC_RE = re.compile(r"\\d?frac\s*\{\s*([0-9]+)\s*\}\s*\{\s*([0-9]+)\s*\}")
_BOXED_RE = re.compile(r"\\boxed\s*\{")
_HASH_RE = re.compile(r"####")
_FINAL_RE = re.compile(
    r"\bfinal\s+answer\b(?:\s*[:=]|\s+(?:is|was|would\s+be|will\s+be|should\s+be)\b\s*:?)",
    re.IGNORECASE,
)
_ANSWER_RE = re.compile(
    r"\b(?:(?:correct|right|best)\s+(?:answer|option|choice)|answer|conclusion|verdict)\b"
    r"(?:\s+(?:to|for)\s+(?:the|this)\s+(?:question|problem)(?:\s*[\"“][^\"”\n]{0,300}[\"”])?)?"
    r"(?:\s*[:=]|\s+(?:is|was|would\s+be|will\s+be|should\s+be)\b\s*:?)",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"[.!?;](?=\s|$)|\s(?:because|since|as)\s", re.IGNORECASE)

# what may follow a verdict word or a bare option letter for it to count as one
_AFTER_VALUE = r"(?=\s*$|\s*[.,;:!?)\]'\"*_—–]|\s+-|\s+(?:because|since|as|and|but)\b)"
_VERDICT_RE = re.compile(
    r"(?:(?:it|this|that|the\s+(?:statement|claim|answer))\s+is\s+)?"
    r"(?P<word>true|false|yes|no)\b" + _AFTER_VALUE,
    re.IGNORECASE,
)
# "I believe this statement is false": a verdict stated in a sentence
_VERDICT_STATEMENT_RE = re.compile(
    r"\bI(?:\s+would|'d|’d)?\s+(?:believe|think|say|answer)\s+(?:that\s+)?"
    r"(?:(?:this|that|it|the\s+(?:statement|claim|answer))(?:\s+statement|\s+claim)?"
    r"\s+(?:is|to\s+be)\s+)?[\"'“‘]?(?P<word>true|false)\b" + _AFTER_VALUE,
    re.IGNORECASE,
)
_VERDICTS = {"true": True, "yes": True, "false": False, "no": False}

_LETTER_AT_START_RE = re.compile(
    r"(?:(?P<kw>option|choice)\b\s*)?"
    r"(?:\((?P<paren>[A-Za-z])\)|\[(?P<square>[A-Za-z])\]"
    r"|(?P<bare>[A-Za-z])(?=\s*$|\s*[.):,;!?\]]|\s+(?P<next>\S+)))",
    re.IGNORECASE,
)
_LETTER_MENTION_RE = re.compile(
    r"\((?P<paren>[A-Za-z])\)|\b(?:option|choice)\b\s*\(?(?P<kw>[A-Za-z])\b(?!')", re.IGNORECASE
)
_CHOICE_STATEMENT_RE = re.compile(
    r"(?:\b(?:option|choice)\b\s*\(?(?P<kw>[A-Za-z])\)?|\((?P<paren>[A-Za-z])\)|\b(?P<bare>(?-i:[A-Z])))"
    r"\s+is\s+(?:the\s+)?(?:correct|right|best)\b",
    re.IGNORECASE,
)
_LEADING_LABEL_RE = re.compile(
    r"\((?P<paren>[A-Za-z])\)|\[(?P<square>[A-Za-z])\]|(?P<bare>[A-Z])(?:[.):\]]|\s*$)"
)
_LABEL_LINE_RE = re.compile(r"^[ \t*]*[(\[]?(?P<letter>[A-Z])[).:\]]", re.MULTILINE)
# a bare capital that reads as a word ("A cat", "I think") is not an option letter
_WORDLIKE_LETTERS = {"A", "I"}
_NEUTRAL_NEXT_WORDS = {"is", "because", "since", "as", "-", "–", "—"}


def extract_answer(
    kind: str,
    text: str | bytes | None,
    options: Sequence[str] | None = None,
    pattern: str | re.Pattern[str] | None = None,
) -> Answer | None:
    """Read the answer a model's output states, as the type ``kind`` calls for.

    Args:
        kind: ``"number"`` (returns a float), ``"boolean"`` (bool), ``"choice"``
            (the 0-based index into ``options``) or ``"regex"`` (the first
            capture group of ``pattern``, or its whole match, at the LAST match in
            the text, stripped).
        text: the model output. Any value is accepted: None, non-text or text
            that states no answer gives None.
        options: the option texts; required for ``"choice"``.
        pattern: a regular expression; required for ``"regex"``.

    Returns:
        The answer, or None when the text states none. The precedence of the
        rules is in the module docstring.

    Raises:
        ValueError: an unknown ``kind``, or a missing/invalid ``options`` or ``pattern``.

    Examples:
        >>> extract_answer("number", "I think 12 apples... The answer is 7")
        7.0
        >>> extract_answer("number", "She pays $1,080.50 in total.")
        1080.5
        >>> extract_answer("number", "Answer: 24 - 10 = 14")
        14.0
        >>> extract_answer("number", "So x = -280")
        -280.0
        >>> extract_answer("boolean", "This is not true. Answer: False")
        False
        >>> extract_answer("boolean", "False: sharks are fish.")
        False
        >>> extract_answer("boolean", "True or False: it is true that cats purr.") is None
        True
        >>> opts = ["red", "green", "blue", "black"]
        >>> extract_answer("choice", "Answer: C", options=opts)
        2
        >>> extract_answer("choice", "The answer is 'green'.", options=opts)
        1
        >>> extract_answer("regex", "id=4, id=9", pattern=r"id=(\\d+)")
        '9'
    """
    reader = _reader(kind, options, pattern)
    body = _as_text(text)
    if body is None:
        return None
    try:
        return reader(body)
    except Exception:  # a weird output must not stop an exam of thousands of rows
        logger.warning("answer extraction (%s) failed; read as no answer", kind, exc_info=True)
        return None


def answers_match(kind: str, predicted: object, gold: object, tolerance: float = 1e-6) -> bool:
    """Whether an extracted answer equals a gold answer; None never matches.

    Numbers match when ``math.isclose(predicted, gold, rel_tol=tolerance,
    abs_tol=tolerance)`` (compared as numbers, never as strings: ``14.0`` matches
    ``"14"``); booleans and choice indices by equality (a bool is not an index);
    regex answers as stripped, case-sensitive strings.

    >>> answers_match("number", 1080.0, 1080)
    True
    >>> answers_match("number", None, 3.0)
    False
    >>> answers_match("boolean", True, True)
    True

    Raises:
        ValueError: an unknown ``kind`` or a negative or non-finite ``tolerance``.
    """
    _check_kind(kind)
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if predicted is None or gold is None:
        return False
    if kind == "number":
        a, b = _as_float(predicted), _as_float(gold)
        if a is None or b is None:
            return False
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    if kind == "boolean":
        return isinstance(predicted, bool) and isinstance(gold, bool) and predicted == gold
    if kind == "choice":
        ints = [v for v in (predicted, gold) if isinstance(v, int) and not isinstance(v, bool)]
        return len(ints) == 2 and predicted == gold
    return isinstance(predicted, str) and isinstance(gold, str) and (predicted.strip() == gold.strip())


# --- argument checks ------------------------------------------------------------------


def _check_kind(kind: object) -> None:
    if kind not in ANSWER_KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; expected one of {', '.join(ANSWER_KINDS)}")


def _reader(
    kind: str, options: Sequence[str] | None, pattern: str | re.Pattern[str] | None
) -> Callable[[str], Answer | None]:
    _check_kind(kind)
    if kind == "number":
        return _read_number
    if kind == "boolean":
        return _read_boolean
    if kind == "choice":
        opts = _check_options(options)
        return lambda body: _read_choice(body, opts)
    regex = _check_pattern(pattern)
    return lambda body: _read_regex(body, regex)


def _check_options(options: object) -> tuple[str, ...]:
    if options is None:
        raise ValueError("the 'choice' extractor needs options (the option texts), got None")
    if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
        raise ValueError(f"options must be a list of option texts, got {options!r}")
    if not 1 <= len(options) <= 26 or not all(isinstance(o, str) for o in options):
        raise ValueError(f"options must be 1 to 26 option texts (str), got {options!r}")
    return tuple(options)


def _check_pattern(pattern: object) -> re.Pattern[str]:
    if pattern is None:
        raise ValueError("the 'regex' extractor needs a pattern, got None")
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise ValueError(f"pattern must be a text pattern, got {pattern!r}")
        return pattern
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be a non-empty regular expression, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {err}") from err


def _as_text(text: object) -> str | None:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", errors="replace")
    return None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


# --- shared: where the stated answers are -----------------------------------------------


def _normalise(text: str) -> str:
    # markdown bold/underline would hide "**Answer:** 5"; LaTeX fractions become a/b
    text = text.replace("**", "").replace("__", "").replace("{,}", ",")
    return _FRAC_RE.sub(r"\1/\2", text)


def _after(text: str, start: int) -> tuple[str, bool]:
    """The answer segment after a marker ending at ``start``, and whether it is strict.

    Strict segments (taken from the next line because the marker's line was
    blank) only count when the value opens them.
    """
    window = text[start : start + _SEGMENT_CHARS]
    line, newline, rest = window.partition("\n")
    if line.strip(_MARKUP) or not newline:
        return line, False
    for next_line in rest.split("\n"):
        if next_line.strip(_MARKUP):
            return next_line, True
    return "", True


def _last_matches(regex: re.Pattern[str], text: str) -> list[re.Match[str]]:
    return list(regex.finditer(text))[-_MAX_MARKERS:]


def _boxed(text: str) -> Iterator[tuple[str, bool]]:
    for match in _last_matches(_BOXED_RE, text):
        depth, end = 1, match.end()
        limit = min(len(text), end + _SEGMENT_CHARS)
        for i in range(end, limit):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    yield text[end:i], False
                    break


def _marked(text: str, regex: re.Pattern[str]) -> Iterator[tuple[str, bool]]:
    for match in _last_matches(regex, text):
        yield _after(text, match.end())


def _stated_segments(text: str) -> list[list[tuple[str, bool]]]:
    """Rules 1-4 of the precedence, each a list of segments in text order."""
    return [
        list(_boxed(text)),
        list(_marked(text, _HASH_RE)),
        list(_marked(text, _FINAL_RE)),
        list(_marked(text, _ANSWER_RE)),
    ]


def _last_valid(
    segments: list[tuple[str, bool]], read: Callable[[str, bool], Answer | None]
) -> Answer | None:
    for segment, strict in reversed(segments):
        value = read(segment, strict)
        if value is not None:
            return value
    return None


def _first_line(text: str) -> str:
    for line in text[: _SEGMENT_CHARS * 4].split("\n"):
        if line.strip(_MARKUP):
            return line
    return ""


# --- number ------------------------------------------------------------------------------


def _number_value(match: re.Match[str]) -> float | None:
    if match.end() - match.start() > _MAX_NUMBER_CHARS:
        return None  # beyond any float; int() would refuse it anyway
    sign = -1.0 if match.group("sign") else 1.0
    if match.group("den") is not None:
        denominator = int(match.group("den"))
        if denominator == 0:
            return None
        value = int(match.group("num")) / denominator
    else:
        digits = match.group("int").replace(",", "")
        decimals = match.group("dec")
        value = float(f"{digits}.{decimals}" if decimals else digits)
    value *= sign
    return value if math.isfinite(value) else None


def _numbers(text: str) -> Iterator[float]:
    for match in _NUMBER_RE.finditer(text):
        value = _number_value(match)
        if value is not None:
            yield value


def _number_in_segment(segment: str, strict: bool, text: str) -> float | None:
    body = segment.lstrip(_MARKUP + "$")
    if strict:
        match = _NUMBER_RE.match(body)
        return _number_value(match) if match else _number_of_letter(body, text)
    end = _SENTENCE_END_RE.search(body)
    sentence = body[: end.start()] if end else body
    tail = sentence.rpartition("=")[2] if "=" in sentence else sentence
    for value in _numbers(tail):
        return value
    return _number_of_letter(body, text)


def _number_of_letter(segment: str, text: str) -> float | None:
    """``Answer: B)`` after a listing ``B) 1,052 sacks``: the number of that listed option."""
    match = _LETTER_AT_START_RE.match(segment)
    letter = _letter_of(match) if match else None
    if letter is None:
        return None
    listed = re.search(
        rf"^[ \t*]*[(\[]?{letter}[).:\]][ \t]*\$?(?P<n>-?[0-9][0-9,]*(?:\.[0-9]+)?)",
        text,
        re.MULTILINE,
    )
    if not listed:
        return None
    found = _NUMBER_RE.search(listed.group("n"))
    return _number_value(found) if found else None


def _read_number(text: str) -> float | None:
    body = _normalise(text)
    for segments in _stated_segments(body):
        value = _last_valid(segments, lambda s, strict: _number_in_segment(s, strict, body))
        if value is not None:
            return float(value)
    last = None
    for value in _numbers(body):
        last = value
    return last


# --- boolean -----------------------------------------------------------------------------


def _verdict_in_segment(segment: str) -> bool | None:
    match = _VERDICT_RE.match(segment.lstrip(_MARKUP + "([:"))
    return _VERDICTS[match.group("word").lower()] if match else None


def _read_boolean(text: str) -> bool | None:
    body = _normalise(text)
    for segments in _stated_segments(body):
        value = _last_valid(segments, lambda s, _strict: _verdict_in_segment(s))
        if value is not None:
            return bool(value)
    statements = _last_matches(_VERDICT_STATEMENT_RE, body)
    if statements:
        return _VERDICTS[statements[-1].group("word").lower()]
    return _verdict_in_segment(_first_line(body))


# --- choice ------------------------------------------------------------------------------


def _letter_of(match: re.Match[str]) -> str | None:
    for group in ("paren", "square"):
        if match.group(group):
            return match.group(group).upper()
    bare = match.group("bare")
    if not bare:
        return None
    if match.group("kw"):
        return bare.upper()
    following = match.group("next")
    if following is None:  # "Answer: b" or "Answer: B."
        return bare.upper()
    if not bare.isupper():
        return None
    if bare in _WORDLIKE_LETTERS and following.lower() not in _NEUTRAL_NEXT_WORDS:
        return None
    return bare


def _index(letter: str | None, options: tuple[str, ...]) -> int | None:
    if letter is None:
        return None
    index = ord(letter.upper()) - ord("A")
    return index if 0 <= index < len(options) else None


def _clean(text: str) -> str:
    return " ".join(text.casefold().split()).strip(" .,;:!?\"'“”‘’`*")


def _option_in(text: str, options: tuple[str, ...], at_start: bool = False) -> int | None:
    """The one option whose text the passage contains as words (the longest, when nested)."""
    haystack = _clean(text)
    found: dict[int, str] = {}
    for i, option in enumerate(options):
        needle = _clean(option)
        if not needle:
            continue
        words = re.compile(("" if at_start else r"(?<!\w)") + re.escape(needle) + r"(?!\w)")
        if words.match(haystack) if at_start else words.search(haystack):
            found[i] = needle
    if not found:
        return None
    longest = max(found, key=lambda i: len(found[i]))
    if all(needle in found[longest] for needle in found.values()):
        return longest
    return None


def _choice_in_segment(segment: str, strict: bool, options: tuple[str, ...]) -> int | None:
    body = segment.lstrip(_MARKUP + ":")
    # an option's own text first: "D is heavier than A." is that option, not letter D;
    # but a one-letter option text ("A.", a person named A) loses to the letter
    index = _option_in(body, options, at_start=True)
    if index is not None and len(_clean(options[index])) > 1:
        return index
    match = _LETTER_AT_START_RE.match(body)
    if match:
        index = _index(_letter_of(match), options)
        if index is not None:
            return index
    if strict:
        return None
    mention = _LETTER_MENTION_RE.search(body)
    if mention:
        index = _index(mention.group("paren") or mention.group("kw"), options)
        if index is not None:
            return index
    return _option_in(body, options)


def _read_choice(text: str, options: tuple[str, ...]) -> int | None:
    body = _normalise(text)
    for segments in _stated_segments(body):
        value = _last_valid(segments, lambda s, strict: _choice_in_segment(s, strict, options))
        if value is not None:
            return int(value)
    for statement in reversed(list(_CHOICE_STATEMENT_RE.finditer(body))):
        letter = statement.group("kw") or statement.group("paren") or statement.group("bare")
        index = _index(letter, options)
        if index is not None:
            return index
    leading = _leading_choice(body, options)
    return leading if leading is not None else _only_mentioned(body, options)


def _leading_choice(text: str, options: tuple[str, ...]) -> int | None:
    match = _LEADING_LABEL_RE.match(_first_line(text).lstrip(_MARKUP))
    if not match:
        return None
    index = _index(match.group("paren") or match.group("square") or match.group("bare"), options)
    if index is None:
        return None
    labels = {m.group("letter") for m in _LABEL_LINE_RE.finditer(text)}
    # "A. ...\nB. ..." is the model going through the options, not a verdict
    return index if labels <= {chr(ord("A") + index)} else None


def _only_mentioned(text: str, options: tuple[str, ...]) -> int | None:
    letters = set()
    for mention in _LETTER_MENTION_RE.finditer(text):
        index = _index(mention.group("paren") or mention.group("kw"), options)
        if index is not None:
            letters.add(index)
    if len(letters) == 1:
        return letters.pop()
    if letters:
        return None
    return _option_in(text, options)


# --- regex -------------------------------------------------------------------------------


def _read_regex(text: str, regex: re.Pattern[str]) -> str | None:
    last = None
    for match in regex.finditer(text):
        last = match
    if last is None:
        return None
    value = last.group(1) if regex.groups and last.group(1) is not None else last.group(0)
    value = value.strip()
    return value or None
