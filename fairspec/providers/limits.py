"""Per-teacher limits: concurrency, requests and tokens per minute, and retries with back-off.

The SDKs' own retries are turned off, so every attempt passes through :func:`call_with_retries`
and is counted. Transient failures (429, 5xx, timeouts, connection errors) are retried with
exponential back-off and full jitter; a server's ``Retry-After`` / ``retry-after-ms`` wins when
it asks for longer, and pauses the whole teacher, not just the call that saw it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from fairspec.errors import TransientFailure
from fairspec.providers.errors import FatalProviderError, RetryableExhausted

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses worth another try: timeouts, conflicts, rate limits, server errors.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})



def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds a server asked to wait: ``retry-after-ms``, else ``retry-after`` (seconds or an
    HTTP date); None when absent or unreadable."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt; back-off ``base_s * 2**n`` capped at
    ``max_s``, drawn uniformly from [0, that] (full jitter); a Retry-After up to
    ``max_retry_after_s`` is honoured as a floor."""

    max_retries: int = 8
    base_s: float = 1.0
    max_s: float = 60.0
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.base_s < 0 or self.max_s < 0:
            raise ValueError(f"back-off must be >= 0, got base {self.base_s!r}, max {self.max_s!r}")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 = the first retry)."""
        ceiling = min(self.max_s, self.base_s * (2.0**retry))
        jittered = random.uniform(0.0, ceiling)
        if retry_after is None:
            return jittered
        return max(min(retry_after, self.max_retry_after_s), jittered)


class TokenBucket:
    """An async token bucket refilled at ``per_minute / 60`` a second, holding at most
    ``per_minute``; waiters are served in arrival order."""

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError(f"a per-minute limit must be > 0, got {per_minute!r}")
        self.capacity = float(per_minute)
        self._rate = self.capacity / 60.0
        self._level = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    @property
    def level(self) -> float:
        self._refill()
        return self._level

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self._rate)
        self._stamp = now

    async def take(self, amount: float) -> None:
        """Wait until ``amount`` (capped at the capacity, so a huge request still passes) is
        available, then take it."""
        amount = min(float(amount), self.capacity)
        async with self._lock:
            self._refill()
            while self._level < amount:
                await asyncio.sleep((amount - self._level) / self._rate)
                self._refill()
            self._level -= amount

    def adjust(self, extra: float) -> None:
        """Correct an estimate: take ``extra`` more (or give back when negative). The level may
        go below zero; later takers then wait for the debt to refill."""
        self._refill()
        self._level = min(self.capacity, self._level - extra)


class Limiter:
    """One teacher's gate: a concurrency slot, an rpm token and an estimated tpm share per
    attempt, and a teacher-wide pause after a Retry-After."""

    def __init__(self, concurrency: int, rpm: int | None = None, tpm: int | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every new attempt of this teacher for ``seconds`` from now."""
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def acquire(self, estimated_tokens: int) -> None:
        await self._slots.acquire()
        try:
            wait = self._resume_at - time.monotonic()
            while wait > 0:
                await asyncio.sleep(wait)
                wait = self._resume_at - time.monotonic()
            if self.requests is not None:
                await self.requests.take(1)
            if self.tokens is not None:
                await self.tokens.take(estimated_tokens)
        except BaseException:
            self._slots.release()
            raise

    def release(self, estimated_tokens: int, used_tokens: int | None) -> None:
        if self.tokens is not None and used_tokens is not None:
            self.tokens.adjust(used_tokens - min(estimated_tokens, self.tokens.capacity))
        self._slots.release()


async def call_with_retries(
    attempt: Callable[[], Awaitable[tuple[T, int | None]]],
    *,
    teacher: str,
    limiter: Limiter,
    policy: RetryPolicy,
    estimated_tokens: int,
) -> tuple[T, int, str | None]:
    """Run ``attempt`` (returning a value and the tokens it used) until it succeeds.

    Returns (value, attempts, last transient error or None). A FatalProviderError passes
    through at once with ``attempts`` set; TransientFailure is retried up to the policy's
    limit, then RetryableExhausted is raised.
    """
    last_error: str | None = None
    attempts = 0
    while True:
        attempts += 1
        await limiter.acquire(estimated_tokens)
        used: int | None = None
        try:
            value, used = await attempt()
            return value, attempts, last_error
        except TransientFailure as failure:
            last_error = str(failure)
            retry_after = failure.retry_after
        except FatalProviderError as fatal:
            fatal.attempts = attempts
            raise
        finally:
            limiter.release(estimated_tokens, used)
        if attempts > policy.max_retries:
            raise RetryableExhausted(teacher, attempts=attempts, last_error=last_error) from None
        delay = policy.delay(attempts - 1, retry_after)
        if retry_after is not None:
            limiter.pause(delay)
        logger.debug(
            "teacher %s: attempt %d failed (%s); retrying in %.2fs",
            teacher, attempts, last_error, delay,
        )
        await asyncio.sleep(delay)
