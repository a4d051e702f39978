"""Teachers behind Anthropic's Messages API (Claude), through the official ``anthropic`` SDK.

OpenAI-format messages are converted: ``system`` messages are joined into the ``system``
parameter, ``user`` and ``assistant`` messages are the conversation. The request body is
shaped by the model's family (:mod:`fairspec.providers.families`):

* ``max_tokens`` is always sent (the API requires it): the visible reply's budget with the
  thinking budget on top (``Family.output_budget``), so a thinking reply is not cut to
  nothing;
* of ``temperature`` and ``top_p`` only what the family takes (Claude Opus 4.1 and the 4.5
  models refuse both together); with extended thinking on, no ``temperature`` (the API
  allows only its default) and ``top_p`` only within 0.95-1;
* ``thinking: N`` (tokens, >= 1024) becomes ``{"type": "enabled", "budget_tokens": N}``;
* penalties and ``seed`` are no Anthropic parameters and are never sent; ``extra_body`` is
  added to the body as it is.

Prompt caching: a ``cache_control: {"type": "ephemeral"}`` breakpoint closes the system
prompt and the first user block, the prefix the calls of a stage share when a request
sends its shared head (the instructions and the question) as its own user message before
the part that differs per call; never the whole prompt (see :func:`to_anthropic`). Below
the model's minimum cacheable length (1024 tokens for Sonnet and Opus 4.x, up to 4096 for
Haiku 4.5 and Opus 4.5; https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching)
the API caches nothing and charges nothing extra. Usage is read as billed: Anthropic's
``input_tokens`` leaves out the tokens read from and written to the cache, so
``Reply.input_tokens`` is their sum (every input token of the call), of which
``cached_input_tokens`` are the cache reads; cache writes stay counted as ordinary input
(Anthropic bills them at 1.25 times the input rate).

The SDK's own retries are off (``max_retries=0``): :mod:`fairspec.providers.limits` counts
and paces every attempt. 529 ``overloaded_error``, 429 (with its ``retry-after``) and other
5xx are retried; 400, 401, 403 and 404 stop the teacher.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import fields
from typing import Any

import anthropic
from anthropic.types import Message

from fairspec.providers.base import ChatRequest, GenerationSettings
from fairspec.providers.errors import FatalProviderError
from fairspec.providers.families import Family, family_for
from fairspec.providers.limits import TransientFailure
from fairspec.providers.remote import RemoteProvider, Reply

logger = logging.getLogger(__name__)

MESSAGES_PATH = "/v1/messages"
CACHE_CONTROL = {"type": "ephemeral"}
#: stop reasons that mean the output budget (or the context window) ran out
TRUNCATED = frozenset({"max_tokens", "model_context_window_exceeded"})
_NO_KEY = "not-needed"  # the SDK insists on a credential; a keyless local server ignores it


def to_anthropic(messages: list[dict[str, str]], *, cache: bool = True
                 ) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(system blocks, messages) for OpenAI-format ``messages``. Consecutive messages of one
    role become the text blocks of one turn (as the API would combine them). With ``cache``,
    a breakpoint closes the system prompt and the first user block, where either is a prefix
    of the prompt: a breakpoint at the very end would cache the whole prompt, which no
    other call of a stage sends to the same model, paying the cache write for nothing."""
    system = [m["content"] for m in messages if m["role"] == "system" and m["content"]]
    turns = [m for m in messages if m["role"] != "system"]
    if not turns:
        raise ValueError("messages need at least one user or assistant message, got only system")
    blocks = None
    if system:  # an empty text block is an error (HTTP 400)
        blocks = [{"type": "text", "text": "\n\n".join(system)}]
        if cache:
            blocks[0]["cache_control"] = dict(CACHE_CONTROL)
    out: list[dict[str, Any]] = []
    for message in turns:
        block = {"type": "text", "text": message["content"]}
        if out and out[-1]["role"] == message["role"]:
            out[-1]["content"].append(block)
        else:
            out.append({"role": message["role"], "content": [block]})
    if cache:
        first = next((m["content"][0] for m in out if m["role"] == "user"), None)
        last = out[-1]["content"][-1]
        if first is not None and first is not last and first["text"]:
            first["cache_control"] = dict(CACHE_CONTROL)
    return blocks, out


def split_prefix(messages: list[dict[str, str]], prefix: int | None) -> list[dict[str, str]]:
    """``messages`` with the first user message cut after its first ``prefix`` characters
    (the head other calls of the stage share) into two user messages, which
    :func:`to_anthropic` sends as one turn of two blocks, a cache breakpoint closing the
    first. Unchanged without a prefix or where it would leave either part empty."""
    if not prefix:
        return messages
    at = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    if at is None or not 0 < prefix < len(messages[at]["content"]):
        return messages
    text = messages[at]["content"]
    return [*messages[:at], {"role": "user", "content": text[:prefix]},
            {"role": "user", "content": text[prefix:]}, *messages[at + 1:]]


