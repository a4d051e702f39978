"""One interface for the student's batch generation: the exam and the evaluation use it.

An engine takes already-rendered prompts (the exam template filled in), applies the
tokenizer's chat template when asked, and yields each completion as soon as it is
ready, tagged with the prompt's position, so a stage can stream results to disk and
resume by row. Heavy imports (torch, transformers, vllm) stay inside the engines.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sampling:
    """Decoding settings (paper Table 8 by default); ``do_sample=False`` is greedy."""

    temperature: float = 0.3
    top_p: float = 0.9
    top_k: int = 50
    max_new_tokens: int = 512
    do_sample: bool = True
    seed: int = 42


@dataclass(frozen=True)
class Completion:
    """One generated answer: ``position`` indexes the prompts given to ``generate``."""

    position: int
    text: str
    finish_reason: str  # "stop" (EOS or stop string) or "length" (hit max_new_tokens)
    prompt_tokens: int
    output_tokens: int


class Engine(Protocol):
    """What the exam and evaluate stages need from a generation backend."""

    name: str

    def generate(self, prompts: Sequence[str], sampling: Sampling) -> Iterator[Completion]:
        """Yield one Completion per prompt, in any order, as each becomes ready."""
        ...

    def close(self) -> None:
        """Free the model (and, for vLLM, its engine processes)."""
        ...


def chat_prompt(tokenizer, prompt: str, use_chat_template: bool) -> str:
    """The text the model sees: the prompt as a user turn of the chat template, or as is."""
    if not use_chat_template or not getattr(tokenizer, "chat_template", None):
        return prompt
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
