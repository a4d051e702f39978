"""Teacher LLM providers: one async chat interface (OpenAI message format) over several APIs.

``OpenAIProvider`` and ``GeminiProvider`` import their SDKs; import them from their modules
(``fairspec.providers.openai``, ``fairspec.providers.gemini``) or through ``provider_class``;
the kinds themselves (what each takes, its class by dotted path) are in
:mod:`fairspec.providers.registry`, which imports no SDK.
"""

from __future__ import annotations

from fairspec.providers.base import (
    ChatProvider,
    ChatRequest,
    ChatResult,
    GenerationSettings,
)
from fairspec.providers.errors import FatalProviderError, ProviderError, RetryableExhausted
from fairspec.providers.registry import KINDS, ProviderKind, provider_kind


def provider_class(kind: str) -> type[ChatProvider]:
    """The provider class for a spec's ``provider:`` word (its SDK imported now)."""
    found = KINDS.get(kind)
    if found is None:
        live = sorted(name for name, entry in KINDS.items() if entry.live)
        raise ValueError(f"unknown provider kind {kind!r}; known: {live}")
    return found.load()


__all__ = [
    "ChatProvider",
    "ChatRequest",
    "ChatResult",
    "FatalProviderError",
    "GenerationSettings",
    "KINDS",
    "ProviderError",
    "ProviderKind",
    "RetryableExhausted",
    "provider_class",
    "provider_kind",
]
