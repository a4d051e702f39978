"""Teacher LLM providers: one async chat interface (OpenAI message format) over several APIs.

``OpenAIProvider`` and ``GeminiProvider`` import their SDKs; import them from their modules
(``fairspec.providers.openai``, ``fairspec.providers.gemini``) or through ``provider_class``.
"""

from __future__ import annotations

import importlib

from fairspec.providers.base import (
    ChatProvider,
    ChatRequest,
    ChatResult,
    GenerationSettings,
)
from fairspec.providers.errors import FatalProviderError, ProviderError, RetryableExhausted

_CLASSES = {
    "openai": ("fairspec.providers.openai", "OpenAIProvider"),
    "gemini": ("fairspec.providers.gemini", "GeminiProvider"),
    "hf": ("fairspec.providers.hf", "HfProvider"),
}


def provider_class(kind: str) -> type[ChatProvider]:
    """The provider class for a spec's ``provider:`` word (its SDK imported now)."""
    if kind not in _CLASSES:
        raise ValueError(f"unknown provider kind {kind!r}; known: {sorted(_CLASSES)}")
    module, name = _CLASSES[kind]
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ChatProvider",
    "ChatRequest",
    "ChatResult",
    "FatalProviderError",
    "GenerationSettings",
    "ProviderError",
    "RetryableExhausted",
    "provider_class",
]
