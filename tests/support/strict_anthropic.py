"""A strict local stand-in for Anthropic's Messages API and Message Batches API.

The official ``anthropic`` SDK works against it unchanged (``base_url=server.url``). It
refuses what the real service refuses, rule by rule, each rule with the public page that
states it beside it, and answers deterministically from the prompt (``answer``, a callable
of the request body; None: the model refuses, ``stop_reason: refusal``), with usage as
the API reports it: prompt caching (``cache_creation_input_tokens`` the first time a
cacheable prefix is seen, ``cache_read_input_tokens`` after), and extended thinking that
spends its tokens out of ``max_tokens`` (a ``thinking`` block with a signature, then the
``text`` block; when ``max_tokens`` runs out while thinking, no text and ``stop_reason:
max_tokens``)::

    with StrictAnthropic(key=KEY) as server:
        client = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=0)

Routes: ``POST /v1/messages``; ``POST /v1/messages/batches``, ``GET /v1/messages/batches``
(``limit``, ``after_id``; newest first), ``GET /v1/messages/batches/{id}``,
``GET /v1/messages/batches/{id}/results`` (JSONL, in an order unlike the requests'),
``POST /v1/messages/batches/{id}/cancel``.

Life of a batch (as tests/support/batch_server.py): created ``in_progress``; every ``GET``
of it is a poll; at poll number ``polls_to_complete`` (unless :meth:`StrictAnthropic.hold`
is on) its requests are answered (each validated as a Messages request: an invalid one is an
``errored`` result with ``invalid_request_error``) and it ends (``ended``). Controls:
:meth:`expire_next`, :meth:`fail_next` (batch lines), :meth:`fail_calls` (online calls: 529
overloaded, 429 with ``retry-after``, ...). The server runs in a thread of the test process
(stdlib ``ThreadingHTTPServer``); all state is behind one lock.

Tokens are counted with the rule all the strict stand-ins share (tests/support/standin_http.py:
a run of word characters or one other non-space character).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standin_http import Received, ThreadServer, count_tokens, cut

MESSAGES = "https://docs.anthropic.com/en/api/messages"
ERRORS = "https://docs.anthropic.com/en/api/errors"
VERSIONING = "https://docs.anthropic.com/en/api/versioning"
THINKING = "https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking"
CACHING = "https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching"
BATCHES = "https://docs.anthropic.com/en/docs/build-with-claude/batch-processing"
MIGRATING = "https://docs.anthropic.com/en/docs/about-claude/models/migrating-to-claude-4"

#: The top-level fields of a Messages request (MESSAGES; the SDK's MessageCreateParams):
#: anything else is "Extra inputs are not permitted".
FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "metadata", "thinking", "tools", "tool_choice", "service_tier",
    "cache_control", "container", "inference_geo", "output_config", "speed", "diagnostics",
    "mcp_servers", "context_management",
})
#: ERRORS: the error type of each status
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
               529: "overloaded_error"}
#: BATCHES: custom_id is 1-64 characters of letters, digits, _ and -
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_BATCH_REQUESTS = 100_000  # BATCHES: 100,000 requests or 256 MB per batch
MAX_BATCH_BYTES = 256 * 1000 * 1000
MAX_BREAKPOINTS = 4  # CACHING: up to 4 cache breakpoints
MIN_THINKING_BUDGET = 1024  # THINKING: budget_tokens >= 1024 and < max_tokens
#: models of before Claude Opus 4.1: they take temperature and top_p together (MIGRATING)
BOTH_SAMPLING = re.compile(r"^claude-(3|instant|2|sonnet-4-0|opus-4-0|sonnet-4-2|opus-4-2|"
                           r"sonnet-4$|opus-4$)")
#: models without extended thinking (THINKING: Claude 3.7 and later think)
NO_THINKING = re.compile(r"^claude-(3-(haiku|sonnet|opus|5)|instant|2)")


def tokens(text: str) -> int:
    """Tokens of ``text`` under the stand-ins' shared rule (standin_http.count_tokens)."""
    return count_tokens(text)


def min_cacheable(model: str) -> int:
    """CACHING: the minimum cacheable prompt length per model."""
    if re.match(r"^claude-(opus-4-5|opus-4-6|haiku-4-5)", model):
        return 4096
    if re.match(r"^claude-(3-haiku|3-5-haiku|sonnet-4-6)", model):
        return 2048
    return 1024


