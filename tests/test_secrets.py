"""Key-like text is recognised and redacted; ordinary spec values are not mistaken for keys."""

from __future__ import annotations

import pytest

from fairspec.secrets import find_key_like, redact


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
