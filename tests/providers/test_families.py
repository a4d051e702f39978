"""Request shapes per model family (fairspec.providers.families) and the bodies the OpenAI
and Gemini providers build from them."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from fairspec.providers.base import GenerationSettings
from fairspec.providers.families import family_for, problems, shaped
from fairspec.providers.gemini import generation_config
from fairspec.providers.openai import settings_body

PAPER = asdict(GenerationSettings())  # Table 7: temperature 0.8, top_p 1, max_tokens 512


@pytest.mark.parametrize(("provider", "model", "family"), [
    ("openai", "gpt-3.5-turbo", "openai-chat"),
    ("openai", "gpt-4o-mini", "openai-chat"),
    ("openai", "gpt-5-chat-latest", "openai-chat"),
    ("openai", "o3-mini", "openai-o-series"),
    ("openai", "o4-mini-2025-04-16", "openai-o-series"),
    ("openai", "gpt-5-mini", "openai-gpt-5"),
    ("openai", "openai/gpt-5", "openai-gpt-5"),        # a router's vendor prefix
    ("openai", "gpt-5.1", "openai-gpt-5.x"),
    ("openai", "gpt-7-preview", "openai-gpt-5.x"),      # unknown OpenAI name: current rules
    ("openai", "ft:gpt-4o-mini-2024-07-18:lab::abc123", "openai-chat"),
    ("openai", "ft:o4-mini-2025-04-16:lab::abc123", "openai-o-series"),
    ("openai", "gpt-oss-120b", "gpt-oss"),
    ("openai", "mistralai/Mixtral-8x7B-Instruct-v0.1", "compatible"),
    ("openai", "claude-opus-4-1", "claude-4.5"),        # Anthropic's OpenAI-compatible endpoint
    ("anthropic", "claude-3-5-haiku-latest", "claude-3"),
    ("anthropic", "claude-sonnet-4-20250514", "claude-4"),
    ("anthropic", "claude-sonnet-4-5", "claude-4.5"),
    ("anthropic", "claude-next", "claude-4.5"),
    ("gemini", "gemini-1.0-pro", "gemini-1-2.0"),
    ("gemini", "gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
    ("gemini", "gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini", "gemini-2.5-pro", "gemini-2.5-pro"),
    ("gemini", "gemini-3-pro-preview", "gemini-3"),
    ("gemini", "gemini-4-ultra", "gemini-3"),
])
def test_models_fall_into_their_family(provider, model, family) -> None:
    assert family_for(provider, model).name == family


def test_kinds_without_a_request_body_have_no_family() -> None:
    assert family_for("hf", "builtin:smollm2-135m-instruct") is None
    assert family_for("replay", "gpt-4o") is None


def test_a_reasoning_model_gets_no_sampling_and_its_budget_under_max_completion_tokens() -> None:
    family = family_for("openai", "o3")
    body = settings_body(GenerationSettings(reasoning_effort="low", seed=7, stop=("END",)), family)
    assert body == {"max_completion_tokens": 512 + 4096, "reasoning_effort": "low",
                    "seed": 7, "stop": ["END"]}
    # a thinking allowance given in tokens replaces the effort's
    body = settings_body(GenerationSettings(reasoning_effort="high", thinking=1000), family)
    assert body["max_completion_tokens"] == 1512


def test_a_chat_model_keeps_the_paper_body_and_extra_body_is_added_as_is() -> None:
    body = settings_body(GenerationSettings(extra_body={"service_tier": "flex"}),
                         family_for("openai", "gpt-4o"))
    assert body == {"temperature": 0.8, "top_p": 1.0, "presence_penalty": 0.0,
                    "frequency_penalty": 0.0, "max_tokens": 512, "service_tier": "flex"}


def test_claude_gets_one_of_temperature_and_top_p() -> None:
    family = family_for("anthropic", "claude-sonnet-4-5")
    assert family.sampling_sent(PAPER) == ("temperature",)
    assert family.sampling_sent({**PAPER, "top_p": 0.9}) == ("top_p",)
    assert family_for("anthropic", "claude-3-5-sonnet-latest").sampling_sent(PAPER) == (
        "temperature", "top_p")
    thinking = {**PAPER, "thinking": 2048}
    assert family.sampling_sent(thinking) == () and family.output_budget(thinking) == 2560
    assert family.sampling_sent({**thinking, "top_p": 0.97}) == ("top_p",)


def test_a_thinking_gemini_gets_its_thoughts_on_top_of_the_visible_budget() -> None:
    flash = family_for("gemini", "gemini-2.5-flash")
    config = generation_config(GenerationSettings(), None, flash)
    assert config.max_output_tokens == 512 + 8192 and config.thinking_config is None
    config = generation_config(GenerationSettings(thinking=0), None, flash)
    assert config.max_output_tokens == 512 and config.thinking_config.thinking_budget == 0
    config = generation_config(GenerationSettings(thinking=1024, seed=3), None, flash)
    assert config.max_output_tokens == 1536 and config.seed == 3
    config = generation_config(GenerationSettings(thinking="low"), None,
                               family_for("gemini", "gemini-3-pro-preview"))
    assert config.thinking_config.thinking_level.value == "LOW"
    assert config.max_output_tokens == 512 + 4096
    old = generation_config(GenerationSettings(), None, family_for("gemini", "gemini-1.0-pro"))
    assert old.max_output_tokens == 512 and old.temperature == 0.8


def test_shaped_settings_hold_only_what_is_sent() -> None:
    o3 = shaped(family_for("openai", "o3"), {**PAPER, "extra_body": {}})
    assert not {"temperature", "top_p", "presence_penalty", "frequency_penalty",
                "extra_body", "thinking", "reasoning_effort"} & set(o3)
    assert set(shaped(family_for("openai", "gpt-4o"), PAPER)) == set(PAPER) - {
        "reasoning_effort", "thinking", "extra_body"}


def test_defaults_are_never_reported_and_teacher_values_are_errors() -> None:
    o3 = family_for("openai", "o3")
    assert problems(o3, "o3", PAPER, {}) == []
    found = problems(o3, "o3", {**PAPER, "top_p": 0.5}, {"top_p": "teacher"})
    assert [(p.key, p.level) for p in found] == [("top_p", "error")]
    found = problems(o3, "o3", {**PAPER, "top_p": 0.5}, {"top_p": "shared"})
    assert [(p.key, p.level) for p in found] == [("top_p", "note")]
