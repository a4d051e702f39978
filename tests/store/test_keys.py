"""Tests for fairspec.store.keys: call keys are stable, sensitive and secret-free."""

from __future__ import annotations

import hashlib
import json

import pytest

from fairspec.store import call_key, normalise_base_url

MESSAGES = [
    {"role": "system", "content": "You are a careful teacher."},
    {"role": "user", "content": "Why is 17 prime? Ünïcödé ✓"},
]
SETTINGS = {"temperature": 0.7, "max_tokens": 256, "top_p": 0.95}
BASE = dict(provider="openai", base_url="http://127.0.0.1:8000/v1", model="gpt-4o-mini",
            messages=MESSAGES, settings=SETTINGS, sample_index=0)


def test_call_key_is_sha256_of_sorted_compact_json() -> None:
    # Written from the documented recipe, independently of the implementation.
    text = json.dumps(
        {"provider": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "gpt-4o-mini",
         "messages": MESSAGES, "settings": SETTINGS, "sample_index": 0},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert call_key(**BASE) == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_call_key_is_stable_across_calls_and_copies() -> None:
    copy = json.loads(json.dumps(BASE))
    assert call_key(**BASE) == call_key(**copy)


@pytest.mark.parametrize("change", [
    {"provider": "gemini"},
    {"base_url": "http://127.0.0.1:9000/v1"},
    {"model": "gpt-4o"},
    {"messages": [MESSAGES[0], {"role": "user", "content": "Why is 19 prime? Ünïcödé ✓"}]},
    {"messages": list(reversed(MESSAGES))},
    {"messages": [MESSAGES[0], {"role": "assistant", "content": MESSAGES[1]["content"]}]},
    {"settings": {**SETTINGS, "temperature": 0.8}},
    {"settings": {**SETTINGS, "seed": 1}},
    {"settings": {"temperature": 0.7, "max_tokens": 256}},
    {"sample_index": 1},
])
def test_every_component_changes_the_key(change: dict) -> None:
    assert call_key(**{**BASE, **change}) != call_key(**BASE)


def test_dict_key_order_does_not_change_the_key() -> None:
    settings = dict(reversed(list(SETTINGS.items())))
    messages = [dict(reversed(list(m.items()))) for m in MESSAGES]
    assert list(settings) != list(SETTINGS)
    assert call_key(**{**BASE, "settings": settings, "messages": messages}) == call_key(**BASE)


def test_base_url_none_empty_and_trailing_slash_agree() -> None:
    assert call_key(**{**BASE, "base_url": None}) == call_key(**{**BASE, "base_url": ""})
    assert call_key(**{**BASE, "base_url": "http://127.0.0.1:8000/v1/"}) == call_key(**BASE)
    assert normalise_base_url("https://api.example.com/") == "https://api.example.com"


def test_integral_float_and_int_settings_agree() -> None:
    one = call_key(**{**BASE, "settings": {"temperature": 1, "max_tokens": 256}})
    one_float = call_key(**{**BASE, "settings": {"temperature": 1.0, "max_tokens": 256.0}})
    assert one == one_float


def test_call_key_takes_no_credential_argument() -> None:
    with pytest.raises(TypeError):
        call_key(**BASE, api_key="sk-proj-abcdefghijklmnopqrstuvwx")  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["api_key", "timeout", "max_retries", "concurrency",
                                  "headers", "rate_limit", "base_url", "model"])
def test_settings_refuse_credentials_and_transport_options(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call_key(**{**BASE, "settings": {**SETTINGS, name: "x"}})


def test_settings_refuse_a_key_like_value() -> None:
    with pytest.raises(ValueError, match="secret"):
        call_key(**{**BASE, "settings": {**SETTINGS, "user": "sk-proj-abcdefghijklmnopqrstuv"}})


@pytest.mark.parametrize("change", [
    {"sample_index": -1},
    {"sample_index": True},
    {"messages": []},
    {"messages": [{"content": "no role"}]},
    {"messages": "just a string"},
    {"settings": {"temperature": float("nan")}},
    {"settings": {"stop": {1, 2}}},
    {"model": ""},
    {"provider": None},
])
def test_bad_components_raise_value_error(change: dict) -> None:
    with pytest.raises(ValueError):
        call_key(**{**BASE, **change})
