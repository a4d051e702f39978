"""One async chat interface for every teacher LLM, in the OpenAI message format.

A provider turns a :class:`ChatRequest` (messages plus generation settings) into a
:class:`ChatResult` (text, why it stopped, usage, latency, attempts). Providers are built
from plain arguments (name, model, base_url, the NAME of the key variable, limits) and
know nothing of specs or stages.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, Literal

from fairspec.providers.errors import FatalProviderError
from fairspec.review.logprobs import check_single_digits
from fairspec.secrets import redact

Status = Literal["ok", "empty", "truncated"]
MESSAGE_ROLES = frozenset({"system", "user", "assistant"})
_MAX_ERROR_TEXT = 300
#: Tokens of chat format a message may add to its text, and a request to its messages
#: (role markers, delimiters, the reply's priming, a template's default system lines):
#: the margin of :meth:`ChatRequest.max_input_tokens`.
TOKENS_PER_MESSAGE = 8
TOKENS_PER_REQUEST = 64


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings sent with every call (paper Table 7 defaults)."""

    temperature: float = 0.8
    max_tokens: int = 512
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    #: (low, high): also return the reviewer's distribution over these integer scores
    #: where its reply states its score (``review.scoring: logprobs``)
    score_logprobs: tuple[int, int] | None = None
    #: reasoning models (OpenAI o-series, GPT-5): minimal | low | medium | high ...
    reasoning_effort: str | None = None
    #: thinking models (Gemini, Claude): a budget in tokens (0 off, -1 Gemini's dynamic) or
    #: a level; for an OpenAI reasoning model, the reasoning tokens allowed on top of
    #: ``max_tokens``. What each family takes: :mod:`fairspec.providers.families`.
    thinking: int | str | None = None
    #: fields added as they are to an OpenAI-compatible request body
    extra_body: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {self.max_tokens!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not -2.0 <= value <= 2.0:
                raise ValueError(f"{name} must be in [-2, 2], got {value!r}")
        if self.stop is not None:
            stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
            if not all(isinstance(s, str) and s for s in stop):
                raise ValueError(f"stop must be non-empty strings, got {self.stop!r}")
            object.__setattr__(self, "stop", stop)
        if self.score_logprobs is not None:
            object.__setattr__(self, "score_logprobs", check_single_digits(self.score_logprobs))
        if isinstance(self.thinking, bool) or not isinstance(self.thinking, (int, str, type(None))):
            raise ValueError(f"thinking must be a number of tokens or a level, got {self.thinking!r}")
        if self.extra_body is not None and not isinstance(self.extra_body, Mapping):
            raise ValueError(f"extra_body must be a mapping, got {self.extra_body!r}")

    @classmethod
    def coerce(cls, value: GenerationSettings | Mapping[str, Any] | Any) -> GenerationSettings:
        """Settings from this class, a mapping, or any object with these attributes (a
        pydantic model, another dataclass); missing fields take the defaults, None means unset."""
        if isinstance(value, cls):
            return value
        names = [f.name for f in fields(cls)]
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ValueError(f"unknown generation settings {unknown}; known: {names}")
            found = {k: value[k] for k in names if k in value}
        else:
            found = {k: getattr(value, k) for k in names if hasattr(value, k)}
        return cls(**{k: v for k, v in found.items() if v is not None})


@dataclass(frozen=True)
class ChatRequest:
    """Messages in the OpenAI format (roles system/user/assistant, text content) and settings.

    ``settings`` may also be given as a mapping or a spec section; it is stored converted by
    :meth:`GenerationSettings.coerce`.
    """

    messages: Sequence[Mapping[str, str]]
    settings: GenerationSettings = GenerationSettings()
    #: characters at the start of the first user message that other calls of the stage
    #: send too (a review's instructions and question): a provider with explicit prompt
    #: caching (Anthropic) may mark them as a cached prefix. How the call is sent, never
    #: what it asks: no part of its key.
    cache_prefix: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.messages, (str, bytes)) or not self.messages:
            raise ValueError(f"messages must be a non-empty list, got {self.messages!r}")
        for i, message in enumerate(self.messages):
            role = message.get("role") if isinstance(message, Mapping) else None
            if role not in MESSAGE_ROLES:
                raise ValueError(f"messages[{i}] role must be one of {sorted(MESSAGE_ROLES)}, got {role!r}")
            if not isinstance(message.get("content"), str):
                raise ValueError(
                    f"messages[{i}] content must be a string, got {message.get('content')!r}"
                )
        object.__setattr__(self, "messages", [dict(m) for m in self.messages])
        object.__setattr__(self, "settings", GenerationSettings.coerce(self.settings))

    def estimated_tokens(self) -> int:
        """Rough token count of prompt plus the reply budget (about 4 characters a token)."""
        chars = sum(len(m["content"]) for m in self.messages)
        return chars // 4 + 4 * len(self.messages) + self.settings.max_tokens

    def max_input_tokens(self) -> int:
        """A count of the prompt's tokens that no provider's count can pass: the UTF-8 bytes
        of every message, plus ``TOKENS_PER_MESSAGE`` a message and ``TOKENS_PER_REQUEST``
        once (what the budget reserves; the rate limiter keeps :meth:`estimated_tokens`).

        Why it holds. The teacher APIs tokenize text with byte-level BPE (OpenAI's tiktoken
        encodings, Llama 3, Qwen, Mistral's tekken) or SentencePiece with byte fallback
        (Gemini and Gemma, Llama 2, Mistral's older vocabularies); Anthropic publishes no
        tokenizer, and the bound assumes of it what holds for every published one. Either
        way the tokens of a text are a segmentation of it: each token stands for a non-empty
        run of the text (a byte-level token for at least one byte; a SentencePiece piece for
        at least one character, which is at least one byte, and a character outside the
        vocabulary is split into byte tokens, one per byte). So a
        text of n UTF-8 bytes is at most n tokens, whatever the vocabulary (at 4 characters a
        token, a CJK or digit-dense prompt is undercounted up to 12 times). What the text
        does not hold comes from the chat format: each message's role and delimiters
        (OpenAI documents 3 or 4 tokens a message; Gemma and Llama 3 templates about 5;
        SentencePiece's dummy prefix is one more) and the request's own frame (the reply's
        priming, a template's default system lines such as Llama 3.1's dates), bounded by
        the two constants with room to spare. It is an upper bound, not an estimate: a
        reservation a few times the real count errs on the side of stopping early."""
        content = sum(len(m["content"].encode("utf-8", "surrogatepass")) for m in self.messages)
        return content + TOKENS_PER_MESSAGE * len(self.messages) + TOKENS_PER_REQUEST


