"""Anthropic's Message Batches through the official SDK against the strict stand-in
(tests/support/strict_anthropic.py): the batch API alone, then behind the batch queue with
the call store and its ledger (what expires, what fails, what a resumed run polls)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from strict_anthropic import StrictAnthropic, default_answer

from fairspec.providers import ChatRequest, provider_kind
from fairspec.providers.anthropic import AnthropicProvider
from fairspec.providers.anthropic_batch import AnthropicBatchAPI, tagged_id, untagged_id
from fairspec.providers.batch_api import BatchLine
from fairspec.store import CallIdentity, CallStore
from fairspec.store.batches import BatchLedger
from fairspec.teachers.batch_queue import BatchQueue
from fairspec.teachers.budget import Budget

KEY_ENV = "FAIRSPEC_TEST_ANTHROPIC_KEY"
KEY = "sk-ant-api03-fairspecbatchmarker2d8e4b"
MODEL = "claude-sonnet-4-5"
PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def server() -> Iterator[StrictAnthropic]:
    with StrictAnthropic(key=KEY) as running:
        yield running


def batch_api(server: StrictAnthropic, **options) -> AnthropicBatchAPI:
    provider = AnthropicProvider(name="claude", model=MODEL, base_url=server.url,
                                 api_key_env=KEY_ENV, backoff_s=0.01, backoff_max_s=0.02,
                                 **options)
    return provider_kind("anthropic").load_batch()(provider)


def calls(server: StrictAnthropic, n: int, **settings) -> list[CallIdentity]:
    return [CallIdentity("anthropic", server.url, MODEL, [{"role": "user", "content": f"question {i}"}],
                         {"temperature": 0.8, "max_tokens": 64, **settings}, 0) for i in range(n)]


def queue(store: CallStore, api: AnthropicBatchAPI, **options) -> BatchQueue:
    return BatchQueue(teacher="claude", api=api, store=store, price=PRICE, gather_s=0.05,
                      poll_s=0.01, **options)


async def ask_all(batches: BatchQueue, identities: list[CallIdentity]) -> list:
    try:
        return await asyncio.gather(*(batches.answer(i, ChatRequest(i.messages, i.settings))
                                      for i in identities))
    finally:
        await batches.aclose()


def key_of(custom_id: str) -> str:
    """The call key prefix a sent custom_id carries (``<ledger id>_c<line>-<key prefix>``)."""
    return untagged_id(custom_id)[1].split("-", 1)[1]


def test_a_batch_answers_each_call_as_online_with_the_same_body(server, tmp_path) -> None:
    identities = calls(server, 4, thinking=1024)
    with CallStore(tmp_path / "calls.sqlite") as store:
        records = asyncio.run(ask_all(queue(store, batch_api(server)), identities))
    [created] = server.created
    assert len(created.custom_ids) == 4
    assert all(c.startswith("fsb-") and len(c) <= 64 for c in created.custom_ids)
    online = AnthropicProvider(name="claude", model=MODEL, api_key_env=KEY_ENV)
    assert created.params == [online._prepare(ChatRequest(i.messages, i.settings))
                              for i in identities]
    assert created.params[0]["max_tokens"] == 64 + 1024 and "temperature" not in created.params[0]
    assert [r.status for r in records] == ["ok"] * 4
    assert [r.text for r in records] == [default_answer(p) for p in created.params]
    assert all(r.output_tokens > 1024 and r.reasoning_tokens == 1024 for r in records)


def test_an_expired_batch_resubmits_only_what_it_did_not_answer(server, tmp_path) -> None:
    server.expire_next(answered=2)
    with CallStore(tmp_path / "calls.sqlite") as store:
        batches = queue(store, batch_api(server))
        records = asyncio.run(ask_all(batches, calls(server, 5)))
    first, second = server.created
    assert len(first.custom_ids) == 5 and len(second.custom_ids) == 3
    assert sorted(key_of(c) for c in second.custom_ids) == sorted(key_of(c) for c in first.custom_ids[2:])
    assert batches.counts["expired_lines"] == 3 and batches.counts["resubmitted"] == 3
    assert [r.status for r in records] == ["ok"] * 5
    assert [r.attempts for r in records] == [1, 1, 2, 2, 2]


def test_failed_lines_are_resubmitted_when_the_service_failed_them(server, tmp_path) -> None:
    server.fail_next(2, "overloaded_error")
    with CallStore(tmp_path / "calls.sqlite") as store:
        batches = queue(store, batch_api(server))
        records = asyncio.run(ask_all(batches, calls(server, 4)))
        rows = BatchLedger(store).batches()
    assert [len(b.custom_ids) for b in server.created] == [4, 2]
    assert batches.counts["failed_lines"] == 2 and batches.counts["resubmitted"] == 2
    assert [r.attempts for r in records] == [2, 2, 1, 1]
    assert [(r.state, r.answered, r.failed) for r in rows] == [("done", 2, 2), ("done", 2, 0)]


def test_a_line_the_request_failed_is_an_error_record_and_not_sent_again(server, tmp_path) -> None:
    server.fail_next(1, "invalid_request_error")
    with CallStore(tmp_path / "calls.sqlite") as store:
        records = asyncio.run(ask_all(queue(store, batch_api(server)), calls(server, 3)))
    assert len(server.created) == 1
    assert [r.status for r in records] == ["error", "ok", "ok"]
    assert "invalid_request_error" in records[0].last_error and "batch line" in records[0].last_error


def test_a_line_that_keeps_failing_stops_after_max_retries(server, tmp_path) -> None:
    server.fail_next(1, "api_error", times=3)
    with CallStore(tmp_path / "calls.sqlite") as store:
        [record] = asyncio.run(ask_all(queue(store, batch_api(server), max_retries=2),
                                       calls(server, 1)))
    assert len(server.created) == 3 and record.status == "error" and record.attempts == 3


def test_a_resumed_run_polls_the_batch_a_killed_one_created_and_sends_nothing(server, tmp_path) -> None:
    identities = calls(server, 3)
    api = batch_api(server)
    with CallStore(tmp_path / "calls.sqlite") as store:
        ledger = BatchLedger(store)
        # the killed run: wrote the batch down, created it, kept its id, then died
        lines = [BatchLine(f"c{i:06d}-{c.key[:16]}", ChatRequest(c.messages, c.settings))
                 for i, c in enumerate(identities)]
        earlier = ledger.submitting(teacher="claude", provider="anthropic", base_url=server.url,
                                    model=MODEL, reserved_usd=0.0,
                                    items=[(line.custom_id, c, 1) for line, c in zip(lines, identities,
                                                                                   strict=True)])
        server.hold()
        remote_id, state = asyncio.run(api.create(earlier, lines))
        ledger.running(earlier, remote_id, state)
        server.release()
        budget = Budget(None)
        records = asyncio.run(ask_all(queue(store, batch_api(server), budget=budget),
                                      identities[:1]))
        assert len(server.created) == 1  # nothing sent again
        assert records[0].status == "ok" and store.count() == 3  # the whole batch is stored
        assert ledger.batch(earlier).state == "done"
        assert budget.reserved_usd == pytest.approx(0.0)


def test_find_adopts_an_ended_batch_by_its_tagged_custom_ids_only(server) -> None:
    lines = [BatchLine(f"c{i:06d}-abcdef0123456789", ChatRequest([{"role": "user", "content": "q"}]))
             for i in range(2)]

    async def main():
        api = batch_api(server)
        try:
            server.hold()
            remote_id, state = await api.create("fsb-00000000000000aa", lines)
            running = await api.find("fsb-00000000000000aa")  # in progress: cannot be told
            server.release()
            status = await api.status(remote_id)
            return (remote_id, state, running, status, await api.find("fsb-00000000000000aa"),
                    await api.find("fsb-00000000000000bb"))
        finally:
            await api.aclose()

    remote_id, state, running, status, found, other = asyncio.run(main())
    assert state == "in_progress" and running is None
    assert status.finished and status.total == 2 and status.completed == 2
    assert found == (remote_id, "ended") and other is None


def test_custom_ids_are_tagged_within_anthropics_rule() -> None:
    assert tagged_id("fsb-0123456789abcdef", "c000001-0123456789abcdef") == \
        "fsb-0123456789abcdef_c000001-0123456789abcdef"
    assert untagged_id("fsb-1_c000001-ab") == ("fsb-1", "c000001-ab")
    with pytest.raises(ValueError, match="1-64 characters"):
        tagged_id("fsb-0123456789abcdef", "c" * 60)
    with pytest.raises(ValueError, match="1-64 characters"):
        tagged_id("fsb-1", "has space")


def test_a_batch_canceled_at_the_console_reports_its_lines_as_not_reached(server) -> None:
    lines = [BatchLine(f"c{i:06d}-abcdef0123456789", ChatRequest([{"role": "user", "content": "q"}]))
             for i in range(3)]

    async def main():
        api = batch_api(server)
        try:
            server.hold()
            remote_id, _ = await api.create("fsb-00000000000000cc", lines)
            await api.provider._sdk().messages.batches.cancel(remote_id)  # someone at the console
            status = await api.status(remote_id)
            return status, [r for chunk in [c async for c in api.results(remote_id, status, [])]
                            for r in chunk]
        finally:
            server.release()
            await api.aclose()

    status, results = asyncio.run(main())
    assert status.finished and status.completed == 0
    assert sorted(r.custom_id for r in results) == [line.custom_id for line in lines]
    assert all(r.expired and r.reply is None and "canceled" in r.error for r in results)
