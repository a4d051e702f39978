"""Key-like text is recognised and redacted; ordinary spec values are not mistaken for keys; the
log filter masks key values and key-like text."""

from __future__ import annotations

import logging
import secrets

import pytest

from fairspec.secrets import RedactingFilter, find_key_like, redact


@pytest.mark.parametrize("text", [
    "sk-proj-abcdefghijklmnopqrstuvwx",
    "sk-ant-api03-abcdefghijklmnopqrstuv",
    "AIzaSyD-abcdefghijklmnopqrstuvwxyz012345",
    "hf_abcdefghijklmnopqrstuvwxyzABCDEF",
    "Authorization: Bearer abcdefghijklmnop1234",
    "AKIAABCDEFGHIJKLMNOP",
])
def test_key_shapes_are_found_and_redacted(text):
    assert find_key_like(text)
    assert redact(text) != text
    assert "***" in redact(text)


@pytest.mark.parametrize("text", [
    "OPENAI_API_KEY", "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-3.5-turbo",
    "https://api.deepinfra.com/v1/openai", "sk-short", "3101c7d5072418e28b9008a6636bde82a006892c",
    "builtin:smollm2-135m-instruct", "risk-averse teachers",
])
def test_ordinary_values_are_not_keys(text):
    assert find_key_like(text) is None
    assert redact(text) == text


def test_the_log_filter_masks_key_values_headers_and_key_shapes() -> None:
    marker = "qq-" + secrets.token_hex(16)  # no known key shape: only the value list catches it
    records = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    scrub = RedactingFilter()
    handler.addFilter(scrub)
    logger = logging.getLogger("fairspec.test.secrets")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        scrub.add([marker, None, "short"])
        logger.debug("headers: %s", {"Authorization": f"Bearer {marker}", "x-goog-api-key": marker})
        logger.debug("raw key sk-proj-%s in text", "a" * 24)
        try:
            raise RuntimeError(f"failed with key {marker}")
        except RuntimeError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    assert marker not in text and "a" * 24 not in text
    assert marker[:4] + "***" in text and "RuntimeError" in text  # masked, not dropped
