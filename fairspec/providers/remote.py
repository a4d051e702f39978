"""The shared outline of a teacher behind a remote API: key, limits, retries, timing, errors.

A :class:`RemoteProvider` reads its key variable once, when it is built, passes every
attempt through its :class:`~fairspec.providers.limits.Limiter` and retries transient
failures with back-off (:func:`~fairspec.providers.limits.call_with_retries`), and times
the call from the first attempt to the answer. A subclass only speaks its SDK:

* ``_prepare(request)``: the SDK's form of the request, built once per call;
* ``_send(prepared)``: one attempt, read into a :class:`Reply`; SDK errors are mapped to
  ``TransientFailure`` (retried) or ``FatalProviderError`` (stops the teacher) with
  ``_status_error``, ``_timed_out`` and ``_connection_error``, which scrub the key;
* ``aclose()``.

Imports no SDK.
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fairspec.providers.base import ChatProvider, ChatRequest, ChatResult, read_api_key, result_status, scrub
from fairspec.providers.errors import FatalProviderError
from fairspec.providers.failures import status_failure
from fairspec.providers.limits import Limiter, RetryPolicy, TransientFailure, call_with_retries
from fairspec.review.logprobs import TokenChoices, read_stated


@dataclass(frozen=True)
class Reply:
    """One attempt's answer, read from the SDK's reply: what ``ChatResult`` takes, whether the
    token budget cut it short, and the tokens it used in all (for the tpm limit). ``tokens``:
    the generated tokens with their top alternatives, when log-probabilities were asked
    for and the server returned them (else None)."""

    text: str
    finish_reason: str | None
    truncated: bool
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    tokens: tuple[TokenChoices, ...] | None = None
    #: of ``input_tokens``, those read from the provider's prompt cache (billed at its
    #: cached rate); of ``output_tokens``, those spent reasoning/thinking (billed as output)
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None


class RemoteProvider(ChatProvider):
    """A teacher on a remote API. ``api_key_env`` is the NAME of the variable holding the key
    (read once, here; None: no key). ``concurrency``, ``rpm`` and ``tpm`` bound the attempts
    in flight and per minute; ``max_retries`` transient failures are retried with back-off
    ``backoff_s * 2**n`` capped at ``backoff_max_s``; each attempt may take ``timeout_s``
    from its first byte sent to its last byte read (a deadline, not a per-read timeout)."""

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None,
        concurrency: int = 16,
        rpm: int | None = None,
        tpm: int | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 8,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
    ) -> None:
        super().__init__(name=name, model=model, base_url=base_url)
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.api_key_env = api_key_env
        self._key = read_api_key(name, api_key_env)
        self.timeout_s = timeout_s
        self.limiter = Limiter(concurrency, rpm, tpm)
        self.policy = RetryPolicy(max_retries=max_retries, base_s=backoff_s, max_s=backoff_max_s)

    @abstractmethod
    def _prepare(self, request: ChatRequest) -> Any:
        """The SDK's form of ``request`` (may raise ValueError for a request it cannot send)."""

    @abstractmethod
    async def _send(self, prepared: Any) -> Reply:
        """One attempt; raises TransientFailure or FatalProviderError for a failed one."""

    async def complete(self, request: ChatRequest) -> ChatResult:
        prepared = self._prepare(request)

        async def attempt() -> tuple[Reply, int | None]:
            # timeout_s is a deadline for the whole attempt, connect to last byte: an SDK's
            # timeouts are per read, so a body trickled a few bytes at a time never trips them
            try:
                reply = await asyncio.wait_for(self._send(prepared), self.timeout_s)
            except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
                raise self._timed_out() from None
            return reply, reply.total_tokens

        started = time.perf_counter()
        reply, attempts, last_error = await call_with_retries(
            attempt,
            teacher=self.name,
            limiter=self.limiter,
            policy=self.policy,
            estimated_tokens=request.estimated_tokens(),
        )
        return chat_result(request, reply, latency_s=time.perf_counter() - started,
                           attempts=attempts, last_error=last_error)

    def _scrub(self, text: str) -> str:
        """``text`` shortened, without the key and without anything shaped like one."""
        return scrub(text, self._key)

    def _timed_out(self) -> TransientFailure:
        return TransientFailure(f"timed out after {self.timeout_s:g}s")

    def _connection_error(self, detail: str) -> TransientFailure:
        return TransientFailure(f"connection error: {self._scrub(detail)}")

    def _status_error(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> TransientFailure | FatalProviderError:
        """The failure for an HTTP error ``status`` with the server's ``message`` (scrubbed here)."""
        return status_failure(
            teacher=self.name,
            model=self.model,
            base_url=self.base_url,
            key_env=self.api_key_env,
            status=status,
            message=self._scrub(message),
            headers=headers,
            code=code,
        )


def chat_result(request: ChatRequest, reply: Reply, *, latency_s: float, attempts: int,
                last_error: str | None = None) -> ChatResult:
    """The answer to ``request`` that ``reply`` holds (an online reply or a batch's line)."""
    return ChatResult(
        text=reply.text,
        finish_reason=reply.finish_reason,
        status=result_status(reply.text, reply.truncated),
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        latency_s=latency_s,
        attempts=attempts,
        last_error=last_error,
        score_logprobs=_reading(request, reply),
        cached_input_tokens=reply.cached_input_tokens,
        reasoning_tokens=reply.reasoning_tokens,
    )


def _reading(request: ChatRequest, reply: Reply) -> dict[str, Any] | None:
    """The score distribution at the reply's stated score, when it was asked for and the
    server returned log-probabilities (None: the review falls back to its text score)."""
    score_range = request.settings.score_logprobs
    if score_range is None or not reply.tokens:
        return None
    reading = read_stated(reply.text, reply.tokens, score_range)
    return reading.to_json() if reading is not None else None
