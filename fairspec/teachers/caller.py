"""A teacher as the stages see it: every request answered from the call store, a replay
file, recorded answers (looked up by what the call is about), or the provider, and stored
the moment it completes.

Nothing else in the stages talks to a provider, so no path can pay twice for one call.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fairspec.errors import RecordedMissing
from fairspec.providers import ChatProvider, ChatRequest, RetryableExhausted
from fairspec.providers.base import ChatResult
from fairspec.providers.registry import find_kind
from fairspec.store import AnyProviderReplay, CallIdentity, CallRecord, CallStore
from fairspec.store.recorded_answers import About, RecordedTeacher, missing_message
from fairspec.store.replay import Replay
from fairspec.teachers.batch_queue import BatchQueue
from fairspec.teachers.budget import Budget, call_usd, reserve_usd, with_usage_bound

log = logging.getLogger(__name__)

#: Keys per store query when a stage counts its stored calls.
LOOKUP_CHUNK = 500
#: The most calls a caller keeps looked up ahead (the oldest not asked are dropped: ``ask``
#: then reads the store itself).
LOOKAHEAD = 4096


@dataclass
class TeacherUsage:
    """What one teacher cost in a stage (paper Table 5): calls, tokens, dollars."""

    calls: int = 0          # requests answered, however
    made: int = 0           # sent to the provider now (paid)
    cached: int = 0         # answered by the call store (paid before, not again)
    replayed: int = 0       # answered by a replay file
    recorded: int = 0       # answered by recorded files (free)
    errors: int = 0         # retries exhausted: stored as an error, retried next run
    retries: int = 0        # extra attempts the paid calls needed
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0    # of input_tokens, read from the prompt cache (cheaper)
    reasoning_tokens: int = 0       # of output_tokens, spent thinking (billed as output)
    usd: float | None = 0.0         # what the calls used here cost (paper Table 5)
    spent_usd: float | None = 0.0   # what this stage paid now (calls made, not reused)
    by_status: dict[str, int] = field(default_factory=dict)
    #: answers whose usage was missing or not a count: counted at the request's bound
    usage_bounded: int = 0

    def add(self, record: CallRecord, how: str, price: Mapping[str, float] | None) -> None:
        self.calls += 1
        setattr(self, how, getattr(self, how) + 1)
        self.by_status[record.status] = self.by_status.get(record.status, 0) + 1
        self.input_tokens += record.input_tokens or 0
        self.output_tokens += record.output_tokens or 0
        self.cached_input_tokens += record.cached_input_tokens or 0
        self.reasoning_tokens += record.reasoning_tokens or 0
        if how in ("made", "errors"):
            self.retries += max(0, (record.attempts or 1) - 1)
        if price is not None and self.usd is not None:
            cost = record_usd(price, record)
            self.usd += cost
            if how == "made" and self.spent_usd is not None:
                self.spent_usd += cost

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def record_usd(price: Mapping[str, float] | None, record: CallRecord) -> float:
    """What the stored call ``record`` cost as billed (its cached input at its rate)."""
    return call_usd(price, record.input_tokens or 0, record.output_tokens or 0,
                    record.cached_input_tokens or 0)


class TeacherCaller:
    """One teacher bound to the call store: ``await ask(messages)`` -> a stored CallRecord.

    Each request's :class:`CallIdentity` is built once (:meth:`identity`); its key finds
    the stored call, joins a request already in flight, looks the call up in a replay
    file, and names the record stored after the provider answers.
    """

    def __init__(self, *, name: str, provider_kind: str, base_url: str | None, model: str,
                 settings: Mapping[str, Any], store: CallStore, provider: ChatProvider | None = None,
                 replay: Replay | None = None, any_provider_replay: AnyProviderReplay | None = None,
                 price: Mapping[str, float] | None = None, budget: Budget | None = None,
                 recorded: RecordedTeacher | None = None, fallback: str | None = None,
                 batch: BatchQueue | None = None) -> None:
        self.name = name
        self.provider_kind = provider_kind
        self.base_url = base_url
        self.model = model
        self.settings = dict(settings)
        self.store = store
        self.provider = provider
        self.replay = replay
        self.any_provider_replay = any_provider_replay
        self.price = price
        self.budget = budget
        #: a recorded teacher's answers, and the provider kind that answers what they lack
        #: (``provider``, asked under that kind's own call identity)
        self.recorded = recorded
        self.fallback = fallback
        #: a batch teacher's queue: its calls go through the provider's batch API
        self.batch = batch
        kind = find_kind(fallback or provider_kind)
        # a local model and recorded answers are free
        known = price is not None or (kind is not None and kind.local) or \
            (recorded is not None and fallback is None)
        self.usage = TeacherUsage(usd=0.0 if known else None, spent_usd=0.0 if known else None)
        self.on_answer: Callable[[TeacherCaller], None] | None = None
        # the calls on their way, by key, shared by every caller of this store: two teachers
        # with one configuration asking the same call at once send it once
        self._in_flight: dict[str, asyncio.Future[CallRecord]] = store.in_flight
        #: key -> the stored call or None, looked up ahead by ``prefetch`` (taken by ``ask``)
        self._looked_up: OrderedDict[str, CallRecord | None] = OrderedDict()
        #: id(messages) -> (messages, identity) of the calls ``prefetch`` hashed (messages
        #: are read-only from then on; kept alive here, so an id is not reused meanwhile)
        self._identities: OrderedDict[int, tuple[Any, CallIdentity]] = OrderedDict()

    def identity(self, messages: Sequence[Mapping[str, Any]], sample_index: int = 0) -> CallIdentity:
        """The identity of this teacher's call for ``messages`` (ValueError for bad parts).

        A recorded teacher's settings hold the files' provenance (name, sha256, column), so
        its calls are stored and exported with where their answers came from."""
        return CallIdentity(self.provider_kind, self.base_url, self.model, messages,
                            self.settings, sample_index)

    def live_identity(self, messages: Sequence[Mapping[str, Any]], sample_index: int = 0) -> CallIdentity:
        """The call as its fallback provider kind asks it (a recorded teacher's live calls)."""
        settings = {k: v for k, v in self.settings.items() if k != "recorded"}
        return CallIdentity(self.fallback or self.provider_kind, self.base_url, self.model,
                            messages, settings, sample_index)

    def missing(self, abouts: Iterable[About]) -> list[About]:
        """The calls among ``abouts`` nothing can answer: recorded answers lack them and no
        fallback is set (stages check this before they start, to fail with a list)."""
        if self.recorded is None or self.fallback is not None:
            return []
        return self.recorded.missing(abouts)

    def _record(self, identity: CallIdentity, **result: Any) -> CallRecord:
        return CallRecord.create(identity, teacher=self.name, **result)

    def _cost(self, record: CallRecord) -> float:
        return record_usd(self.price, record)

    def count_stored(self, requests: Iterable[tuple[Sequence[Mapping[str, Any]], int]]) -> None:
        """Charge the budget, up front, for the calls among ``requests`` (messages and sample
        index) paid in an earlier invocation, so that a resumed run knows its spend before it
        sends anything new."""
        if self.budget is None:
            return
        keys = (self.identity(m, sample).key for m, sample in requests)
        while chunk := list(itertools.islice(keys, LOOKUP_CHUNK)):  # memory flat in the calls
            for key, record in self.store.get_many(chunk).items():
                self.budget.count_reused(key, self._cost(record))

    def prefetch(self, requests: Iterable[tuple[Sequence[Mapping[str, Any]], int]]) -> None:
        """Look the calls among ``requests`` (messages and sample index) up in the store in
        one query, for the ``ask`` of each to use instead of a read of its own (an ``ask``
        given the same messages object also reuses the identity hashed here). A call not
        found now is asked of its provider (or joins the same call in flight); a recorded
        teacher routes its calls itself and looks them up as it does."""
        if self.recorded is not None:
            return
        keys = []
        for messages, sample in requests:
            identity = self.identity(messages, sample)
            keys.append(identity.key)
            # ``ask`` with this very messages object takes the identity (hashed once)
            self._identities[id(messages)] = (messages, identity)
        found = self.store.get_many(keys)
        for key in keys:
            self._looked_up[key] = found.get(key)
        for ahead in (self._looked_up, self._identities):  # a call never asked (early exit)
            while len(ahead) > LOOKAHEAD:
                ahead.popitem(last=False)

    async def ask(self, messages: Sequence[Mapping[str, Any]], sample_index: int = 0,
                  about: About | None = None, cache_prefix: int | None = None) -> CallRecord:
        """The answer to ``messages``: stored, in flight (shared), replayed, recorded (by
        ``about``), or asked now (``cache_prefix``: see ``ChatRequest.cache_prefix``)."""
        ahead = self._identities.pop(id(messages), None)
        if ahead is not None and ahead[0] is messages and ahead[1].sample_index == sample_index:
            identity = ahead[1]
        else:
            identity = self.identity(messages, sample_index)
        if self.recorded is not None and self.replay is None:
            identity = self._route(identity, messages, sample_index, about)
        key = identity.key
        ahead_of_time = key in self._looked_up
        stored = self._looked_up.pop(key) if ahead_of_time else self.store.get(key)
        if stored is None and ahead_of_time:
            # looked up a while ago: another teacher with this configuration may have
            # answered it since (a twin a few calls ahead): the store's recent answers say
            stored = self.store.recent.get(key)
        if stored is not None:
            if self.budget is not None:
                self.budget.count_reused(key, self._cost(stored))
            self.usage.add(stored, "cached", self.price)
            if self.on_answer is not None:
                self.on_answer(self)
            return stored
        if key in self._in_flight:  # the same request is on its way: wait for it, pay once
            record = await asyncio.shield(self._in_flight[key])
            self.usage.add(record, "cached", self.price)
            return record
        future: asyncio.Future[CallRecord] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            if self.recorded is not None and self.replay is None \
                    and identity.provider == self.provider_kind:
                record = await self._answer_recorded(identity, about)
            else:
                record = await self._answer(identity, messages, cache_prefix)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the waiters, if any, re-raise it
            raise
        else:
            future.set_result(record)
            if record.completed:
                self.store.remember(record)
            if record.completed and key in self._looked_up:  # looked up again meanwhile
                self._looked_up[key] = record
            return record
        finally:
            del self._in_flight[key]
            if self.on_answer is not None:
                self.on_answer(self)

    def _route(self, identity: CallIdentity, messages: Sequence[Mapping[str, Any]],
               sample_index: int, about: About | None) -> CallIdentity:
        """A recorded teacher's call: recorded where it is stored or its files answer it,
        else its fallback's live call (under that kind's identity), else an error."""
        assert self.recorded is not None
        if about is None:
            raise ValueError(f"teacher {self.name} answers from recorded files: ask() needs about=")
        if self.store.get(identity.key) is not None or self.recorded.answer(about) is not None:
            return identity
        if self.fallback is None:
            raise RecordedMissing(missing_message(self.name, [about], 1))
        return self.live_identity(messages, sample_index)

    async def _answer_recorded(self, identity: CallIdentity, about: About | None) -> CallRecord:
        assert self.recorded is not None and about is not None
        text = self.recorded.answer(about)
        record = await self.store.commit(self._record(
            identity, status="ok", text=text, finish_reason="recorded", latency_s=0.0, attempts=0))
        self.usage.add(record, "recorded", None)
        return record

    async def _answer(self, identity: CallIdentity, messages: Sequence[Mapping[str, Any]],
                      cache_prefix: int | None = None) -> CallRecord:
        replay = self.any_provider_replay if self.any_provider_replay is not None else self.replay
        if replay is not None:
            found = replay.answer(identity)
            record = self._record(identity, status=found.status, text=found.text,
                                  finish_reason=found.finish_reason, input_tokens=found.input_tokens,
                                  output_tokens=found.output_tokens, latency_s=found.latency_s,
                                  attempts=found.attempts, score_logprobs=found.score_logprobs,
                                  cached_input_tokens=found.cached_input_tokens,
                                  reasoning_tokens=found.reasoning_tokens)
            record = await self.store.commit(record)
            self.usage.add(record, "replayed", None)
            return record
        if self.provider is None:
            raise RuntimeError(f"teacher {self.name} has neither a provider nor a replay file")
        settings = {k: v for k, v in self.settings.items() if k != "recorded"}
        if settings.get("seed") is not None:
            settings["seed"] = call_seed(settings["seed"], identity.key)
        request = ChatRequest(messages=[dict(m) for m in messages], settings=settings,
                              cache_prefix=cache_prefix)
        if self.batch is not None:
            return await self._answer_batch(identity, request)
        # never below what the call is billed (the prompt's bytes, the whole output budget)
        worst = reserve_usd(self.price, request, identity.provider, identity.model)
        if self.budget is not None:
            self.budget.reserve(worst, f"teacher {self.name}")
        cost = 0.0
        try:
            result = await self.provider.complete(request)
        except RetryableExhausted as exc:
            record = await self.store.commit(self._record(
                identity, status="error", attempts=exc.attempts, last_error=str(exc)))
            self.usage.add(record, "errors", None)
            return record
        else:
            result = self._billed(result, request, identity)
            cost = call_usd(self.price, result.input_tokens or 0, result.output_tokens or 0,
                            result.cached_input_tokens or 0)
        finally:
            if self.budget is not None:
                self.budget.settle(identity.key, worst, cost)
        # stored (durable) before the call counts as answered: a group commit off the loop
        record = await self.store.commit(self._record(
            identity, status=result.status, text=result.text,
            finish_reason=result.finish_reason, input_tokens=result.input_tokens,
            output_tokens=result.output_tokens, latency_s=result.latency_s,
            attempts=result.attempts, last_error=result.last_error,
            score_logprobs=result.score_logprobs,
            cached_input_tokens=result.cached_input_tokens,
            reasoning_tokens=result.reasoning_tokens,
        ))
        self.usage.add(record, "made", self.price)
        return record

    def _billed(self, result: ChatResult, request: ChatRequest, identity: CallIdentity) -> ChatResult:
        """``result`` with a usage the budget can trust (``budget.with_usage_bound``), the
        replacements counted (``usage_bounded``) and said once per teacher."""
        bounded = with_usage_bound(result, request, identity.provider, identity.model)
        if bounded is None:
            return result
        if not self.usage.usage_bounded:
            log.warning("teacher %s: a reply's usage is missing or not a token count; its calls "
                        "are counted at the request's bound (%d in, %d out)", self.name,
                        bounded.input_tokens, bounded.output_tokens)
        self.usage.usage_bounded += 1
        return bounded

    async def _answer_batch(self, identity: CallIdentity, request: ChatRequest) -> CallRecord:
        """A batch teacher's call: answered when its batch is (the queue stores it and
        settles the budget); a batch that could not be created is an error record, as an
        online call's exhausted retries are."""
        assert self.batch is not None
        try:
            record = await self.batch.answer(identity, request)
        except RetryableExhausted as exc:
            record = await self.store.commit(self._record(
                identity, status="error", attempts=exc.attempts, last_error=str(exc)))
        if record.completed:
            self.usage.add(record, "made", self.price)
        else:
            self.usage.add(record, "errors", None)
        return record


def call_seed(seed: int, key: str) -> int:
    """The seed one call sends: derived from the spec's ``seed`` and the call's key (which
    holds it), so each call samples its own way and a fresh run asks each call the same."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "big") >> 1
