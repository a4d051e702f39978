"""Tests for fairspec.store.keys: call identities and their keys are stable, sensitive and
secret-free, and the keys are those fairspec 0.1.0 wrote."""

from __future__ import annotations

import hashlib
import json

import pytest

from fairspec.store import CallIdentity, CallRecord, normalise_base_url

MESSAGES = [
    {"role": "system", "content": "You are a careful teacher."},
    {"role": "user", "content": "Why is 17 prime? Ünïcödé ✓"},
]
SETTINGS = {"temperature": 0.7, "max_tokens": 256, "top_p": 0.95}
BASE = dict(provider="openai", base_url="http://127.0.0.1:8000/v1", model="gpt-4o-mini",
            messages=MESSAGES, settings=SETTINGS, sample_index=0)


def call_key(**parts: object) -> str:
    return CallIdentity(**parts).key  # type: ignore[arg-type]


@pytest.mark.parametrize(("parts", "expected"), [
    (dict(provider="openai", base_url="http://127.0.0.1:8000/v1/", model="gpt-4o-mini",
          messages=MESSAGES, settings={"temperature": 0.7, "max_tokens": 256.0, "top_p": 0.95,
                                       "seed": None}, sample_index=3),
     "efa343b81ee26b8d99e8059bc64aea4fa4181384a7e64dfeb1d448e9fc1ad0a2"),
    (dict(provider="gemini", base_url=None, model="gemini-1.0-pro",
          messages=[{"role": "user", "content": "hi"}], settings={"temperature": 1.0},
          sample_index=0),
     "3a7a7d0a7b1ab509849eb963d5a10ea38542dbf5e2f1ba23463df8126804d636"),
])
def test_keys_are_those_fairspec_0_1_0_wrote(parts: dict, expected: str) -> None:
    # Pins compatibility with call stores and replay files written by fairspec 0.1.0: these
    # hex digests were computed by 0.1.0's call_key(). Never update them; a change here
    # means every existing store and replay file stops matching (paid calls paid again).
    assert CallIdentity(**parts).key == expected
    assert CallRecord.create(CallIdentity(**parts), status="ok", text="x").key == expected


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


def test_call_identity_takes_no_credential_argument() -> None:
    with pytest.raises(TypeError):
        CallIdentity(**BASE, api_key="sk-proj-abcdefghijklmnopqrstuvwx")  # type: ignore[call-arg]


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


@pytest.mark.parametrize(("change", "message"), [
    ({"sample_index": -1}, "sample_index must be an int >= 0"),
    ({"model": " "}, "model must be a non-empty string"),
    ({"provider": None}, "provider must be a non-empty string"),
    ({"base_url": 8000}, "base_url must be a string or None"),
    ({"messages": [{"content": "no role"}]}, r"messages\[0\] must be a mapping with role"),
    ({"settings": {"timeout": 3}}, "is not a generation setting"),
])
def test_bad_components_keep_their_messages(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CallIdentity(**{**BASE, **change})


def test_identity_holds_the_normalised_parts_and_hashes_once() -> None:
    identity = CallIdentity(**{**BASE, "base_url": BASE["base_url"] + "/",
                               "settings": {**SETTINGS, "max_tokens": 256.0}})
    assert identity.base_url == "http://127.0.0.1:8000/v1"
    assert identity.settings["max_tokens"] == 256 and isinstance(identity.settings["max_tokens"], int)
    assert identity.parts() == json.loads(json.dumps(BASE))
    assert identity.key is identity.key  # cached, not recomputed
    assert identity == CallIdentity(**BASE) and hash(identity) == hash(CallIdentity(**BASE))
    assert identity != CallIdentity(**{**BASE, "sample_index": 1})
    assert identity.key[:12] in repr(identity) and "Ünïcödé" not in repr(identity)
    assert CallIdentity(**BASE) == CallIdentity(**BASE)  # and the parts are not mutated
    assert BASE["base_url"] == "http://127.0.0.1:8000/v1" and SETTINGS["max_tokens"] == 256


def test_loose_key_ignores_provider_and_base_url_only() -> None:
    identity = CallIdentity(**BASE)
    elsewhere = CallIdentity(**{**BASE, "provider": "gemini", "base_url": "https://other/v1"})
    assert elsewhere.key != identity.key and elsewhere.loose_key == identity.loose_key
    assert identity.loose_key != identity.key
    for change in ({"model": "gpt-4o"}, {"sample_index": 1}, {"settings": {"temperature": 0.1}},
                   {"messages": MESSAGES[:1]}):
        assert CallIdentity(**{**BASE, **change}).loose_key != identity.loose_key


def test_a_record_rebuilds_its_identity() -> None:
    record = CallRecord.create(CallIdentity(**BASE), status="ok", text="x")
    assert record.identity == CallIdentity(**BASE) and record.expected_key() == record.key
