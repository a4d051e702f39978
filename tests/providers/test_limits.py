"""Concurrency, rate buckets, Retry-After parsing and the retry loop."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from fairspec.providers.errors import FatalProviderError, RetryableExhausted
from fairspec.providers.limits import (
    Limiter,
    RetryPolicy,
    TokenBucket,
    TransientFailure,
    call_with_retries,
    retry_after_seconds,
)


def test_retry_after_reads_milliseconds_before_seconds() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == pytest.approx(0.25)
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_retry_after_reads_an_http_date() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=now) == pytest.approx(30, abs=1)


def test_full_jitter_stays_under_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_retries=5, base_s=0.5, max_s=3.0)
    delays = [policy.delay(retry) for retry in range(6) for _ in range(200)]
    assert all(0.0 <= d <= 3.0 for d in delays)
    assert max(policy.delay(0) for _ in range(200)) <= 0.5
    assert len({round(d, 6) for d in delays}) > 100  # jittered, not fixed


def test_retry_after_is_a_floor_capped_by_the_policy() -> None:
    policy = RetryPolicy(base_s=0.01, max_s=0.01, max_retry_after_s=10.0)
    assert policy.delay(0, retry_after=2.0) >= 2.0
    assert policy.delay(0, retry_after=999.0) == 10.0


def test_retry_policy_rejects_negative_retries() -> None:
    with pytest.raises(ValueError, match="-1"):
        RetryPolicy(max_retries=-1)


def test_token_bucket_waits_for_refill_once_empty() -> None:
    async def main() -> tuple[float, float]:
        bucket = TokenBucket(600)  # 10 a second
        started = time.monotonic()
        await bucket.take(600)
        burst = time.monotonic() - started
        await bucket.take(2)
        return burst, time.monotonic() - started

    burst, total = asyncio.run(main())
    assert burst < 0.05
    assert 0.15 <= total < 1.5


def test_token_bucket_adjust_charges_the_difference() -> None:
    bucket = TokenBucket(1000)
    bucket.adjust(300)
    assert bucket.level == pytest.approx(700, abs=1)
    bucket.adjust(-200)
    assert bucket.level == pytest.approx(900, abs=1)


def test_limiter_never_exceeds_its_concurrency() -> None:
    async def main() -> int:
        limiter = Limiter(concurrency=3)
        busy = peak = 0

        async def job() -> None:
            nonlocal busy, peak
            await limiter.acquire(10)
            busy += 1
            peak = max(peak, busy)
            await asyncio.sleep(0.01)
            busy -= 1
            limiter.release(10, 10)

        await asyncio.gather(*(job() for _ in range(20)))
        return peak

    assert asyncio.run(main()) == 3


def _fast(max_retries: int) -> RetryPolicy:
    return RetryPolicy(max_retries=max_retries, base_s=0.0, max_s=0.0)


def test_call_with_retries_counts_attempts_and_keeps_the_last_error() -> None:
    failures = iter([TransientFailure("HTTP 500: boom"), TransientFailure("HTTP 502: bad")])

    async def attempt() -> tuple[str, int]:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "answer", 5

    value, attempts, last = asyncio.run(
        call_with_retries(attempt, teacher="t", limiter=Limiter(1), policy=_fast(3),
                          estimated_tokens=5)
    )
    assert (value, attempts, last) == ("answer", 3, "HTTP 502: bad")


def test_call_with_retries_gives_up_after_max_retries() -> None:
    calls = 0

    async def attempt() -> tuple[str, int]:
        nonlocal calls
        calls += 1
        raise TransientFailure(f"HTTP 503: try {calls}")

    with pytest.raises(RetryableExhausted) as caught:
        asyncio.run(call_with_retries(attempt, teacher="t", limiter=Limiter(1), policy=_fast(2),
                                      estimated_tokens=1))
    assert calls == 3 and caught.value.attempts == 3
    assert caught.value.last_error == "HTTP 503: try 3"


def test_call_with_retries_passes_a_fatal_error_through_at_once() -> None:
    calls = 0

    async def attempt() -> tuple[str, int]:
        nonlocal calls
        calls += 1
        raise FatalProviderError("t", "HTTP 401", status=401)

    with pytest.raises(FatalProviderError) as caught:
        asyncio.run(call_with_retries(attempt, teacher="t", limiter=Limiter(1), policy=_fast(5),
                                      estimated_tokens=1))
    assert calls == 1 and caught.value.attempts == 1


def test_retry_after_is_honoured_and_pauses_the_whole_teacher() -> None:
    async def main() -> tuple[float, float]:
        limiter = Limiter(concurrency=4)
        first_call = True
        started = time.monotonic()

        async def limited() -> tuple[str, int]:
            nonlocal first_call
            if first_call:
                first_call = False
                raise TransientFailure("HTTP 429: slow down", status=429, retry_after=0.4)
            return "ok", 1

        async def other() -> tuple[str, int]:
            return "other", 1

        first = asyncio.create_task(
            call_with_retries(limited, teacher="t", limiter=limiter, policy=_fast(1),
                              estimated_tokens=1)
        )
        await asyncio.sleep(0.05)  # the 429 has arrived: the teacher is paused
        await call_with_retries(other, teacher="t", limiter=limiter, policy=_fast(0),
                                estimated_tokens=1)
        other_done = time.monotonic() - started
        await first
        return other_done, time.monotonic() - started

    other_done, first_done = asyncio.run(main())
    assert other_done >= 0.35  # a different call waited for the pause too
    assert first_done >= 0.4
