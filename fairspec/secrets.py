"""Keeps API keys out of specs, messages, plans and logs.

Keys reach fairspec only through environment variables named by ``api_key_env``.
A value in a spec that looks like a key is an error; ``redact`` masks key-like
text anywhere fairspec writes or prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from fairspec.terminal import printable

#: Shapes of real provider keys (OpenAI, Anthropic, Google, HF, Groq, xAI, Replicate,
#: AWS, bearer tokens). Kept specific so ordinary
#: words and model ids never match.
_KEY_SHAPES: dict[str, str] = {
    "OpenAI-style key (sk-...)": r"\bsk-(?:proj-|ant-|or-)?[A-Za-z0-9_\-]{16,}",
    "Google API key (AIza...)": r"\bAIza[0-9A-Za-z_\-]{30,}",
    "Hugging Face token (hf_...)": r"\bhf_[A-Za-z0-9]{30,}",
    "Groq key (gsk_...)": r"\bgsk_[A-Za-z0-9]{30,}",
    "xAI key (xai-...)": r"\bxai-[A-Za-z0-9]{30,}",
    "Replicate token (r8_...)": r"\br8_[A-Za-z0-9]{30,}",
    "AWS access key (AKIA...)": r"\bAKIA[0-9A-Z]{16}\b",
    "Google OAuth token (ya29...)": r"\bya29\.[0-9A-Za-z_\-]{20,}",
    "bearer token": r"(?i)\bbearer\s+[A-Za-z0-9._\-]{16,}",
}
_PATTERNS = [(label, re.compile(pattern)) for label, pattern in _KEY_SHAPES.items()]


def find_key_like(text: str) -> str | None:
    """The label of the first key shape ``text`` contains, or None."""
    for label, pattern in _PATTERNS:
        if pattern.search(text):
            return label
    return None


def redact(text: str) -> str:
    """``text`` with every key-like substring replaced by its first 4 characters and ``***``."""
    for _, pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(0)[:4] + "***", text)
    return text


def iter_strings(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, str, bool]]:
    """Every string in nested data as (path, text, is_key)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str):
                yield path + (key,), key, True
            yield from iter_strings(value, path + (key,))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from iter_strings(item, path + (i,))
    elif isinstance(data, str):
        yield path, data, False


class RedactingFilter:
    """A ``logging`` filter that masks key-like text and the given secret values in every record.

    Put it on the handlers: the message is rendered once (with its args), redacted, and the
    record carries the redacted text from then on, so no formatter can print the original.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Also mask these exact values (key variables' values; short or empty ones are skipped)."""
        found = set(self.secrets) | {s for s in secrets if s and len(s) >= 8}
        self.secrets = sorted(found, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, secret[:4] + "***")
        return printable(redact(text))  # logs go to a terminal: no control sequences

    def filter(self, record: Any) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = self.scrub(message), None
        if record.exc_info and not record.exc_text:
            import logging

            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True
