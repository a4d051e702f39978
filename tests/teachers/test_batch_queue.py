"""The batch queue's bookkeeping against a scripted batch API (in memory): what is sent,
what is resubmitted, what a resumed run polls instead of sending, and the budget. The
same paths through the real SDKs and ``fairspec run`` are in test_batch_run.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from fairspec.errors import BudgetReached
from fairspec.providers import ChatRequest
from fairspec.providers.batch_api import BatchAPI, BatchLine, LineResult, RemoteStatus
from fairspec.providers.limits import Limiter, RetryPolicy
from fairspec.providers.remote import Reply
from fairspec.store import CallIdentity, CallStore
from fairspec.store.batches import BatchLedger
from fairspec.teachers.batch_queue import BatchQueue
from fairspec.teachers.budget import Budget

PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 1.0}


class Provider:
    name = "t"
    limiter = Limiter(4, None, None)
    policy = RetryPolicy(max_retries=1, base_s=0.0, max_s=0.0)

    def _scrub(self, text: str) -> str:
        return text

    async def aclose(self) -> None:
        pass


class Scripted(BatchAPI):
    """Batches answered at once; ``script`` says how the lines of the next batches end:
    "ok", "500" (retryable), "400" (not), "expired"."""

    def __init__(self, *script: list[str]) -> None:
        super().__init__(Provider())  # type: ignore[arg-type]
        self.batches: dict[str, list[str]] = {}
        self.script = list(script)
        self.endings: dict[str, list[str]] = {}
        self.polls = 0
        self.found: dict[str, str] = {}

    def line_bytes(self, line: BatchLine) -> int:
        return 100

    async def create(self, batch_id: str, lines: Sequence[BatchLine]) -> tuple[str, str]:
        remote = f"batch_{len(self.batches)}"
        self.batches[remote] = [line.custom_id for line in lines]
        self.endings[remote] = self.script.pop(0) if self.script else ["ok"] * len(lines)
        return remote, "validating"

    async def find(self, batch_id: str) -> tuple[str, str] | None:
        return (self.found[batch_id], "in_progress") if batch_id in self.found else None

    async def status(self, remote_id: str) -> RemoteStatus:
        self.polls += 1
        return RemoteStatus("completed", finished=True)

    async def results(self, remote_id: str, status: RemoteStatus,
                      custom_ids: Sequence[str]) -> AsyncIterator[list[LineResult]]:
        out = []
        for custom_id, end in zip(self.batches[remote_id], self.endings[remote_id], strict=False):
            if end == "ok":
                out.append(LineResult(custom_id, reply=Reply(f"answer {custom_id[-4:]}", "stop",
                                                             False, 10, 5, 15)))
            elif end == "expired":
                out.append(LineResult(custom_id, error="batch_expired", expired=True))
            elif end != "missing":
                out.append(LineResult(custom_id, error=f"HTTP {end}: no",
                                      retryable=end == "500"))
        yield out


def calls(n: int) -> list[CallIdentity]:
    return [CallIdentity("openai", "http://h/v1", "m", [{"role": "user", "content": f"q{i}"}],
                         {"temperature": 0.8, "max_tokens": 20}, 0) for i in range(n)]


async def ask_all(queue: BatchQueue, identities: list[CallIdentity]) -> list:
    try:
        return await asyncio.gather(*(queue.answer(i, ChatRequest(i.messages, i.settings))
                                      for i in identities))
    finally:
        await queue.aclose()


def queue(store: CallStore, api: BatchAPI, **options) -> BatchQueue:
    return BatchQueue(teacher="t", api=api, store=store, price=PRICE, gather_s=0.05,
                      poll_s=0.01, **options)


def test_only_failed_and_expired_lines_go_again_and_a_hopeless_one_is_an_error(tmp_path):
    api = Scripted(["ok", "500", "expired", "400", "missing"], ["ok", "ok", "ok"])
    with CallStore(tmp_path / "calls.sqlite") as store:
        records = asyncio.run(ask_all(queue(store, api, max_retries=2), calls(5)))
        assert [len(v) for v in api.batches.values()] == [5, 3]  # 500, expired, missing
        assert [r.status for r in records] == ["ok", "ok", "ok", "error", "ok"]
        assert [r.attempts for r in records] == [1, 2, 2, 1, 2]
        assert "HTTP 400" in records[3].last_error
        assert store.count() == 4
        rows = BatchLedger(store).batches()
        assert [(r.state, r.answered, r.failed) for r in rows] == [("done", 1, 4), ("done", 3, 0)]


def test_a_line_that_keeps_failing_stops_after_max_retries(tmp_path):
    api = Scripted(["500"], ["500"], ["500"], ["500"])
    with CallStore(tmp_path / "calls.sqlite") as store:
        [record] = asyncio.run(ask_all(queue(store, api, max_retries=2), calls(1)))
    assert len(api.batches) == 3 and record.status == "error" and record.attempts == 3


def test_a_resumed_run_polls_the_batch_an_earlier_one_created_and_sends_nothing(tmp_path):
    api = Scripted()
    with CallStore(tmp_path / "calls.sqlite") as store:
        ledger = BatchLedger(store)
        identities = calls(3)
        # an earlier invocation wrote the batch down, created it and was killed
        earlier = ledger.submitting(teacher="t", provider="openai", base_url="http://h/v1",
                                    model="m", reserved_usd=0.0,
                                    items=[(f"c{i:06d}-{c.key[:16]}", c, 1)
                                           for i, c in enumerate(identities)])
        api.batches["batch_9"] = [f"c{i:06d}-{c.key[:16]}" for i, c in enumerate(identities)]
        api.endings["batch_9"] = ["ok"] * 3
        ledger.running(earlier, "batch_9", "in_progress")
        budget = Budget(None)
        records = asyncio.run(ask_all(queue(store, api, budget=budget), identities[:1]))
        assert list(api.batches) == ["batch_9"]  # nothing created
        assert records[0].status == "ok" and store.count() == 3  # the whole batch is stored
        assert ledger.batch(earlier).state == "done"
        assert budget.reserved_usd == pytest.approx(0.0)


def test_a_batch_written_down_but_never_created_is_sent_and_one_created_is_adopted(tmp_path):
    with CallStore(tmp_path / "calls.sqlite") as store:
        ledger = BatchLedger(store)
        one, two = calls(2)
        lost = ledger.submitting(teacher="t", provider="openai", base_url="http://h/v1", model="m",
                                 reserved_usd=0.0, items=[("c000000-x", one, 1)])
        api = Scripted()
        [record] = asyncio.run(ask_all(queue(store, api), [one]))
        assert record.status == "ok" and len(api.batches) == 1  # sent now, once
        assert ledger.batch(lost).state == "failed" and "never created" in ledger.batch(lost).detail

        made = ledger.submitting(teacher="t", provider="openai", base_url="http://h/v1", model="m",
                                 reserved_usd=0.0, items=[("c000000-y", two, 1)])
        api = Scripted()
        api.found[made] = "batch_7"  # the provider has it: the kill came before its id was kept
        api.batches["batch_7"], api.endings["batch_7"] = ["c000000-y"], ["ok"]
        [record] = asyncio.run(ask_all(queue(store, api), [two]))
        assert record.status == "ok" and list(api.batches) == ["batch_7"]
        assert ledger.batch(made).remote_id == "batch_7"


def test_the_budget_refuses_a_batch_whose_worst_case_could_pass_it(tmp_path):
    api = Scripted()
    with CallStore(tmp_path / "calls.sqlite") as store:
        budget = Budget(0.00005)  # 3 calls x (about 8 prompt + 20 reply tokens) at $1/M > $0.00005
        with pytest.raises(BudgetReached, match="a batch of 3 calls"):
            asyncio.run(ask_all(queue(store, api, budget=budget), calls(3)))
        assert api.batches == {} and BatchLedger(store).batches() == []
        budget = Budget(1.0)
        asyncio.run(ask_all(queue(store, api, budget=budget), calls(3)))
        assert budget.spent_usd == pytest.approx(3 * 15 / 1e6) and budget.reserved_usd == 0


def test_requests_past_the_apis_limits_are_split_into_several_batches(tmp_path):
    api = Scripted()
    api.max_requests, api.max_bytes = 3, 250  # three lines, or two of 100 bytes
    with CallStore(tmp_path / "calls.sqlite") as store:
        records = asyncio.run(ask_all(queue(store, api), calls(7)))
        assert [len(v) for v in api.batches.values()] == [2, 2, 2, 1]
        api = Scripted()
        api.max_requests = 3
        asyncio.run(ask_all(queue(store, api), calls(12)[7:]))
        assert [len(v) for v in api.batches.values()] == [3, 2]
    assert all(r.status == "ok" for r in records)


class Billed(Scripted):
    """Every line answered with 1000 input tokens (800 from the prompt cache) and 300 output
    tokens (200 of them reasoning)."""

    async def results(self, remote_id: str, status: RemoteStatus,
                      custom_ids: Sequence[str]) -> AsyncIterator[list[LineResult]]:
        yield [LineResult(c, reply=Reply("4", "stop", False, 1000, 300, 1300,
                                         cached_input_tokens=800, reasoning_tokens=200))
               for c in self.batches[remote_id]]


def test_a_batch_line_is_stored_and_settled_with_its_cached_and_reasoning_tokens(tmp_path):
    price = {"input_per_mtok": 2.0, "cached_input_per_mtok": 0.5, "output_per_mtok": 8.0}
    budget = Budget(1.0)
    with CallStore(tmp_path / "calls.sqlite") as store:
        batch = BatchQueue(teacher="t", api=Billed(), store=store, price=price, budget=budget,
                           gather_s=0.05, poll_s=0.01)
        records = asyncio.run(ask_all(batch, calls(3)))
        stored = [store.get(r.key) for r in records]
    assert {(r.cached_input_tokens, r.reasoning_tokens) for r in stored} == {(800, 200)}
    # 3 lines of 200 uncached at 2, 800 cached at 0.5 and 300 output at 8 per Mtok
    assert budget.spent_usd == pytest.approx(3 * (200 * 2.0 + 800 * 0.5 + 300 * 8.0) / 1e6)
    assert budget.reserved_usd == pytest.approx(0)
