"""OpenAIProvider over real HTTP against llm-katan (echo backend, fault injection)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from fairspec.providers import ChatRequest, FatalProviderError, RetryableExhausted
from fairspec.providers.openai import _POOLS, OpenAIProvider

KEY_ENV = "FAIRSPEC_TEST_OPENAI_KEY"
# not shaped like any real key, so only the exact-key scrubbing can hide it
KEY = "fairspec-marker-7f3a9c21e5"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def _provider(url: str, **kwargs: object) -> OpenAIProvider:
    options: dict = {"api_key_env": KEY_ENV, "backoff_s": 0.01, "backoff_max_s": 0.05}
    options.update(kwargs)
    return OpenAIProvider(name="gpt", model="gpt-3.5-turbo", base_url=url, **options)


def _ask(text: str, **settings: object) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], settings)


def test_openai_returns_the_echo_of_the_prompt_and_its_settings(katan) -> None:
    async def main():
        async with _provider(katan.openai_url) as provider:
            request = ChatRequest(
                [
                    {"role": "system", "content": "You are a teacher."},
                    {"role": "user", "content": "why is the sky blue"},
                ],
                {"max_tokens": 7, "temperature": 0.3},
            )
            return await provider.complete(request)

    result = asyncio.run(main())
    assert "User: why is the sky blue" in result.text
    assert "messages=2 max_tokens=7 temperature=0.3" in result.text
    assert result.status == "ok"
    assert result.finish_reason == "stop"
    assert result.attempts == 1 and result.last_error is None
    assert result.input_tokens == 4 + 5  # the echo backend counts the words of every message
    assert result.output_tokens == len(result.text.split())
    assert result.latency_s > 0


def test_openai_retries_injected_500s_until_every_call_succeeds(start_katan) -> None:
    server = start_katan("--error-rate", "0.2")

    async def main():
        async with _provider(server.openai_url, concurrency=8, max_retries=12) as provider:
            return await asyncio.gather(
                *(provider.complete(_ask(f"question {i}")) for i in range(50))
            )

    results = asyncio.run(main())
    assert [r.status for r in results] == ["ok"] * 50
    assert all(f"User: question {i}" in r.text for i, r in enumerate(results))
    retried = [r for r in results if r.attempts > 1]
    assert retried, "a 20% error rate over 50 calls should force some retries"
    assert all("500" in (r.last_error or "") for r in retried)
    assert all(r.last_error is None for r in results if r.attempts == 1)


def test_openai_gives_up_on_persistent_429_after_max_retries(start_katan) -> None:
    server = start_katan("--rate-limit-after", "2")

    async def main():
        async with _provider(server.openai_url, max_retries=2) as provider:
            first = [await provider.complete(_ask("a")), await provider.complete(_ask("b"))]
            with pytest.raises(RetryableExhausted) as caught:
                await provider.complete(_ask("c"))
            return first, caught.value

    first, error = asyncio.run(main())
    assert [r.status for r in first] == ["ok", "ok"]
    assert error.attempts == 3
    assert "429" in error.last_error
    assert "gpt" in str(error)


def test_openai_concurrency_above_max_inflight_gets_503s_that_are_retried(start_katan) -> None:
    server = start_katan("--max-inflight", "4", "--latency-ms", "100")

    async def run(concurrency: int):
        async with _provider(server.openai_url, concurrency=concurrency, max_retries=30) as p:
            return await asyncio.gather(*(p.complete(_ask(f"q{i}")) for i in range(16)))

    over = asyncio.run(run(8))
    assert [r.status for r in over] == ["ok"] * 16
    assert any(r.attempts > 1 and "503" in (r.last_error or "") for r in over)

    within = asyncio.run(run(4))  # our own semaphore keeps us under the server's limit
    assert [r.attempts for r in within] == [1] * 16


def test_openai_timeouts_are_retried_then_exhausted(start_katan) -> None:
    server = start_katan("--latency-ms", "1500")

    async def main():
        async with _provider(server.openai_url, timeout_s=0.3, max_retries=1) as provider:
            with pytest.raises(RetryableExhausted) as caught:
                await provider.complete(_ask("slow"))
            return caught.value

    started = time.monotonic()
    error = asyncio.run(main())
    assert error.attempts == 2
    assert "timed out" in error.last_error
    assert time.monotonic() - started < 2.5  # two 1.5 s waits would take 3 s


def test_openai_wrong_key_is_fatal_at_once_and_never_shows_the_key(
    start_katan, caplog: pytest.LogCaptureFixture
) -> None:
    # with --validate-keys llm-katan answers 401 and quotes the key it got in its message
    server = start_katan("--validate-keys", "--api-keys", "openai=the-right-key")
    caplog.set_level(logging.DEBUG)

    async def main():
        provider = _provider(server.openai_url, max_retries=5)
        try:
            with pytest.raises(FatalProviderError) as caught:
                await provider.complete(_ask("hello"))
            return caught.value, repr(provider)
        finally:
            await provider.aclose()

    error, provider_repr = asyncio.run(main())
    assert error.status == 401 and error.attempts == 1  # no retry, though 5 were allowed
    assert KEY_ENV in str(error) and "gpt" in str(error)
    assert "got '***'" in str(error)  # the server's quote of the key, scrubbed
    for text in (str(error), repr(error), repr(error.args), provider_repr, caplog.text):
        assert KEY not in text
    assert error.__cause__ is None and error.__suppress_context__


def test_openai_unknown_endpoint_404_is_fatal_and_points_at_model_and_base_url(katan) -> None:
    async def main():
        async with _provider(f"{katan.root}/no/such/v1", max_retries=5) as provider:
            with pytest.raises(FatalProviderError) as caught:
                await provider.complete(_ask("hello"))
            return caught.value

    error = asyncio.run(main())
    assert error.status == 404 and error.attempts == 1
    assert "gpt-3.5-turbo" in str(error)
    assert "check the model name and base_url" in str(error)


def test_openai_missing_key_variable_is_fatal_and_names_it(monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(FatalProviderError) as caught:
        OpenAIProvider(name="gpt", model="m", api_key_env=KEY_ENV)
    assert KEY_ENV in str(caught.value)
    assert "gpt" in str(caught.value)


def test_openai_teachers_on_one_host_share_one_http_client(katan) -> None:
    async def main():
        first = _provider(katan.openai_url)
        second = OpenAIProvider(
            name="mixtral", model="mixtral", base_url=katan.openai_url, api_key_env=KEY_ENV
        )
        await first.complete(_ask("one"))
        await second.complete(_ask("two"))
        shared = first._http_client
        assert shared is second._http_client
        await first.aclose()
        assert not shared.is_closed  # still used by the second teacher
        after = await second.complete(_ask("three"))
        await second.aclose()
        return shared, after, dict(_POOLS.get(asyncio.get_running_loop(), {}))

    shared, after, pool = asyncio.run(main())
    assert "User: three" in after.text
    assert shared.is_closed
    assert pool == {}


def test_openai_rejects_an_unknown_http_backend() -> None:
    with pytest.raises(ValueError, match="'curl'"):
        OpenAIProvider(name="gpt", model="m", api_key_env=None, http="curl")  # type: ignore[arg-type]


def test_openai_tpm_estimate_is_corrected_by_the_reported_usage(katan) -> None:
    async def main():
        async with _provider(katan.openai_url, rpm=60, tpm=6000) as provider:
            request = _ask("count these words please")
            result = await provider.complete(request)
            return request.estimated_tokens(), result, provider.limiter

    estimate, result, limiter = asyncio.run(main())
    used = result.input_tokens + result.output_tokens
    assert estimate > used + 400  # the estimate reserved the whole reply budget
    # what is left reflects the tokens really used, not the estimate (plus a little refill)
    assert 6000 - used <= limiter.tokens.level <= 6000 - used + 60
    assert limiter.requests.level == pytest.approx(59, abs=0.5)


def test_openai_refused_connections_are_retried_then_exhausted() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"

    async def main():
        async with _provider(closed, max_retries=2) as provider:
            with pytest.raises(RetryableExhausted) as caught:
                await provider.complete(_ask("hello"))
            return caught.value

    error = asyncio.run(main())
    assert error.attempts == 3 and "connection error" in error.last_error
