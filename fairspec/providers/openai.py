"""Teachers behind the OpenAI chat completions API (OpenAI, DeepInfra, vLLM, any compatible host).

Built on the official ``openai`` SDK with its aiohttp transport and its own retries off
(``max_retries=0``): :mod:`fairspec.providers.limits` counts and paces every attempt.

Two choices keep the client's CPU per call low (bench/teachers.py measures them):

* one HTTP client (one aiohttp connection pool) per event loop and base URL, shared by
  every teacher on that host, so connections are reused across teachers;
* the request goes through the SDK's low-level ``client.post("/chat/completions", ...)``
  with a body we build, which skips the SDK's per-call walk of the typed parameters (about
  0.7 ms a call) while keeping its auth, headers, error types and response model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx2
import openai
from openai.types.chat import ChatCompletion

from fairspec.providers.base import ChatRequest, GenerationSettings, token_count
from fairspec.providers.errors import FatalProviderError
from fairspec.providers.families import Family, family_for, family_named
from fairspec.providers.limits import TransientFailure
from fairspec.providers.remote import RemoteProvider, Reply
from fairspec.review.logprobs import TOP_LOGPROBS, TokenChoices

logger = logging.getLogger(__name__)

HttpBackend = Literal["aiohttp", "httpx"]
_NO_KEY = "not-needed"  # the SDK insists on a key; local servers without auth ignore it


@dataclass
class _Pooled:
    client: Any
    users: int = 0


# event loop -> (backend, base_url) -> shared HTTP client
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], _Pooled]] = (
    weakref.WeakKeyDictionary()
)


def _acquire_http(backend: HttpBackend, base_url: str) -> Any:
    pool = _POOLS.setdefault(asyncio.get_running_loop(), {})
    entry = pool.get((backend, base_url))
    if entry is None or entry.client.is_closed:
        factory = openai.DefaultAioHttpClient if backend == "aiohttp" else openai.DefaultAsyncHttpxClient
        entry = pool[(backend, base_url)] = _Pooled(factory())
    entry.users += 1
    return entry.client


async def _release_http(backend: HttpBackend, base_url: str, client: Any) -> None:
    pool = _POOLS.get(asyncio.get_running_loop(), {})
    entry = pool.get((backend, base_url))
    if entry is None or entry.client is not client:
        await client.aclose()
        return
    entry.users -= 1
    if entry.users <= 0:
        del pool[(backend, base_url)]
        await client.aclose()


def settings_body(settings: GenerationSettings, family: Family | None = None) -> dict[str, Any]:
    """The chat-completions fields for ``settings`` in ``family``'s shape (default: an
    OpenAI-compatible host, every sampling parameter and ``max_tokens``): only the sampling
    parameters it takes, the output budget under its field with a thinking model's
    allowance on top, its reasoning controls, then ``extra_body`` as it is."""
    family = family or family_named("compatible")
    values = asdict(settings)
    body: dict[str, Any] = {key: values[key] for key in family.sampling_sent(values)}
    body[family.budget_field] = family.output_budget(values)
    if settings.reasoning_effort is not None and "effort" in family.thinking:
        body["reasoning_effort"] = settings.reasoning_effort
    body.update(_compat_thinking(family, settings.thinking))
    if settings.seed is not None and family.seed:
        body["seed"] = settings.seed
    if settings.stop is not None:
        body["stop"] = list(settings.stop)
    if settings.extra_body:
        body.update(settings.extra_body)
    return body


def _compat_thinking(family: Family, thinking: int | str | None) -> dict[str, Any]:
    """A thinking budget or level for Claude or Gemini behind their OpenAI-compatible
    endpoints, in the field each reads (Anthropic: ``thinking``; Google: ``extra_body.google``)."""
    if thinking is None or not family.thinking or thinking == 0 and family.can_disable is False:
        return {}
    if family.vendor == "anthropic" and isinstance(thinking, int) and thinking > 0:
        return {"thinking": {"type": "enabled", "budget_tokens": thinking}}
    if family.vendor == "gemini":
        key = "thinking_level" if isinstance(thinking, str) else "thinking_budget"
        return {"extra_body": {"google": {"thinking_config": {key: thinking}}}}
    return {}


class OpenAIProvider(RemoteProvider):
    """A teacher on an OpenAI-compatible chat completions API.

    ``api_key_env`` is the NAME of the variable holding the key (read once, here); None
    only for a local server without auth. ``http="httpx"`` uses the SDK's default
    transport instead of aiohttp (for comparison). The limits, retry and back-off
    options are :class:`~fairspec.providers.remote.RemoteProvider`'s.
    """

    kind = "openai"

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        http: HttpBackend = "aiohttp",
        **limits: Any,
    ) -> None:
        if http not in ("aiohttp", "httpx"):
            raise ValueError(f"http must be 'aiohttp' or 'httpx', got {http!r}")
        super().__init__(name=name, model=model, base_url=base_url, api_key_env=api_key_env,
                         **limits)
        self.http: HttpBackend = http
        self._client: openai.AsyncOpenAI | None = None
        self._http_client: Any = None
        self._pool_key = base_url or "https://api.openai.com/v1"
        #: the request shape of this model (``providers.families``)
        self.family = family_for(self.kind, model) or family_named("compatible")
        self._options = {"timeout": self.timeout_s}

    def _sdk(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._http_client = _acquire_http(self.http, self._pool_key)
            self._client = openai.AsyncOpenAI(
                api_key=self._key or _NO_KEY,
                base_url=self.base_url,
                max_retries=0,
                timeout=self.timeout_s,
                http_client=self._http_client,
            )
        return self._client

    def _prepare(self, request: ChatRequest) -> dict[str, Any]:
        body = {"model": self.model, "messages": request.messages}
        body.update(settings_body(request.settings, self.family))
        if request.settings.score_logprobs is not None and self.family.logprobs:
            body.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        return body

    async def _send(self, prepared: dict[str, Any]) -> Reply:
        client = self._sdk()
        try:
            raw = await client.post(
                "/chat/completions", body=prepared, cast_to=httpx2.Response, options=self._options
            )
        except openai.APIError as exc:
            raise self._failure(exc) from None
        return read_reply(parse_completion(await raw.aread()))

    def _failure(self, exc: openai.APIError) -> TransientFailure | FatalProviderError:
        if isinstance(exc, openai.APIConnectionError):
            root = _root_cause(exc)
            # the aiohttp transport reports a refused connection as a connect *timeout*
            timed_out = root is exc and isinstance(exc, openai.APITimeoutError)
            if timed_out or isinstance(root, (TimeoutError, asyncio.TimeoutError)):
                return self._timed_out()
            detail = f"{type(root).__name__}: {root}" if root is not exc else exc.message
            return self._connection_error(detail)
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(
                exc.status_code, _server_message(exc), exc.response.headers, exc.code
            )
        # e.g. a response that is not valid JSON: the server is misbehaving, retry
        return TransientFailure(f"{type(exc).__name__}: {self._scrub(exc.message)}")

    async def aclose(self) -> None:
        if self._client is not None:
            self._client = None
            client, self._http_client = self._http_client, None
            await _release_http(self.http, self._pool_key, client)


def parse_completion(content: bytes) -> ChatCompletion:
    """A chat completion from a 200 reply's body, read leniently: bytes that are not UTF-8
    become U+FFFD (the answer is paid for: keep what can be read) and a body that is not a
    JSON object is a transient failure (the server misbehaved: ask again)."""
    try:
        data = json.loads(content.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise TransientFailure(f"the reply is not JSON ({exc}): {content[:120]!r}") from None
    if not isinstance(data, dict):
        raise TransientFailure(f"the reply is not a JSON object: {content[:120]!r}")
    return ChatCompletion.construct(**data)


def read_reply(reply: ChatCompletion) -> Reply:
    """What one chat completion answered (a reply of the API, or a line of a batch's output)."""
    choices = reply.choices
    if not isinstance(choices, list) or not choices:
        # a 200 with nothing in it is no answer: ask again, never store it as an empty one
        raise TransientFailure(f"the reply holds no choice (choices: {str(choices)[:40]})")
    choice = choices[0]
    text = _content(getattr(getattr(choice, "message", None), "content", None))
    finish = getattr(choice, "finish_reason", None)
    finish = finish if isinstance(finish, str) else None
    usage = reply.usage
    return Reply(
        text=text,
        finish_reason=finish,
        truncated=finish == "length",
        input_tokens=_usage(usage, "prompt_tokens"),
        output_tokens=_usage(usage, "completion_tokens"),
        total_tokens=_usage(usage, "total_tokens"),
        tokens=_tokens(choice),
        cached_input_tokens=_detail(usage, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
    )


def _content(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts (as some
    compatible servers send); None is "". Anything else is a misbehaving server's reply:
    a transient failure, asked again."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(p["text"] for p in content
                       if p.get("type") == "text" and isinstance(p.get("text"), str))
    raise TransientFailure(f"the reply's content is not text ({type(content).__name__})")


def _usage(usage: Any, name: str) -> int | None:
    """``usage.<name>`` (an object or, leniently parsed, a dict), if it is a token count
    (:func:`~fairspec.providers.base.token_count`: a negative, fractional or absurd one,
    or a string, is None, not reported)."""
    return token_count(usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None))


def _detail(usage: Any, part: str, name: str) -> int | None:
    """``usage.<part>.<name>`` (cached or reasoning tokens) where the server reports it."""
    details = getattr(usage, part, None)
    value = details.get(name) if isinstance(details, dict) else getattr(details, name, None)
    return value if isinstance(value, int) else None


def _tokens(choice: Any) -> tuple[TokenChoices, ...] | None:
    """The reply's tokens with their ``top_logprobs`` (None when the server sent none, as
    a server without log-probabilities does: ``logprobs: null``)."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    return tuple(TokenChoices.read(item.token, item.logprob,
                                   ((getattr(alt, "token", None), getattr(alt, "logprob", None))
                                    for alt in item.top_logprobs or []))
                 for item in content)


def _root_cause(exc: BaseException) -> BaseException:
    """The first exception in ``exc``'s chain that did not come from the SDK or httpx2."""
    seen = {id(exc)}
    current: BaseException | None = exc
    while current is not None:
        module = type(current).__module__
        if not module.startswith(("openai", "httpx")):
            return current
        current = current.__cause__ or current.__context__
        if current is not None and id(current) in seen:
            break
        if current is not None:
            seen.add(id(current))
    return exc


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
    if isinstance(body, str) and body:
        return body
    return exc.response.reason_phrase or "no message"
