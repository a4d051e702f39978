"""Student generation engines (hf, vllm) behind one interface; heavy imports stay inside."""

from __future__ import annotations

from fairspec.engines.base import Completion, Engine, Sampling, chat_prompt
from fairspec.engines.factory import make_engine

__all__ = ["Completion", "Engine", "Sampling", "chat_prompt", "make_engine"]
