"""GeminiProvider over real HTTP against llm-katan's Gemini API, plus message conversion."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from google.genai import types

from fairspec.providers import ChatRequest, FatalProviderError, RetryableExhausted
from fairspec.providers.gemini import GeminiProvider, _text_and_finish, to_gemini

# google-genai defines its own aiohttp session subclass, which aiohttp frowns upon
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

KEY_ENV = "FAIRSPEC_TEST_GEMINI_KEY"
KEY = "fairspec-marker-gem-4b81d0"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def _provider(url: str, **kwargs: object) -> GeminiProvider:
    options: dict = {"api_key_env": KEY_ENV, "backoff_s": 0.01, "backoff_max_s": 0.05}
    options.update(kwargs)
    return GeminiProvider(name="gemini", model="gemini-1.0-pro", base_url=url, **options)


def _ask(text: str, **settings: object) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], settings)


def test_gemini_returns_the_echo_with_system_instruction_and_settings(katan) -> None:
    async def main():
        async with _provider(katan.gemini_url) as provider:
            request = ChatRequest(
                [
                    {"role": "system", "content": "You are a teacher."},
                    {"role": "user", "content": "first question"},
                    {"role": "assistant", "content": "first answer"},
                    {"role": "user", "content": "why is the sky blue"},
                ],
                {"max_tokens": 9, "temperature": 0.5},
            )
            return await provider.complete(request)

    result = asyncio.run(main())
    assert "User: why is the sky blue" in result.text
    # 4 messages arrived: the system instruction plus three contents
    assert "messages=4 max_tokens=9 temperature=0.5" in result.text
    assert result.status == "ok" and result.finish_reason == "STOP"
    assert result.attempts == 1
    assert result.input_tokens == 4 + 2 + 2 + 5
    assert result.output_tokens == len(result.text.split())


def test_gemini_retries_injected_500s_until_every_call_succeeds(start_katan) -> None:
    server = start_katan("--error-rate", "0.2")

    async def main():
        async with _provider(server.gemini_url, concurrency=8, max_retries=12) as provider:
            return await asyncio.gather(
                *(provider.complete(_ask(f"question {i}")) for i in range(50))
            )

    results = asyncio.run(main())
    assert [r.status for r in results] == ["ok"] * 50
    assert all(f"User: question {i}" in r.text for i, r in enumerate(results))
    retried = [r for r in results if r.attempts > 1]
    assert retried
    assert all("500" in (r.last_error or "") for r in retried)


def test_gemini_gives_up_on_persistent_429(start_katan) -> None:
    server = start_katan("--rate-limit-after", "1")

    async def main():
        async with _provider(server.gemini_url, max_retries=1) as provider:
            ok = await provider.complete(_ask("a"))
            with pytest.raises(RetryableExhausted) as caught:
                await provider.complete(_ask("b"))
            return ok, caught.value

    ok, error = asyncio.run(main())
    assert ok.status == "ok"
    assert error.attempts == 2 and "429" in error.last_error


def test_gemini_wrong_key_is_fatal_at_once_and_never_shows_the_key(
    start_katan, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_katan("--validate-keys", "--api-keys", "vertexai=the-right-key")
    caplog.set_level(logging.DEBUG)

    async def main():
        provider = _provider(server.gemini_url, max_retries=5)
        try:
            with pytest.raises(FatalProviderError) as caught:
                await provider.complete(_ask("hello"))
            return caught.value, repr(provider)
        finally:
            await provider.aclose()

    error, provider_repr = asyncio.run(main())
    assert error.status == 401 and error.attempts == 1  # no retry, though 5 were allowed
    assert KEY_ENV in str(error)
    assert "got '***'" in str(error)
    for text in (str(error), repr(error), provider_repr, caplog.text):
        assert KEY not in text


def test_gemini_unknown_endpoint_404_is_fatal(katan) -> None:
    async def main():
        async with _provider(f"{katan.root}/no/such/", max_retries=5) as provider:
            with pytest.raises(FatalProviderError) as caught:
                await provider.complete(_ask("hello"))
            return caught.value

    error = asyncio.run(main())
    assert error.status == 404 and error.attempts == 1
    assert "gemini-1.0-pro" in str(error)


def test_gemini_needs_a_key_variable_or_a_vertex_project() -> None:
    with pytest.raises(ValueError, match="api_key_env"):
        GeminiProvider(name="gemini", model="m", api_key_env=None)


def test_to_gemini_moves_system_to_instruction_and_renames_assistant() -> None:
    system, contents = to_gemini(
        [
            {"role": "system", "content": "rules"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
            {"role": "system", "content": "more rules"},
        ]
    )
    assert system == "rules\n\nmore rules"
    assert [(c["role"], c["parts"][0]["text"]) for c in contents] == [("user", "q"), ("model", "a")]


def test_to_gemini_rejects_only_system_messages() -> None:
    with pytest.raises(ValueError, match="only system"):
        to_gemini([{"role": "system", "content": "rules"}])


def test_gemini_max_tokens_finish_is_read_as_truncated() -> None:
    # the echo backend never stops for the budget, so the SDK's own response type stands in
    reply = types.GenerateContentResponse(
        candidates=[
            types.Candidate(
                content=types.Content(role="model", parts=[types.Part(text="half an ans")]),
                finish_reason=types.FinishReason.MAX_TOKENS,
            )
        ]
    )
    assert _text_and_finish(reply) == ("half an ans", "MAX_TOKENS")


def test_gemini_blocked_prompt_gives_empty_text_and_the_block_reason() -> None:
    reply = types.GenerateContentResponse(
        prompt_feedback=types.GenerateContentResponsePromptFeedback(
            block_reason=types.BlockedReason.SAFETY
        )
    )
    assert _text_and_finish(reply) == ("", "BLOCKED_SAFETY")


def test_vertex_without_credentials_is_fatal_with_a_login_hint(monkeypatch, tmp_path) -> None:
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login here
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # and no metadata server probe

    async def main():
        provider = GeminiProvider(
            name="gemini", model="gemini-1.0-pro", api_key_env=None, vertex_project="my-proj"
        )
        try:
            with pytest.raises(FatalProviderError) as caught:
                await provider.complete(_ask("hello"))
            return caught.value, repr(provider)
        finally:
            await provider.aclose()

    error, provider_repr = asyncio.run(main())
    assert error.attempts == 1
    assert "application-default login" in str(error)
    assert "vertex_project='my-proj'" in provider_repr


def test_gemini_timeouts_and_refused_connections_are_retried(start_katan) -> None:
    slow = start_katan("--latency-ms", "1500")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"

    async def fail(url: str) -> RetryableExhausted:
        async with _provider(url, timeout_s=0.3, max_retries=1) as provider:
            with pytest.raises(RetryableExhausted) as caught:
                await provider.complete(_ask("hello"))
            return caught.value

    timed_out = asyncio.run(fail(slow.gemini_url))
    refused = asyncio.run(fail(closed))
    assert timed_out.attempts == 2 and "timed out" in timed_out.last_error
    assert refused.attempts == 2 and "connection error" in refused.last_error
