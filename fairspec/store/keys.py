"""Defines CallIdentity: the identity of one teacher call, and its key in the call store.

A key is the sha256 of the canonical JSON of exactly what can change a teacher's
answer: provider, base_url, model, the rendered messages, the generation settings
and the sample index. Nothing else ever enters it:

- API keys and other credentials (they change who pays, not what is answered);
- concurrency, rate limits, retries and timeouts (they change when, not what);
- the teacher's display name (two teachers naming one model share their calls).

So a rerun, a resumed run or another variant of an experiment finds the calls it
already paid for. ``CallIdentity`` takes no credential argument at all, and settings
named like credentials or transport options are refused (``ValueError``), because
a provider that passes its whole config by mistake would both split the cache and
write a secret into the store.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fairspec.hashing import canonical_json
from fairspec.secrets import find_key_like

#: Setting names that cannot change a teacher's output (credentials, transport) or
#: that are passed on their own; a settings dict holding one is a caller's bug.
NOT_SETTINGS: frozenset[str] = frozenset(
    {
        "api_key", "api_key_env", "key", "token", "secret", "password", "authorization",
        "headers", "extra_headers", "default_headers", "organization", "project",
        "timeout", "max_retries", "retries", "concurrency", "max_concurrency",
        "max_concurrent", "rate_limit", "requests_per_minute", "tokens_per_minute",
        "batch_size", "http_client", "base_url", "model", "messages", "provider",
    }
)


def normalise_base_url(base_url: str | None) -> str:
    """``base_url`` as it enters a key: None and "" are the same; trailing slashes dropped."""
    if base_url is None:
        return ""
    if not isinstance(base_url, str):
        raise ValueError(f"base_url must be a string or None, got {base_url!r}")
    return base_url.strip().rstrip("/")


def _normalise_value(value: Any, where: str) -> Any:
    """JSON-ready copy of ``value``; an integral float becomes an int so 1.0 and 1 agree."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, got {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} has a non-string key {k!r}")
            out[k] = _normalise_value(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_normalise_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{where} holds a {type(value).__name__} ({value!r}), not a JSON value")


def normalise_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-format ``messages`` checked (each a mapping with a string role and a content)."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(f"messages must be a non-empty list of {{role, content}}, "
                         f"got {messages!r}")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ValueError(f"messages[{i}] must be a mapping with role and content, "
                             f"got {message!r}")
        if not isinstance(message["role"], str):
            raise ValueError(f"messages[{i}]['role'] must be a string, got {message['role']!r}")
        out.append(_normalise_value(message, f"messages[{i}]"))
    return out


def normalise_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Generation ``settings`` checked: no credential, transport option or key-like value."""
    if not isinstance(settings, Mapping):
        raise ValueError(f"settings must be a mapping of generation settings, got {settings!r}")
    for name, value in settings.items():
        if isinstance(name, str) and name.lower() in NOT_SETTINGS:
            raise ValueError(
                f"settings[{name!r}] is not a generation setting: credentials, transport "
                "options and call identity never enter a call key"
            )
        if isinstance(value, str) and find_key_like(value):
            raise ValueError(f"settings[{name!r}] looks like a secret ({find_key_like(value)})")
    return _normalise_value(settings, "settings")


def _check_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _check_sample_index(sample_index: Any) -> int:
    if isinstance(sample_index, bool) or not isinstance(sample_index, int) or sample_index < 0:
        raise ValueError(f"sample_index must be an int >= 0, got {sample_index!r}")
    return sample_index


def _sha256(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True, eq=False, repr=False)
class CallIdentity:
    """The identity of one teacher call: what can change its answer, normalised once.

    Build it from the raw parts; ``__post_init__`` checks and normalises them (a bad
    part is a ``ValueError``), so every field holds the form that enters the key:
    ``base_url`` a string without trailing slashes ("" for none), ``messages`` and
    ``settings`` JSON-ready copies (integral floats as ints). ``key`` is the sha256 of
    the canonical JSON of :meth:`parts`, computed once; it is what the call store and a
    replay file are indexed by (byte-identical to the keys fairspec 0.1.0 wrote).
    ``loose_key`` leaves provider and base_url out: a ``provider: replay`` teacher
    answers from a file recorded against any host.

    Two identities are equal when their keys are. The copied ``messages`` and
    ``settings`` are plain lists and dicts: treat them as read-only.
    """

    provider: str
    base_url: str | None
    model: str
    messages: Sequence[Mapping[str, Any]]
    settings: Mapping[str, Any]
    sample_index: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "provider", _check_name("provider", self.provider))
        set_(self, "model", _check_name("model", self.model))
        set_(self, "sample_index", _check_sample_index(self.sample_index))
        set_(self, "base_url", normalise_base_url(self.base_url))
        set_(self, "messages", normalise_messages(self.messages))
        set_(self, "settings", normalise_settings(self.settings))

    def parts(self) -> dict[str, Any]:
        """The normalised parts as a new dict (what ``key`` hashes; ``CallRecord``'s fields)."""
        return {
            "provider": self.provider,
            "base_url": self.base_url,
            "model": self.model,
            "messages": self.messages,
            "settings": self.settings,
            "sample_index": self.sample_index,
        }

    @cached_property
    def key(self) -> str:
        """sha256 hex of the canonical JSON of :meth:`parts`: the call's key in the store."""
        return _sha256(self.parts())

    @cached_property
    def loose_key(self) -> str:
        """Like ``key`` but without provider and base_url (model, messages, settings and
        sample index only): the index of ``provider: replay`` lookups. Never stored."""
        parts = self.parts()
        del parts["provider"], parts["base_url"]
        return _sha256(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CallIdentity):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return (f"CallIdentity(provider={self.provider!r}, base_url={self.base_url!r}, "
                f"model={self.model!r}, sample_index={self.sample_index}, key={self.key[:12]!r})")
