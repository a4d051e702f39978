"""Tests for fairspec.store.call_record: CallRecord checks its fields and holds no secret."""

from __future__ import annotations

import dataclasses

import pytest

from fairspec.store import CallIdentity, CallRecord

IDENTITY = CallIdentity(provider="openai", base_url="http://h/v1/", model="m",
                        messages=[{"role": "user", "content": "hi"}], settings={"temperature": 0.0},
                        sample_index=2)


def test_create_takes_the_key_and_normalised_parts_of_its_identity() -> None:
    record = CallRecord.create(IDENTITY, status="ok", text="hello", teacher="T1")
    assert record.key == IDENTITY.key and record.identity == IDENTITY
    assert record.base_url == "http://h/v1"
    assert record.completed


def test_teacher_name_is_not_part_of_the_key() -> None:
    a = CallRecord.create(IDENTITY, status="ok", text="x", teacher="gpt")
    b = CallRecord.create(IDENTITY, status="ok", text="x", teacher="other")
    assert a.key == b.key


@pytest.mark.parametrize("fields", [
    {"status": "done", "text": "x"},
    {"status": "ok", "text": None},
    {"status": "ok", "text": "x", "attempts": -1},
    {"status": "ok", "text": "x", "input_tokens": "12"},
    {"status": "ok", "text": "x", "cached_input_tokens": 1.5},
    {"status": "ok", "text": "x", "reasoning_tokens": True},
])
def test_bad_fields_raise_value_error(fields: dict) -> None:
    with pytest.raises(ValueError):
        CallRecord.create(IDENTITY, **fields)


def test_error_record_is_not_completed() -> None:
    record = CallRecord.create(IDENTITY, status="error", last_error="HTTP 500", attempts=3)
    assert not record.completed and record.text is None


def test_create_wants_an_identity() -> None:
    with pytest.raises(TypeError, match="CallIdentity"):
        CallRecord.create(IDENTITY.parts(), status="ok", text="x")  # type: ignore[arg-type]


def test_json_roundtrip_and_field_order() -> None:
    record = CallRecord.create(IDENTITY, status="truncated", text="ab", finish_reason="length",
                               input_tokens=3, output_tokens=2, latency_s=0.25)
    data = record.to_json()
    assert list(data)[:2] == ["key", "provider"] and list(data)[-1] == "teacher"
    assert CallRecord.from_json(data) == record
    with pytest.raises(ValueError, match="unknown"):
        CallRecord.from_json({**data, "api_key": "x"})
    with pytest.raises(ValueError, match="missing"):
        CallRecord.from_json({k: v for k, v in data.items() if k != "status"})


def test_no_field_can_carry_credentials_or_headers() -> None:
    names = {f.name for f in dataclasses.fields(CallRecord)}
    assert not {n for n in names if any(w in n for w in ("key_env", "api", "header", "auth",
                                                          "token_", "secret", "password"))}
    with pytest.raises(TypeError):
        CallRecord.create(IDENTITY, status="ok", text="x", api_key="sk-x")  # type: ignore


def test_public_api_names_resolve() -> None:
    import fairspec.store as store

    assert sorted(store.__all__) == sorted(set(store.__all__))
    missing = [name for name in store.__all__ if not hasattr(store, name)]
    assert not missing
