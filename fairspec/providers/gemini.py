"""Teachers behind Google's Gemini API or Vertex AI, through the ``google-genai`` SDK.

OpenAI-format messages are converted: ``system`` messages become the system instruction,
``user`` and ``assistant`` become ``user`` and ``model`` contents. The SDK's own retries are
off (one attempt); :mod:`fairspec.providers.limits` counts and paces every attempt.

Modes:

* Gemini API (default): ``api_key_env`` names the variable holding the key (GEMINI_API_KEY).
* Vertex AI: ``vertex_project`` (and ``vertex_location``) set; the SDK authenticates with
  Application Default Credentials (``gcloud auth application-default login`` or
  GOOGLE_APPLICATION_CREDENTIALS), and ``api_key_env`` may be None. Not exercised by the
  tests here (no Google account); the SDK call path is the same.
* ``base_url`` points the SDK at another host (a gateway, or llm-katan in tests). Such hosts
  usually want the key as ``Authorization: Bearer``; ``bearer_auth`` (default: on when
  base_url is not a googleapis.com host) sends it that way too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlparse

from google import genai
from google.auth import exceptions as auth_exceptions
from google.genai import errors as genai_errors
from google.genai import types

from fairspec.providers.base import (
    ChatProvider,
    ChatRequest,
    ChatResult,
    GenerationSettings,
    read_api_key,
    result_status,
    scrub,
)
from fairspec.providers.errors import FatalProviderError
from fairspec.providers.failures import status_failure
from fairspec.providers.limits import Limiter, RetryPolicy, TransientFailure, call_with_retries

logger = logging.getLogger(__name__)

_TRUNCATED = frozenset({"MAX_TOKENS"})


def to_gemini(messages: list[dict[str, str]]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system instruction, contents) for OpenAI-format ``messages``."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    contents = [
        {"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
        for m in messages
        if m["role"] != "system"
    ]
    if not contents:
        raise ValueError("messages need at least one user or assistant message, got only system")
    return ("\n\n".join(system) if system else None), contents


def generation_config(settings: GenerationSettings, system: str | None) -> types.GenerateContentConfig:
    """The SDK config for ``settings`` with ``system`` as the system instruction."""
    return types.GenerateContentConfig(
        system_instruction=system,
        temperature=settings.temperature,
        max_output_tokens=settings.max_tokens,
        top_p=settings.top_p,
        presence_penalty=settings.presence_penalty or None,
        frequency_penalty=settings.frequency_penalty or None,
        seed=settings.seed,
        stop_sequences=list(settings.stop) if settings.stop else None,
        candidate_count=1,
    )


class GeminiProvider(ChatProvider):
    """A teacher on the Gemini API (or Vertex AI with ``vertex_project``)."""

    kind = "gemini"

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "GEMINI_API_KEY",
        concurrency: int = 16,
        rpm: int | None = None,
        tpm: int | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 8,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
        vertex_project: str | None = None,
        vertex_location: str = "us-central1",
        bearer_auth: bool | None = None,
    ) -> None:
        super().__init__(name=name, model=model, base_url=base_url)
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if vertex_project is None and api_key_env is None:
            raise ValueError("the Gemini API needs api_key_env (or vertex_project for Vertex AI)")
        self.api_key_env = api_key_env
        self.vertex_project = vertex_project
        self.vertex_location = vertex_location
        self._key = read_api_key(name, api_key_env)
        self.timeout_s = timeout_s
        self.limiter = Limiter(concurrency, rpm, tpm)
        self.policy = RetryPolicy(max_retries=max_retries, base_s=backoff_s, max_s=backoff_max_s)
        if bearer_auth is None:
            host = (urlparse(base_url).hostname or "") if base_url else "googleapis.com"
            bearer_auth = not host.endswith("googleapis.com")
        headers = {"Authorization": f"Bearer {self._key}"} if bearer_auth and self._key else None
        http_options = types.HttpOptions(
            base_url=base_url,
            headers=headers,
            timeout=int(timeout_s * 1000),
            # one attempt: the SDK neither retries statuses nor sleeps on connection errors
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if vertex_project is not None:
            self._client = genai.Client(
                vertexai=True,
                project=vertex_project,
                location=vertex_location,
                http_options=http_options,
            )
        else:
            self._client = genai.Client(vertexai=False, api_key=self._key, http_options=http_options)
        self._models = self._client.aio.models

    async def complete(self, request: ChatRequest) -> ChatResult:
        system, contents = to_gemini(request.messages)
        config = generation_config(request.settings, system)
        estimate = request.estimated_tokens()

        async def attempt() -> tuple[types.GenerateContentResponse, int | None]:
            try:
                reply = await self._models.generate_content(
                    model=self.model, contents=contents, config=config
                )
            except genai_errors.APIError as exc:
                raise self._status_failure(exc) from None
            except auth_exceptions.DefaultCredentialsError:
                raise FatalProviderError(
                    self.name,
                    "no Google Cloud credentials for Vertex AI",
                    hint="run 'gcloud auth application-default login' "
                    "or set GOOGLE_APPLICATION_CREDENTIALS",
                ) from None
            except auth_exceptions.RefreshError as exc:
                raise FatalProviderError(
                    self.name,
                    f"Google Cloud credentials were refused: {scrub(str(exc), self._key)}",
                    hint="renew them with 'gcloud auth application-default login'",
                ) from None
            except (asyncio.TimeoutError, TimeoutError):
                raise TransientFailure(f"timed out after {self.timeout_s:g}s") from None
            except Exception as exc:  # connection errors of aiohttp/httpx2: retry
                if not _is_transport_error(exc):
                    raise
                detail = scrub(f"{type(exc).__name__}: {exc}", self._key)
                raise TransientFailure(f"connection error: {detail}") from None
            meta = reply.usage_metadata
            return reply, (meta.total_token_count if meta is not None else None)

        started = time.perf_counter()
        reply, attempts, last_error = await call_with_retries(
            attempt,
            teacher=self.name,
            limiter=self.limiter,
            policy=self.policy,
            estimated_tokens=estimate,
        )
        latency = time.perf_counter() - started
        text, finish = _text_and_finish(reply)
        meta = reply.usage_metadata
        output_tokens = None
        if meta is not None and meta.candidates_token_count is not None:
            output_tokens = meta.candidates_token_count + (meta.thoughts_token_count or 0)
        return ChatResult(
            text=text,
            finish_reason=finish,
            status=result_status(text, finish in _TRUNCATED),
            input_tokens=meta.prompt_token_count if meta is not None else None,
            output_tokens=output_tokens,
            latency_s=latency,
            attempts=attempts,
            last_error=last_error,
        )

    def _status_failure(self, exc: genai_errors.APIError) -> TransientFailure | FatalProviderError:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        return status_failure(
            teacher=self.name,
            model=self.model,
            base_url=self.base_url,
            key_env=self.api_key_env,
            status=int(exc.code or 0),
            message=scrub(str(exc.message or exc.status or "no message"), self._key),
            headers=headers,
        )

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    def __repr__(self) -> str:
        base = super().__repr__()[:-1]
        if self.vertex_project:
            base += f", vertex_project={self.vertex_project!r}"
        return base + ")"


def _text_and_finish(reply: types.GenerateContentResponse) -> tuple[str, str | None]:
    if not reply.candidates:
        feedback = reply.prompt_feedback
        reason = feedback.block_reason if feedback is not None else None
        return "", (f"BLOCKED_{_name(reason)}" if reason is not None else None)
    candidate = reply.candidates[0]
    parts = candidate.content.parts if candidate.content is not None else None
    text = "".join(p.text for p in parts or [] if p.text and not p.thought)
    reason = candidate.finish_reason
    return text, (_name(reason) if reason is not None else None)


def _name(value: Any) -> str:
    return str(getattr(value, "value", value))


def _is_transport_error(exc: BaseException) -> bool:
    try:
        import aiohttp

        if isinstance(exc, aiohttp.ClientError):
            return True
    except ImportError:  # pragma: no cover - aiohttp is a dependency of the openai extra
        pass
    import httpx2

    return isinstance(exc, (httpx2.TransportError, ConnectionError, auth_exceptions.TransportError))