def thinking_budget(settings: GenerationSettings, family: Family) -> int | None:
    """The extended-thinking budget in tokens the request carries (None: thinking off)."""
    thinking = settings.thinking
    if thinking is None or thinking == 0 or "budget" not in family.thinking:
        return None
    if isinstance(thinking, str) or thinking < 0:
        raise ValueError(f"{family.name} takes a thinking budget in tokens (>= 1024), "
                         f"got {thinking!r}")
    return thinking


def settings_body(settings: GenerationSettings, family: Family) -> dict[str, Any]:
    """The Messages API fields for ``settings`` on a model of ``family``: the sampling
    parameters the family takes (none but a top_p of 0.95-1 while thinking: the family
    decides), never a penalty or a seed (no Anthropic parameters)."""
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    budget = thinking_budget(settings, family)
    body: dict[str, Any] = {"max_tokens": family.output_budget(values)}
    for key in family.sampling_sent(values):
        if key in ("temperature", "top_p"):
            body[key] = values[key]
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if settings.stop is not None:
        body["stop_sequences"] = list(settings.stop)
    if settings.extra_body:
        body.update(settings.extra_body)
    return body


class AnthropicProvider(RemoteProvider):
    """A teacher on Anthropic's Messages API. ``prompt_cache`` puts the cache breakpoints
    (see the module docstring). The limits, retry and back-off options are
    :class:`~fairspec.providers.remote.RemoteProvider`'s."""

    kind = "anthropic"

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        prompt_cache: bool = True,
        **limits: Any,
    ) -> None:
        super().__init__(name=name, model=model, base_url=base_url, api_key_env=api_key_env,
                         **limits)
        family = family_for("anthropic", model)
        if family is None:  # every model name gets the vendor's current rules
            raise ValueError(f"no Anthropic model family for {model!r}")
        self.family = family
        self.prompt_cache = prompt_cache
        self._client: anthropic.AsyncAnthropic | None = None
        self._options = {"timeout": self.timeout_s}

    def _sdk(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            self._client = anthropic.AsyncAnthropic(
                api_key=self._key or _NO_KEY,
                base_url=self.base_url,
                max_retries=0,
                timeout=self.timeout_s,
            )
        return self._client

    def _prepare(self, request: ChatRequest) -> dict[str, Any]:
        system, messages = to_anthropic(split_prefix(request.messages, request.cache_prefix),
                                        cache=self.prompt_cache)
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if system is not None:
            body["system"] = system
        body.update(settings_body(request.settings, self.family))
        return body

    async def _send(self, prepared: dict[str, Any]) -> Reply:
        try:
            message = await self._sdk().post(MESSAGES_PATH, body=prepared, cast_to=Message,
                                              options=self._options)
        except anthropic.APIError as exc:
            raise self.failure(exc) from None
        return read_reply(message)

    def failure(self, exc: anthropic.APIError) -> TransientFailure | FatalProviderError:
        """The failure an SDK error stands for: connection errors and timeouts, 429, 529
        and 5xx are transient, other statuses fatal (the key scrubbed from the message)."""
        if isinstance(exc, anthropic.APITimeoutError):
            return self._timed_out()
        if isinstance(exc, anthropic.APIConnectionError):
            root = exc.__cause__ or exc.__context__
            if isinstance(root, (TimeoutError, asyncio.TimeoutError)):
                return self._timed_out()
            return self._connection_error(f"{type(root).__name__}: {root}" if root else exc.message)
        if isinstance(exc, anthropic.APIStatusError):
            return self._status_error(exc.status_code, server_message(exc), exc.response.headers,
                                      exc.type)
        # e.g. a reply that does not fit the Message schema: the server misbehaved, ask again
        return TransientFailure(f"{type(exc).__name__}: {self._scrub(exc.message)}")

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def read_reply(message: Message | Any) -> Reply:
    """What one Message answered (online, or a succeeded line of a batch). Thinking blocks
    are not part of the text; a reply cut short while thinking has no text and its
    ``max_tokens`` stop reason (truncated)."""
    text = "".join(block.text for block in message.content or []
                   if getattr(block, "type", None) == "text")
    stop = message.stop_reason
    usage = message.usage
    if usage is None:
        return Reply(text=text, finish_reason=stop, truncated=stop in TRUNCATED,
                     input_tokens=None, output_tokens=None, total_tokens=None)
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    input_tokens = (usage.input_tokens or 0) + cache_read + cache_write
    details = getattr(usage, "output_tokens_details", None)
    return Reply(
        text=text,
        finish_reason=stop,
        truncated=stop in TRUNCATED,
        input_tokens=input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=input_tokens + (usage.output_tokens or 0),
        cached_input_tokens=cache_read,
        reasoning_tokens=getattr(details, "thinking_tokens", None),
    )


def server_message(exc: anthropic.APIStatusError) -> str:
    """The server's own words: ``error.message`` of Anthropic's error body, else the body."""
    if exc.api_message:
        return str(exc.api_message)
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
    if isinstance(body, str) and body:
        return body
    return exc.response.reason_phrase or "no message"
