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
from dataclasses import asdict
from typing import Any
from urllib.parse import urlparse

from google import genai
from google.auth import exceptions as auth_exceptions
from google.genai import errors as genai_errors
from google.genai import types

from fairspec.providers.base import ChatRequest, GenerationSettings
from fairspec.providers.errors import FatalProviderError
from fairspec.providers.families import Family, family_for, family_named
from fairspec.providers.remote import RemoteProvider, Reply
from fairspec.review.logprobs import TOP_LOGPROBS, TokenChoices

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


def generation_config(settings: GenerationSettings, system: str | None,
                      family: Family | None = None) -> types.GenerateContentConfig:
    """The SDK config for ``settings`` in ``family``'s shape, with ``system`` as the system
    instruction. Thought tokens count against ``max_output_tokens``, so a thinking model's
    allowance (its budget, or the family's for a level or a default) comes on top of the
    visible reply's ``max_tokens``."""
    family = family or family_named("gemini-1-2.0")
    values = asdict(settings)
    sent = family.sampling_sent(values)
    return types.GenerateContentConfig(
        system_instruction=system,
        temperature=settings.temperature if "temperature" in sent else None,
        max_output_tokens=family.output_budget(values),
        top_p=settings.top_p if "top_p" in sent else None,
        presence_penalty=(settings.presence_penalty or None) if "presence_penalty" in sent else None,
        frequency_penalty=(settings.frequency_penalty or None) if "frequency_penalty" in sent else None,
        seed=settings.seed,
        stop_sequences=list(settings.stop) if settings.stop else None,
        candidate_count=1,
        response_logprobs=True if settings.score_logprobs is not None else None,
        logprobs=TOP_LOGPROBS if settings.score_logprobs is not None else None,
        thinking_config=_thinking(family, settings.thinking),
    )


def _thinking(family: Family, thinking: int | str | None) -> types.ThinkingConfig | None:
    """The thinking budget (tokens; 0 off, -1 dynamic) or level, for a family that thinks."""
    if thinking is None or not family.thinking:
        return None
    if isinstance(thinking, str):
        return types.ThinkingConfig(thinking_level=thinking.upper())
    return types.ThinkingConfig(thinking_budget=thinking)


class GeminiProvider(RemoteProvider):
    """A teacher on the Gemini API (or Vertex AI with ``vertex_project``). The limits, retry
    and back-off options are :class:`~fairspec.providers.remote.RemoteProvider`'s."""

    kind = "gemini"

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "GEMINI_API_KEY",
        vertex_project: str | None = None,
        vertex_location: str = "us-central1",
        bearer_auth: bool | None = None,
        **limits: Any,
    ) -> None:
        if vertex_project is None and api_key_env is None:
            raise ValueError("the Gemini API needs api_key_env (or vertex_project for Vertex AI)")
        super().__init__(name=name, model=model, base_url=base_url, api_key_env=api_key_env,
                         **limits)
        self.vertex_project = vertex_project
        self.vertex_location = vertex_location
        if bearer_auth is None:
            host = (urlparse(base_url).hostname or "") if base_url else "googleapis.com"
            bearer_auth = not host.endswith("googleapis.com")
        headers = {"Authorization": f"Bearer {self._key}"} if bearer_auth and self._key else None
        http_options = types.HttpOptions(
            base_url=base_url,
            headers=headers,
            timeout=int(self.timeout_s * 1000),
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
        #: the request shape of this model (``providers.families``)
        self.family = family_for(self.kind, model) or family_named("gemini-3")

    def _prepare(self, request: ChatRequest) -> tuple[list[dict[str, Any]], types.GenerateContentConfig]:
        system, contents = to_gemini(request.messages)
        return contents, generation_config(request.settings, system, self.family)

    async def _send(self, prepared: tuple[list[dict[str, Any]], types.GenerateContentConfig]) -> Reply:
        contents, config = prepared
        try:
            reply = await self._models.generate_content(
                model=self.model, contents=contents, config=config
            )
        except Exception as exc:
            raise self.failure(exc) from None
        return read_reply(reply)

    def failure(self, exc: Exception) -> Exception:
        """The failure (TransientFailure or FatalProviderError) an SDK error stands for; an
        error that is none of the SDK's or the transport's is returned as it is."""
        if isinstance(exc, genai_errors.APIError):
            response = getattr(exc, "response", None)
            return self._status_error(
                int(exc.code or 0),
                str(exc.message or exc.status or "no message"),
                getattr(response, "headers", None),
            )
        if isinstance(exc, auth_exceptions.DefaultCredentialsError):
            return FatalProviderError(
                self.name,
                "no Google Cloud credentials for Vertex AI",
                hint="run 'gcloud auth application-default login' "
                "or set GOOGLE_APPLICATION_CREDENTIALS",
            )
        if isinstance(exc, auth_exceptions.RefreshError):
            return FatalProviderError(
                self.name,
                f"Google Cloud credentials were refused: {self._scrub(str(exc))}",
                hint="renew them with 'gcloud auth application-default login'",
            )
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return self._timed_out()
        if _is_transport_error(exc):  # connection errors of aiohttp/httpx2: retry
            return self._connection_error(f"{type(exc).__name__}: {exc}")
        return exc

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    def __repr__(self) -> str:
        base = super().__repr__()[:-1]
        if self.vertex_project:
            base += f", vertex_project={self.vertex_project!r}"
        return base + ")"


def read_reply(reply: types.GenerateContentResponse) -> Reply:
    """What one GenerateContentResponse answered (online, or one of a batch's responses)."""
    text, finish = _text_and_finish(reply)
    meta = reply.usage_metadata
    output_tokens = None
    if meta is not None and meta.candidates_token_count is not None:
        output_tokens = meta.candidates_token_count + (meta.thoughts_token_count or 0)
    return Reply(
        text=text,
        finish_reason=finish,
        truncated=finish in _TRUNCATED,
        input_tokens=meta.prompt_token_count if meta is not None else None,
        output_tokens=output_tokens,
        total_tokens=meta.total_token_count if meta is not None else None,
        tokens=_tokens(reply),
        cached_input_tokens=meta.cached_content_token_count if meta is not None else None,
        reasoning_tokens=meta.thoughts_token_count if meta is not None else None,
    )


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


def _tokens(reply: types.GenerateContentResponse) -> tuple[TokenChoices, ...] | None:
    """The reply's tokens with their top candidates (``logprobs_result``), None when the
    model returned none (not every Gemini model returns log-probabilities)."""
    result = reply.candidates[0].logprobs_result if reply.candidates else None
    chosen = result.chosen_candidates if result is not None else None
    if not chosen:
        return None
    tops = result.top_candidates or []
    return tuple(TokenChoices.read(token.token, token.log_probability,
                                   ((c.token, c.log_probability)
                                    for c in (tops[i].candidates or [] if i < len(tops) else [])))
                 for i, token in enumerate(chosen))


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
