"""Tests for fairspec.store.replay: answers come from the file, a miss is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairspec.errors import FairspecError
from fairspec.store import (
    AnyProviderReplay,
    CallIdentity,
    CallRecord,
    CallStore,
    ReplayMissError,
    load_replay,
)

PARTS = dict(provider="openai", base_url="http://127.0.0.1:8000/v1", model="gpt-4o-mini",
             settings={"temperature": 0.0, "max_tokens": 32}, sample_index=0)


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": "..."}]


def call(question: str, **change: object) -> CallIdentity:
    return CallIdentity(**{**PARTS, **change}, messages=messages(question))  # type: ignore[arg-type]


@pytest.fixture
def replay_file(tmp_path: Path) -> Path:
    with CallStore(tmp_path / "calls.sqlite") as store:
        store.put(CallRecord.create(call("What is 2+2?"), status="ok", text="4"))
        store.put(CallRecord.create(call("Broken?"), status="error", last_error="HTTP 500"))
        store.export_jsonl(tmp_path / "replay.jsonl", include_errors=True)
    return tmp_path / "replay.jsonl"


def test_replay_answers_a_recorded_call(replay_file: Path) -> None:
    replay = load_replay(replay_file)
    record = replay.answer(call("What is 2+2?", base_url=PARTS["base_url"] + "/"))
    assert record.text == "4"
    assert replay[record.key] == record and len(replay) == 1


def test_replay_miss_names_model_and_first_message(replay_file: Path) -> None:
    replay = load_replay(replay_file)
    with pytest.raises(ReplayMissError) as caught:
        replay.answer(call("What is 3+3? " + "long " * 50))
    text = str(caught.value)
    assert "gpt-4o-mini" in text and "What is 3+3?" in text and "holds 1 call" in text
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, FairspecError)


def test_replay_does_not_answer_changed_settings_or_sample(replay_file: Path) -> None:
    replay = load_replay(replay_file)
    with pytest.raises(ReplayMissError):
        replay.answer(call("What is 2+2?", settings={"temperature": 0.1, "max_tokens": 32}))
    with pytest.raises(KeyError):
        replay.answer(call("What is 2+2?", sample_index=1))


def test_replay_skips_error_records(replay_file: Path) -> None:
    with pytest.raises(ReplayMissError, match="Broken"):
        load_replay(replay_file).answer(call("Broken?"))


def test_unknown_key_lookup_is_a_replay_miss(replay_file: Path) -> None:
    replay = load_replay(replay_file)
    with pytest.raises(ReplayMissError, match="no call with key"):
        replay["0" * 64]
    assert replay.get("0" * 64) is None


def test_miss_is_the_package_wide_replay_miss_error(replay_file: Path) -> None:
    from fairspec import errors

    with pytest.raises(errors.ReplayMissError) as caught:
        load_replay(replay_file).answer(call("What is 5+5?"))
    assert caught.value.key == call("What is 5+5?").key


def test_any_provider_replay_ignores_provider_and_base_url_only(replay_file: Path) -> None:
    replay = AnyProviderReplay(load_replay(replay_file))
    assert len(replay) == 1
    found = replay.answer(call("What is 2+2?", provider="replay", base_url=None,
                               settings={"temperature": 0, "max_tokens": 32.0}))
    assert found.text == "4" and found.provider == "openai"
    with pytest.raises(ReplayMissError, match="no recorded call for model 'gpt-4o-mini'"):
        replay.answer(call("What is 2+2?", provider="replay", sample_index=1))
    with pytest.raises(ReplayMissError):
        replay.answer(call("What is 2+2?", model="gpt-4o"))


def test_a_replayed_call_keeps_its_billed_usage_and_an_older_file_still_loads(
        tmp_path: Path) -> None:
    billed = CallRecord.create(call("Cached?"), status="ok", text="yes", input_tokens=1000,
                               output_tokens=300, cached_input_tokens=800, reasoning_tokens=200)
    with CallStore(tmp_path / "calls.sqlite") as store:
        store.put(billed)
        store.export_jsonl(tmp_path / "replay.jsonl")
    found = load_replay(tmp_path / "replay.jsonl").answer(call("Cached?"))
    assert (found.cached_input_tokens, found.reasoning_tokens) == (800, 200)
    # a file written before these fields existed: the lines lack them
    old = CallRecord.create(call("Old?"), status="ok", text="no", input_tokens=7, output_tokens=1)
    line = json.dumps(old.to_json())
    assert "cached_input_tokens" not in line
    (tmp_path / "old.jsonl").write_text(line + "\n", encoding="utf-8")
    loaded = load_replay(tmp_path / "old.jsonl").answer(call("Old?"))
    assert loaded == old and loaded.cached_input_tokens is None and loaded.reasoning_tokens is None
