"""A batch teacher's calls: gathered into provider batches, followed to the end, stored.

A :class:`BatchQueue` stands between a :class:`~fairspec.teachers.caller.TeacherCaller`
and a provider's batch API (:class:`~fairspec.providers.batch_api.BatchAPI`). The stage
asks its calls as it always does (``await caller.ask(...)``); here:

* requests arriving together are gathered (until none came for ``gather_s`` seconds) and
  sent as one batch, split where the API's request or byte limits say; a later wave of
  requests (a rationale's next review, asked only if early exit needs it) becomes the
  next batch;
* before a batch is created the budget reserves its worst case (every line's prompt plus
  its whole reply budget, at batch prices): a batch that could pass the limit is not
  sent and its calls raise ``BudgetReached``;
* the ledger (:mod:`fairspec.store.batches`) holds the batch and every custom_id's call
  before the provider is asked to create it, and the provider's batch id the moment it
  is returned; a call that is already in a batch the provider runs (this invocation's, or
  a killed one's) waits for that batch, it is never sent again;
* a batch is polled every ``poll_s`` seconds until it finishes; its results are stored as
  they are read, a chunk at a time; lines that failed (a retryable status) or that the
  batch did not reach (expired, cancelled) are resubmitted, only those, up to
  ``max_retries`` times; what still fails is stored as an error record (the next run
  retries it), as an online call's exhausted retries are.

Every batch's state is written to ``state_file`` (the stage's ``batches.json``) on each
change, and ``on_change`` is called (the progress display).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fairspec.artifacts import atomic_write_json
from fairspec.providers import ChatRequest, FatalProviderError, RetryableExhausted
from fairspec.providers.batch_api import BatchAPI, BatchLine, LineResult, RemoteStatus
from fairspec.providers.limits import call_with_retries
from fairspec.store import CallIdentity, CallRecord, CallStore
from fairspec.store.batches import OPEN, PENDING, BatchItem, BatchLedger, BatchRow
from fairspec.teachers.budget import Budget, call_usd, reserve_usd, with_usage_bound

log = logging.getLogger(__name__)

#: Seconds between two polls of a running batch, and the quiet time that closes a batch
#: (environment variables: a test server answers in a moment, a real batch in minutes).
POLL_ENV, GATHER_ENV = "FAIRSPEC_BATCH_POLL_S", "FAIRSPEC_BATCH_GATHER_S"
DEFAULT_POLL_S, DEFAULT_GATHER_S = 30.0, 2.0


def env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None


@dataclass
class _Queued:
    identity: CallIdentity
    request: ChatRequest
    attempt: int


def request_of(identity: CallIdentity) -> ChatRequest:
    """The request a stored call stands for (its generation settings are the request's)."""
    settings = {k: v for k, v in identity.settings.items() if k != "recorded"}
    return ChatRequest(messages=[dict(m) for m in identity.messages], settings=settings)


class BatchQueue:
    """One batch teacher's calls (see the module docstring). Used from one event loop."""

    def __init__(self, *, teacher: str, api: BatchAPI, store: CallStore,
                 price: Mapping[str, float] | None = None, budget: Budget | None = None,
                 max_retries: int = 8, gather_s: float | None = None,
                 poll_s: float | None = None, state_file: Path | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.teacher = teacher
        self.api = api
        self.store = store
        self.ledger = BatchLedger(store)
        self.price = price
        self.budget = budget
        self.max_retries = max_retries
        self.gather_s = env_seconds(GATHER_ENV, DEFAULT_GATHER_S) if gather_s is None else gather_s
        self.poll_s = env_seconds(POLL_ENV, DEFAULT_POLL_S) if poll_s is None else poll_s
        self.state_file = state_file
        self.on_change = on_change
        self._queued: list[_Queued] = []
        self._last_arrival = 0.0
        self._flusher: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Future[CallRecord]] = {}
        self._tries: dict[str, int] = {}      # submissions of a call in this invocation
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._touched: list[str] = []         # batches this queue created or followed
        self._rows: dict[str, BatchRow] = {}  # their ledger rows, as of the last change
        #: what this invocation did: batches created, lines resubmitted, failed, expired
        self.counts = {"batches": 0, "resubmitted": 0, "failed_lines": 0, "expired_lines": 0,
                       "followed": 0}

    # -- asking ---------------------------------------------------------------------------

    async def answer(self, identity: CallIdentity, request: ChatRequest) -> CallRecord:
        """The stored record answering ``identity`` (an error record when its retries ran
        out); raises FatalProviderError, RetryableExhausted (the batch could not be
        created) or BudgetReached for the whole batch it was to go in."""
        key = identity.key
        future = self._waiters.get(key)
        if future is None:
            future = self._waiters[key] = asyncio.get_running_loop().create_future()
            batch = self.ledger.pending_batch(key)
            if batch is not None:  # sent before (maybe by a killed run): wait for that batch
                self._follow(batch)
            else:
                self._enqueue(identity, request, self.ledger.attempts(key) + 1)
        return await asyncio.shield(future)

    def _enqueue(self, identity: CallIdentity, request: ChatRequest, attempt: int) -> None:
        self._queued.append(_Queued(identity, request, attempt))
        self._last_arrival = time.monotonic()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        while (wait := self._last_arrival + self.gather_s - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        queued, self._queued = self._queued, []
        self._flusher = None  # requests arriving from now on go in the next batch
        for chunk in self._split(queued):
            try:
                await self._submit(chunk)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 — handed to the calls that wait
                self._fail([q.identity.key for q in chunk], exc)

    def _split(self, queued: list[_Queued]) -> list[list[_Queued]]:
        chunks: list[list[_Queued]] = [[]]
        size = 0
        for item in queued:
            line = self.api.line_bytes(BatchLine("c000000-" + item.identity.key[:16], item.request))
            if chunks[-1] and (len(chunks[-1]) >= self.api.max_requests
                               or size + line > self.api.max_bytes):
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += line
        return [c for c in chunks if c]

    def _worst(self, identity: CallIdentity, request: ChatRequest) -> float:
        """The most the call can cost (``reserve_usd``: never below what it is billed)."""
        return reserve_usd(self.price, request, identity.provider, identity.model)

    async def _submit(self, chunk: list[_Queued]) -> None:
        worst = sum(self._worst(q.identity, q.request) for q in chunk)
        if self.budget is not None:
            self.budget.reserve(worst, f"a batch of {len(chunk)} calls of teacher {self.teacher}")
        lines = [BatchLine(f"c{i:06d}-{q.identity.key[:16]}", q.request)
                 for i, q in enumerate(chunk)]
        for q in chunk:
            self._tries[q.identity.key] = self._tries.get(q.identity.key, 0) + 1
        first = chunk[0].identity
        batch_id = self.ledger.submitting(
            teacher=self.teacher, provider=first.provider, base_url=first.base_url,
            model=first.model, reserved_usd=worst,
            items=[(line.custom_id, q.identity, q.attempt) for line, q in zip(lines, chunk,
                                                                               strict=True)])
        self._touched.append(batch_id)
        try:
            remote_id, state = await self._retrying(lambda: self.api.create(batch_id, lines))
        except asyncio.CancelledError:
            raise  # stays "submitting": the next run asks the provider whether it exists
        except BaseException:
            found = await self._find_quietly(batch_id)
            if found is None:
                self.ledger.close(batch_id, "failed", "the provider did not create it")
                if self.budget is not None:
                    self.budget.release(worst)
                raise
            remote_id, state = found
        self.ledger.running(batch_id, remote_id, state)
        self.counts["batches"] += 1
        log.info("teacher %s: batch %s (%s) of %d calls created", self.teacher, remote_id,
                 batch_id, len(chunk))
        self._changed()
        self._follow(batch_id, reserved=True)

    async def _find_quietly(self, batch_id: str) -> tuple[str, str] | None:
        try:
            return await self._retrying(lambda: self.api.find(batch_id))
        except (FatalProviderError, RetryableExhausted):
            return None

    async def _retrying(self, make: Callable[[], Any]) -> Any:
        """One batch-management call (create, poll, list), with the teacher's retries."""
        provider = self.api.provider

        async def attempt() -> tuple[Any, None]:
            return await make(), None

        value, _, _ = await call_with_retries(attempt, teacher=self.teacher,
                                              limiter=provider.limiter, policy=provider.policy,
                                              estimated_tokens=0)
        return value

    # -- following a batch ----------------------------------------------------------------

    def _follow(self, batch_id: str, *, reserved: bool = False) -> None:
        if batch_id in self._pollers:
            return
        if batch_id not in self._touched:
            self._touched.append(batch_id)
        if not reserved:
            self.counts["followed"] += 1
        task = asyncio.get_running_loop().create_task(self._poll_guarded(batch_id, reserved))
        self._pollers[batch_id] = task

    async def _poll_guarded(self, batch_id: str, reserved: bool) -> None:
        items = self.ledger.items(batch_id, state=PENDING)
        try:
            await self._poll(batch_id, items, reserved)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 — handed to the calls that wait
            self._fail([i.key for i in items], exc)

    async def _poll(self, batch_id: str, items: list[BatchItem], reserved: bool) -> None:
        worst = {i.key: self._worst(i.identity, request_of(i.identity)) for i in items}
        if not reserved and self.budget is not None:  # an earlier run's batch: paid when it lands
            self.budget.hold(sum(worst.values()))
        row = self.ledger.batch(batch_id)
        remote_id = row.remote_id
        if remote_id is None:  # written down, then killed before (or while) creating it
            found = await self._retrying(lambda: self.api.find(batch_id))
            if found is None:
                self.ledger.close(batch_id, "failed", "never created (the run stopped first)")
                self._release(worst)
                for item in items:
                    self._enqueue(item.identity, request_of(item.identity), item.attempt)
                self._changed()
                return
            remote_id = found[0]
            self.ledger.running(batch_id, remote_id, found[1])
        while True:
            status = await self._retrying(lambda: self.api.status(remote_id))
            self.ledger.observed(batch_id, status.state, status.detail)
            self._changed()
            if status.finished:
                break
            await asyncio.sleep(self.poll_s)
        if status.rejected:
            self.ledger.close(batch_id, "failed", status.detail)
            self._release(worst)
            self._changed()
            raise FatalProviderError(self.teacher, f"batch {remote_id} failed: "
                                     f"{self.api.provider._scrub(status.detail or 'no reason given')}",
                                     hint="fix what it says and rerun; nothing of it was paid")
        await self._read(batch_id, remote_id, status, items, worst, row.created_at)
        self.ledger.close(batch_id, "done")
        self._changed()

    async def _read(self, batch_id: str, remote_id: str, status: RemoteStatus,
                    items: list[BatchItem], worst: dict[str, float], created_at: str) -> None:
        by_id = {i.custom_id: i for i in items}
        order = [i.custom_id for i in self.ledger.items(batch_id)]
        latency = max(0.0, time.time() - datetime.fromisoformat(created_at).timestamp())
        seen: set[str] = set()
        async for chunk in self.api.results(remote_id, status, order):
            self._take(batch_id, [r for r in chunk if r.custom_id in by_id
                                  and r.custom_id not in seen], by_id, worst, latency)
            seen.update(r.custom_id for r in chunk)
        # lines the batch never reached and reported nothing for (cancelled, or lost)
        unreported = [LineResult(c, error="no result: the batch ended before this request",
                                 expired=True) for c in by_id if c not in seen]
        self._take(batch_id, unreported, by_id, worst, latency)

    def _take(self, batch_id: str, results: list[LineResult], by_id: dict[str, BatchItem],
              worst: dict[str, float], latency: float) -> None:
        """Store one chunk of results, mark it in the ledger, settle the budget, resubmit
        what may still be answered, and hand the records to the calls waiting for them."""
        if not results:
            return
        records, marks, again = [], [], []
        for line in results:
            item = by_id[line.custom_id]
            request = request_of(item.identity)
            if line.reply is not None:
                result = line.result(request, latency_s=latency, attempts=item.attempt)
                # garbled usage counted at the request's bound, as an online call's is
                result = with_usage_bound(result, request, item.identity.provider,
                                          item.identity.model) or result
                records.append(CallRecord.create(
                    item.identity, teacher=self.teacher, status=result.status, text=result.text,
                    finish_reason=result.finish_reason, input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens, latency_s=result.latency_s,
                    attempts=item.attempt, score_logprobs=result.score_logprobs,
                    cached_input_tokens=result.cached_input_tokens,
                    reasoning_tokens=result.reasoning_tokens))
                marks.append((line.custom_id, "answered"))
                continue
            self.counts["expired_lines" if line.expired else "failed_lines"] += 1
            marks.append((line.custom_id, "expired" if line.expired else "failed"))
            error = self.api.provider._scrub(line.error or "failed")
            if (line.retryable or line.expired) and \
                    self._tries.get(item.key, 0) <= self.max_retries:
                again.append(item)
            else:
                records.append(CallRecord.create(item.identity, teacher=self.teacher,
                                                 status="error", attempts=item.attempt,
                                                 last_error=f"batch line: {error}"))
        self.store.put_many(records)
        self.ledger.mark(batch_id, marks)
        for record in records:
            if self.budget is None:
                break
            if record.completed:
                cost = call_usd(self.price, record.input_tokens or 0, record.output_tokens or 0,
                                record.cached_input_tokens or 0)
                self.budget.settle(record.key, worst.get(record.key, 0.0), cost)
            else:
                self.budget.release(worst.get(record.key, 0.0))
        self._release({i.key: worst.get(i.key, 0.0) for i in again})
        stored = self.store.get_many((r.key for r in records), include_errors=True)
        for record in records:
            future = self._waiters.pop(record.key, None)
            if future is not None and not future.done():
                future.set_result(stored.get(record.key, record))
        for item in again:
            self.counts["resubmitted"] += 1
            self._enqueue(item.identity, request_of(item.identity), item.attempt + 1)
        self._changed()

    # -- the rest -------------------------------------------------------------------------

    def _release(self, worst: Mapping[str, float]) -> None:
        if self.budget is not None:
            self.budget.release(sum(worst.values()))

    def _fail(self, keys: Sequence[str], exc: BaseException) -> None:
        for key in keys:
            future = self._waiters.pop(key, None)
            if future is not None and not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: the waiter re-raises it
        log.debug("teacher %s: a batch failed: %s", self.teacher, exc)

    def summary(self) -> str:
        """A short line for the progress display: the batches this stage follows (as of
        their last change: no query per answered call)."""
        rows = list(self._rows.values())
        if not rows:
            return "batch: gathering" if self._queued else ""
        running = [r for r in rows if r.state in OPEN]
        words = [f"{len(running)} running ({', '.join(sorted({r.remote_state or r.state for r in running}))})"
                 if running else "", f"{len(rows) - len(running)} done" if len(rows) > len(running) else ""]
        return "batches: " + ", ".join(w for w in words if w)

    def _changed(self) -> None:
        self._rows = {b: self.ledger.batch(b) for b in self._touched}
        if self.state_file is not None:
            self._write_state()
        if self.on_change is not None:
            self.on_change()

    def _write_state(self) -> None:
        assert self.state_file is not None
        try:
            found = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = {}
        batches = found.get("batches", {}) if isinstance(found, dict) else {}
        batches.update({batch_id: row.to_json() for batch_id, row in self._rows.items()})
        atomic_write_json(self.state_file, {"batches": batches})

    async def aclose(self) -> None:
        """Stop gathering and polling (the batches go on at the provider; the ledger keeps
        them for the next run) and close the API's client."""
        tasks = [t for t in (self._flusher, *self._pollers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.api.aclose()