def default_answer(body: dict[str, Any]) -> str:
    """A deterministic answer: the last user text, echoed, with a score in brackets."""
    text = last_user_text(body)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"Answer {digest} to: {' '.join(text.split())[:120]} So the score is [4]."


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return "".join(b.get("text", "") for b in _blocks(message.get("content")))
    return ""


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_body(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    """ERRORS: ``{"type": "error", "error": {"type": ..., "message": ...}}``."""
    return {"type": "error", "error": {"type": error_type or ERROR_TYPES.get(status, "api_error"),
                                       "message": message},
            "request_id": "req_" + secrets.token_hex(12)}


def validate(body: Any) -> None:
    """Raise ApiError(400) for a Messages request the real API refuses."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    extra = sorted(set(body) - FIELDS)
    if extra:  # MESSAGES: the request schema forbids other fields
        raise ApiError(400, f"{extra[0]}: Extra inputs are not permitted")
    for name in ("model", "max_tokens", "messages"):  # MESSAGES: required
        if name not in body:
            raise ApiError(400, f"{name}: Field required")
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model: Input should be a valid string")
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, "max_tokens: Input should be greater than or equal to 1")
    if body.get("stream"):
        raise ApiError(400, "stream: this stand-in answers without streaming")
    _validate_messages(body["messages"])
    breakpoints = _validate_system(body.get("system")) + sum(
        _count_breakpoints(m.get("content")) for m in body["messages"])
    if breakpoints > MAX_BREAKPOINTS:  # CACHING
        raise ApiError(400, f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be "
                            f"provided. Found {breakpoints}.")
    temperature, top_p, top_k = body.get("temperature"), body.get("top_p"), body.get("top_k")
    if temperature is not None and not (_number(temperature) and 0 <= temperature <= 1):
        raise ApiError(400, "temperature: Input should be less than or equal to 1")  # MESSAGES
    if top_p is not None and not (_number(top_p) and 0 <= top_p <= 1):
        raise ApiError(400, "top_p: Input should be less than or equal to 1")  # MESSAGES
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise ApiError(400, "top_k: Input should be greater than or equal to 0")
    if temperature is not None and top_p is not None and not BOTH_SAMPLING.match(model):
        # MIGRATING: Opus 4.1 and the 4.5 models take one of them
        raise ApiError(400, "`temperature` and `top_p` cannot both be specified for this model. "
                            "Please use only one.")
    stop = body.get("stop_sequences")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise ApiError(400, "stop_sequences: Input should be a valid list of strings")
    thinking = body.get("thinking")
    if thinking is not None:
        _validate_thinking(thinking, model, max_tokens, temperature, top_p, top_k)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_messages(messages: Any) -> None:
    """MESSAGES: roles user or assistant. Consecutive turns of one role are combined into one
    turn and a first assistant turn is accepted (the rule since late 2024, see
    github.com/anthropics/courses/issues/79), so neither is refused here."""
    if not isinstance(messages, list) or not messages:  # MESSAGES: at least one message
        raise ApiError(400, "messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise ApiError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if set(message) - {"role", "content"}:
            extra = sorted(set(message) - {"role", "content"})[0]
            raise ApiError(400, f"messages.{i}.{extra}: Extra inputs are not permitted")
        content = message.get("content")
        if isinstance(content, str):
            if not content and i < len(messages) - 1:
                raise ApiError(400, f"messages.{i}: all messages must have non-empty content "
                                    "except for the optional final assistant message")
            continue
        if not isinstance(content, list) or not content:
            raise ApiError(400, f"messages.{i}.content: Input should be a valid list")
        for j, block in enumerate(content):
            _validate_block(block, f"messages.{i}.content.{j}")


def _validate_block(block: Any, where: str) -> None:
    if not isinstance(block, dict) or "type" not in block:
        raise ApiError(400, f"{where}: Input should be a content block")
    if block["type"] == "text":
        if set(block) - {"type", "text", "cache_control", "citations"}:
            extra = sorted(set(block) - {"type", "text", "cache_control", "citations"})[0]
            raise ApiError(400, f"{where}.{extra}: Extra inputs are not permitted")
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise ApiError(400, f"{where}: text content blocks must be non-empty")  # MESSAGES
    cache = block.get("cache_control")
    if cache is not None:  # CACHING: only the ephemeral type, ttl 5m or 1h
        if not isinstance(cache, dict) or cache.get("type") != "ephemeral" \
                or cache.get("ttl", "5m") not in ("5m", "1h") or set(cache) - {"type", "ttl"}:
            raise ApiError(400, f"{where}.cache_control: Input tag does not match the expected "
                                "tag 'ephemeral'")


def _validate_system(system: Any) -> int:
    """MESSAGES: a string or a list of text blocks; the number of breakpoints in it."""
    if system is None or isinstance(system, str):
        return 0
    if not isinstance(system, list):
        raise ApiError(400, "system: Input should be a valid string or list of text blocks")
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise ApiError(400, f"system.{j}: Input tag should be 'text'")
        _validate_block(block, f"system.{j}")
    return _count_breakpoints(system)


def _count_breakpoints(content: Any) -> int:
    return sum(1 for b in _blocks(content) if b.get("cache_control") is not None)


def _validate_thinking(thinking: Any, model: str, max_tokens: int, temperature: Any, top_p: Any,
                       top_k: Any) -> None:
    """THINKING, rule by rule."""
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        raise ApiError(400, "thinking: Input tag should be 'enabled' or 'disabled'")
    if thinking["type"] == "disabled":
        return
    if NO_THINKING.match(model):
        raise ApiError(400, f"'claude-{model[7:]}' does not support thinking.")
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
        raise ApiError(400, "thinking.enabled.budget_tokens: Input should be greater than or "
                            f"equal to {MIN_THINKING_BUDGET}")
    if max_tokens <= budget:
        raise ApiError(400, "`max_tokens` must be greater than `thinking.budget_tokens`. Please "
                            f"consult our documentation at {THINKING}")
    if temperature is not None and temperature != 1:
        raise ApiError(400, "`temperature` may only be set to 1 when thinking is enabled. Please "
                            f"consult our documentation at {THINKING}")
    if top_p is not None and not 0.95 <= top_p <= 1:
        raise ApiError(400, "`top_p` must be greater than or equal to 0.95 or unset when thinking "
                            f"is enabled. Please consult our documentation at {THINKING}")
    if top_k is not None:
        raise ApiError(400, "`top_k` must be unset when thinking is enabled. Please consult our "
                            f"documentation at {THINKING}")


@dataclass
class CreatedBatch:
    """One batch as it was created: its id and its requests' custom_ids, in order."""

    id: str
    custom_ids: list[str]
    params: list[dict[str, Any]]


@dataclass
class _Batch:
    id: str
    created_at: float
    requests: list[dict[str, Any]]
    state: str = "in_progress"  # in_progress, canceling, ended
    ended_at: float | None = None
    cancel_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


class StrictAnthropic(ThreadServer):
    """The server; see the module docstring. Controls and counters are plain attributes."""

    name = "strict-anthropic"

    def __init__(self, *, key: str | None = None,
                 answer: Callable[[dict[str, Any]], str | None] = default_answer,
                 thinking_spend: int | None = None, polls_to_complete: int = 1,
                 min_cache_tokens: int | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        #: when set, a request without this key (x-api-key, or the SDK's Bearer) gets 401
        self.key = key
        self.answer = answer
        #: thinking tokens a thinking request spends (None: its whole budget_tokens)
        self.thinking_spend = thinking_spend
        self.polls_to_complete = polls_to_complete
        #: overrides the per-model minimum cacheable length (CACHING)
        self.min_cache_tokens = min_cache_tokens
        #: seconds an online call waits before it is answered (a slow service)
        self.delay_s = 0.0
        super().__init__(host=host, port=port)
        # counters
        self.calls = 0                                # POST /v1/messages, answered or not
        self.accepted: list[dict[str, Any]] = []      # bodies of the answered ones
        self.refused: list[tuple[int, str]] = []      # (status, message) of the others
        self.created: list[CreatedBatch] = []
        self.polls: dict[str, int] = {}
        #: every request in arrival order, with the status answered (as the other stand-ins')
        self.received: list[Received] = []
        # state
        self._lock = threading.RLock()
        self._cache: set[str] = set()
        self._held = False
        self._expire: int | None = None
        self._fail: list[tuple[int, str]] = []         # (count, error type) per batch to come
        self._fail_calls: list[tuple[int, dict[str, str]]] = []  # online: (status, headers)
        self._batches: dict[str, _Batch] = {}

    # -- running -------------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        return Handler

    @property
    def url(self) -> str:
        """The SDK's ``base_url`` (the API root; the SDK adds ``/v1/...``)."""
        return f"http://{self.host}:{self.port}"

    # -- controls --------------------------------------------------------------------------

    def hold(self) -> None:
        """Keep every batch ``in_progress`` however often it is polled."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        with self._lock:
            self._held = False

    def expire_next(self, answered: int) -> None:
        """The next batch to end answers its first ``answered`` requests; the rest expire."""
        with self._lock:
            self._expire = answered

    def fail_next(self, count: int, error_type: str = "api_error", *, times: int = 1) -> None:
        """The next ``times`` batches to end fail their first ``count`` requests with an
        ``errored`` result of ``error_type`` (api_error, overloaded_error: retryable;
        invalid_request_error: not)."""
        with self._lock:
            self._fail = [(count, error_type)] * times

    def fail_calls(self, count: int, status: int = 529, *, retry_after: float | None = None) -> None:
        """The next ``count`` online calls get HTTP ``status`` (529 overloaded_error by
        default; 429 with ``retry-after`` seconds when given)."""
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        with self._lock:
            self._fail_calls.extend([(status, headers)] * count)

    # -- answering -------------------------------------------------------------------------

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        """The Message answering a valid request ``body`` (prompt cache updated)."""
        model = body["model"]
        max_tokens = body["max_tokens"]
        cached, written, total = self._caching(body)
        thinking = body.get("thinking") or {}
        budget = thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None
        content: list[dict[str, Any]] = []
        stop_reason, stop_sequence = "end_turn", None
        spent = 0
        if budget is not None:  # THINKING: thoughts count against max_tokens
            spent = min(budget if self.thinking_spend is None else self.thinking_spend, max_tokens)
            thought = " ".join(["think"] * spent)
            content.append({"type": "thinking", "thinking": thought,
                            "signature": hashlib.sha256(thought.encode()).hexdigest()})
        room = max_tokens - spent
        text = ""
        if room <= 0:
            stop_reason = "max_tokens"
        elif (answer := self.answer(body)) is None:  # the model declines (MESSAGES: refusal)
            stop_reason = "refusal"
        else:
            text = answer
            for stop in body.get("stop_sequences") or []:
                at = text.find(stop)
                if at >= 0:
                    text, stop_reason, stop_sequence = text[:at], "stop_sequence", stop
                    break
            if tokens(text) > room:
                text, stop_reason, stop_sequence = cut(text, room), "max_tokens", None
            if text:
                content.append({"type": "text", "text": text})
        usage: dict[str, Any] = {
            "input_tokens": total - cached - written,
            "cache_creation_input_tokens": written, "cache_read_input_tokens": cached,
            "output_tokens": spent + tokens(text), "service_tier": "standard",
        }
        if budget is not None:
            usage["output_tokens_details"] = {"thinking_tokens": spent}
        return {"id": "msg_" + secrets.token_hex(12), "type": "message", "role": "assistant",
                "model": model, "content": content, "stop_reason": stop_reason,
                "stop_sequence": stop_sequence, "usage": usage}

    def _caching(self, body: dict[str, Any]) -> tuple[int, int, int]:
        """(tokens read from the cache, tokens written to it, all input tokens). CACHING: a
        breakpoint's prefix (every block up to it, system first) is cached when it reaches
        the model's minimum; a later request with the same prefix reads it."""
        blocks = _blocks(body.get("system"))
        for message in body["messages"]:
            blocks += [{**b, "role": message["role"]} for b in _blocks(message.get("content"))]
        total = sum(tokens(b.get("text", "")) for b in blocks) + 3 * len(body["messages"])
        minimum = self.min_cache_tokens or min_cacheable(body["model"])
        prefixes = []
        running = hashlib.sha256(body["model"].encode())
        size = 0
        for block in blocks:
            running.update(json.dumps([block.get("role"), block.get("text", "")]).encode())
            size += tokens(block.get("text", ""))
            if block.get("cache_control") is not None and size >= minimum:
                prefixes.append((running.hexdigest(), size))
        read = 0
        with self._lock:
            for digest, length in prefixes:
                if digest in self._cache:
                    read = max(read, length)
            written = 0
            if prefixes and prefixes[-1][1] > read:
                written = prefixes[-1][1] - read
            self._cache.update(d for d, _ in prefixes)
        return read, written, total

    # -- batches ---------------------------------------------------------------------------

    def create_batch(self, body: dict[str, Any], size: int) -> dict[str, Any]:
        if set(body) - {"requests"}:
            raise ApiError(400, f"{sorted(set(body) - {'requests'})[0]}: Extra inputs are not "
                                "permitted")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "requests: at least one request is required")
        if len(requests) > MAX_BATCH_REQUESTS or size > MAX_BATCH_BYTES:  # BATCHES
            raise ApiError(413, f"a batch holds at most {MAX_BATCH_REQUESTS} requests and "
                                f"{MAX_BATCH_BYTES} bytes")
        seen: set[str] = set()
        for i, request in enumerate(requests):
            if not isinstance(request, dict) or set(request) != {"custom_id", "params"}:
                raise ApiError(400, f"requests.{i}: each request is exactly custom_id and params")
            custom_id = request["custom_id"]
            if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):  # BATCHES
                raise ApiError(400, f"requests.{i}.custom_id: String should match pattern "
                                    "'^[a-zA-Z0-9_-]{1,64}$'")
            if custom_id in seen:
                raise ApiError(400, f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}")
            seen.add(custom_id)
            if not isinstance(request["params"], dict):
                raise ApiError(400, f"requests.{i}.params: Input should be an object")
        batch = _Batch("msgbatch_" + secrets.token_hex(12), time.time(), requests)
        with self._lock:
            self._batches[batch.id] = batch
            self.polls[batch.id] = 0
            self.created.append(CreatedBatch(batch.id, [r["custom_id"] for r in requests],
                                             [r["params"] for r in requests]))
            return self._batch_json(batch)

    def poll(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._get(batch_id)
            self.polls[batch_id] += 1
            if batch.state != "ended":
                if batch.state == "canceling":
                    self._end(batch, answered=0, canceled=True)
                elif not self._held and self.polls[batch_id] >= self.polls_to_complete:
                    answered, self._expire = self._expire, None
                    fail = self._fail.pop(0) if self._fail else (0, "api_error")
                    self._end(batch, answered=answered, fail=fail)
            return self._batch_json(batch)

    def _end(self, batch: _Batch, *, answered: int | None, fail: tuple[int, str] = (0, ""),
             canceled: bool = False) -> None:
        results = []
        for index, request in enumerate(batch.requests):
            custom_id = request["custom_id"]
            if canceled:
                result: dict[str, Any] = {"type": "canceled"}
            elif answered is not None and index >= answered:
                result = {"type": "expired"}
            elif index < fail[0]:
                result = {"type": "errored", "error": error_body(
                    500, f"injected failure ({fail[1]})", fail[1])}
            else:
                try:
                    validate(request["params"])
                    result = {"type": "succeeded", "message": self.message(request["params"])}
                except ApiError as exc:
                    result = {"type": "errored", "error": error_body(exc.status, exc.message)}
            results.append({"custom_id": custom_id, "result": result})
        # BATCHES: results come in no particular order: match them by custom_id
        batch.results = results[1::2] + results[0::2]
        batch.state, batch.ended_at = "ended", time.time()

    def cancel(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._get(batch_id)
            if batch.state == "in_progress":
                batch.state, batch.cancel_at = "canceling", time.time()
            return self._batch_json(batch)

    def results(self, batch_id: str) -> bytes:
        with self._lock:
            batch = self._get(batch_id)
            if batch.state != "ended":
                raise ApiError(404, f"Results for batch {batch_id} are not available yet")
            return b"".join(json.dumps(r).encode() + b"\n" for r in batch.results)

    def list_batches(self, limit: int, after_id: str | None) -> dict[str, Any]:
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit: Input should be between 1 and 1000")
        with self._lock:
            batches = sorted(self._batches.values(), key=lambda b: b.created_at, reverse=True)
            ids = [b.id for b in batches]
            start = ids.index(after_id) + 1 if after_id in ids else 0
            page = batches[start:start + limit]
            return {"data": [self._batch_json(b) for b in page],
                    "has_more": start + limit < len(batches),
                    "first_id": page[0].id if page else None,
                    "last_id": page[-1].id if page else None}

    def _get(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"No batch found with id '{batch_id}'")
        return batch

    def _batch_json(self, batch: _Batch) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.state == "ended":
            for r in batch.results:
                counts[r["result"]["type"]] += 1
        else:
            counts["processing"] = len(batch.requests)
        return {
            "id": batch.id, "type": "message_batch", "processing_status": batch.state,
            "request_counts": counts, "created_at": _stamp(batch.created_at),
            "expires_at": _stamp(batch.created_at + timedelta(hours=24).total_seconds()),
            "ended_at": _stamp(batch.ended_at) if batch.ended_at else None,
            "cancel_initiated_at": _stamp(batch.cancel_at) if batch.cancel_at else None,
            "archived_at": None,
            "results_url": (f"{self.url}/v1/messages/batches/{batch.id}/results"
                            if batch.state == "ended" else None),
        }


class _Handler(BaseHTTPRequestHandler):
    server_owner: StrictAnthropic
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    _request: Received | None = None

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        if self._request is not None:
            self._request.status, self._request.reply = status, payload
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_" + secrets.token_hex(12))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _check_headers(self) -> None:
        owner = self.server_owner
        if not self.headers.get("anthropic-version"):  # VERSIONING: required on every request
            raise ApiError(400, "anthropic-version: header is required")
        offered = self.headers.get("x-api-key")
        bearer = self.headers.get("Authorization", "")
        if offered is None and bearer.startswith("Bearer "):
            offered = bearer[7:]  # the anthropic SDK (2.x) sends its api_key this way
        if owner.key is not None and offered != owner.key:  # ERRORS: 401 authentication_error
            raise ApiError(401, "invalid x-api-key")

    def _dispatch(self, method: str) -> None:
        owner = self.server_owner
        split = urlsplit(self.path)
        parts = [p for p in split.path.split("/") if p]
        query = parse_qs(split.query)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        self._request = Received(method=method, path=split.path, query=query,
                                 headers=dict(self.headers.items()), body=parsed)
        with owner._lock:
            owner.received.append(self._request)
        try:
            self._check_headers()
            if parts[:2] != ["v1", "messages"]:
                raise ApiError(404, f"Not found: {method} {split.path}")
            rest = parts[2:]
            if method == "POST" and not rest:
                self._messages(raw)
                return
            if rest[:1] != ["batches"]:
                raise ApiError(404, f"Not found: {method} {split.path}")
            rest = rest[1:]
            if method == "POST" and not rest:
                self._send(200, owner.create_batch(self._json(raw), len(raw)))
            elif method == "GET" and not rest:
                self._send(200, owner.list_batches(int((query.get("limit") or ["20"])[0]),
                                                   (query.get("after_id") or [None])[0]))
            elif method == "GET" and len(rest) == 1:
                self._send(200, owner.poll(rest[0]))
            elif method == "GET" and len(rest) == 2 and rest[1] == "results":
                self._send(200, owner.results(rest[0]), content_type="application/binary")
            elif method == "POST" and len(rest) == 2 and rest[1] == "cancel":
                self._send(200, owner.cancel(rest[0]))
            else:
                raise ApiError(404, f"Not found: {method} {split.path}")
        except ApiError as exc:
            self._send(exc.status, error_body(exc.status, exc.message), exc.headers)
        except Exception as exc:  # a bug here must still answer the client
            self._send(500, error_body(500, f"stand-in error: {type(exc).__name__}: {exc}"))

    def _json(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body

    def _messages(self, raw: bytes) -> None:
        owner = self.server_owner
        with owner._lock:
            owner.calls += 1
            injected = owner._fail_calls.pop(0) if owner._fail_calls else None
        if owner.delay_s:
            time.sleep(owner.delay_s)
        try:
            if injected is not None:
                status, headers = injected
                message = "Overloaded" if status == 529 else f"injected failure ({status})"
                raise ApiError(status, message, headers)
            body = self._json(raw)
            validate(body)
            reply = owner.message(body)
        except ApiError as exc:
            with owner._lock:
                owner.refused.append((exc.status, exc.message))
            raise
        with owner._lock:
            owner.accepted.append(body)
        self._send(200, reply)