@dataclass(frozen=True)
class ChatResult:
    """One teacher answer. ``latency_s`` runs from the first attempt's start to the answer
    (back-off included); ``last_error`` is the last transient error before it, if any.
    ``text`` is always storable: lone surrogates (which UTF-8 cannot hold) become U+FFFD.
    ``score_logprobs`` is the reviewer's score distribution (``ScoreReading.to_json()``) when
    the request asked for it and it could be read, else None. ``cached_input_tokens``: of
    ``input_tokens``, those read from the provider's prompt cache; ``reasoning_tokens``: of
    ``output_tokens``, those spent thinking (None where the provider does not say)."""

    text: str
    finish_reason: str | None
    status: Status
    input_tokens: int | None
    output_tokens: int | None
    latency_s: float
    attempts: int
    last_error: str | None = None
    score_logprobs: dict[str, Any] | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", storable_text(self.text))
        for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
            object.__setattr__(self, name, token_count(getattr(self, name)))


#: No single call is billed this many tokens: a count above it is a server's garbage.
MAX_TOKEN_COUNT = 10**9


def token_count(value: Any) -> int | None:
    """A usage count as a server reported it, if it is one: a whole number from 0 to
    ``MAX_TOKEN_COUNT``; anything else (negative, fractional, a string, 1e308, a boolean) is
    None, "not reported", which the budget replaces by the request's own bound."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


def storable_text(text: str) -> str:
    """``text`` with every code point UTF-8 cannot encode (lone surrogates) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def result_status(text: str, truncated: bool) -> Status:
    """``truncated`` when the token budget ran out, ``empty`` when no text came back."""
    if truncated:
        return "truncated"
    return "ok" if text.strip() else "empty"


def read_api_key(teacher: str, env_name: str | None) -> str | None:
    """The key held by the variable ``env_name`` (None when no variable is named)."""
    if env_name is None:
        return None
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise FatalProviderError(
            teacher,
            f"environment variable {env_name} is not set",
            hint=f"set {env_name} to the API key (export {env_name}=...)",
        )
    return value


def scrub(text: str, secret: str | None) -> str:
    """``text`` shortened, without ``secret`` and without anything shaped like a key."""
    if secret:
        text = text.replace(secret, "***")
    text = redact(text)
    return text if len(text) <= _MAX_ERROR_TEXT else text[:_MAX_ERROR_TEXT] + "..."


class ChatProvider(ABC):
    """A teacher LLM behind an API: ``await complete(request)``, then ``await aclose()``.

    One provider serves one event loop. Its ``repr`` names the key variable, never the key.
    """

    kind: str = "abstract"

    def __init__(self, *, name: str, model: str, base_url: str | None) -> None:
        if not name:
            raise ValueError(f"provider name must be non-empty, got {name!r}")
        if not model:
            raise ValueError(f"model must be non-empty, got {model!r}")
        self.name = name
        self.model = model
        self.base_url = base_url

    @abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResult:
        """Answer one request; raises FatalProviderError or RetryableExhausted."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections; the provider cannot be used afterwards."""

    async def __aenter__(self) -> ChatProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r}{where})"
