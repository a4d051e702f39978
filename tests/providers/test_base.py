"""Requests, settings, results, key handling and the package surface."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import fairspec.providers as providers
from fairspec.providers import ChatRequest, FatalProviderError, GenerationSettings
from fairspec.providers.base import read_api_key, result_status, scrub
from fairspec.providers.errors import RetryableExhausted
from fairspec.providers.failures import status_failure
from fairspec.providers.limits import TransientFailure

PACKAGE = Path(providers.__file__).parent


def test_settings_reject_out_of_range_values_by_name() -> None:
    with pytest.raises(ValueError, match="temperature.*2.5"):
        GenerationSettings(temperature=2.5)
    with pytest.raises(ValueError, match="max_tokens.*0"):
        GenerationSettings(max_tokens=0)
    with pytest.raises(ValueError, match="presence_penalty"):
        GenerationSettings(presence_penalty=3.0)


def test_settings_coerce_from_mapping_and_from_any_object() -> None:
    @dataclass
    class SpecLike:  # a spec's Generation section: same names, plus None for unset
        temperature: float = 0.2
        max_tokens: int = 64
        top_p: float | None = None

    from_object = GenerationSettings.coerce(SpecLike())
    assert (from_object.temperature, from_object.max_tokens, from_object.top_p) == (0.2, 64, 1.0)
    from_mapping = GenerationSettings.coerce({"max_tokens": 9, "stop": "\n\n"})
    assert from_mapping.max_tokens == 9 and from_mapping.stop == ("\n\n",)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings.coerce({"max_new_tokens": 9})


def test_request_rejects_bad_messages_by_position() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ChatRequest([])
    with pytest.raises(ValueError, match=r"messages\[1\] role.*'tool'"):
        ChatRequest([{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}])
    with pytest.raises(ValueError, match=r"messages\[0\] content"):
        ChatRequest([{"role": "user", "content": None}])  # type: ignore[dict-item]


def test_request_estimate_grows_with_prompt_and_budget() -> None:
    short = ChatRequest([{"role": "user", "content": "x" * 40}], {"max_tokens": 10})
    long = ChatRequest([{"role": "user", "content": "x" * 400}], {"max_tokens": 10})
    bigger_budget = ChatRequest([{"role": "user", "content": "x" * 40}], {"max_tokens": 100})
    assert short.estimated_tokens() < long.estimated_tokens()
    assert bigger_budget.estimated_tokens() - short.estimated_tokens() == 90


def test_result_status_prefers_truncated_then_empty() -> None:
    assert result_status("half", truncated=True) == "truncated"
    assert result_status("  \n", truncated=False) == "empty"
    assert result_status("an answer", truncated=False) == "ok"


def test_read_api_key_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAIRSPEC_NO_SUCH_KEY", raising=False)
    with pytest.raises(FatalProviderError, match="FAIRSPEC_NO_SUCH_KEY") as caught:
        read_api_key("gpt", "FAIRSPEC_NO_SUCH_KEY")
    assert "'gpt'" in str(caught.value)
    monkeypatch.setenv("FAIRSPEC_SOME_KEY", " value \n")
    assert read_api_key("gpt", "FAIRSPEC_SOME_KEY") == "value"
    assert read_api_key("local", None) is None


def test_scrub_removes_the_exact_key_and_key_shaped_text() -> None:
    text = scrub("got 'plain-secret-42' and sk-abcdefghijklmnopqrstuvwx", "plain-secret-42")
    assert "plain-secret-42" not in text
    assert "sk-abcdefghijklmnopqrstuvwx" not in text
    assert len(scrub("x" * 5000, None)) < 400


@pytest.mark.parametrize(
    ("status", "fatal", "words"),
    [
        (401, True, "set OPENAI_API_KEY"),
        (403, True, "set OPENAI_API_KEY"),
        (404, True, "check the model name"),
        (400, True, "generation settings"),
        (429, False, "HTTP 429"),
        (500, False, "HTTP 500"),
        (503, False, "HTTP 503"),
    ],
)
def test_status_failure_sorts_statuses(status: int, fatal: bool, words: str) -> None:
    failure = status_failure(teacher="gpt", model="m", base_url=None, key_env="OPENAI_API_KEY",
                             status=status, message="msg", headers={"retry-after": "3"})
    assert isinstance(failure, FatalProviderError if fatal else TransientFailure)
    assert words in str(failure)
    if not fatal:
        assert failure.retry_after == 3.0


def test_a_429_for_an_empty_account_is_fatal() -> None:
    failure = status_failure(teacher="gpt", model="m", base_url=None, key_env="K", status=429,
                             message="quota", code="insufficient_quota")
    assert isinstance(failure, FatalProviderError) and "quota" in str(failure.hint)


def test_errors_name_the_teacher_and_carry_attempts() -> None:
    error = RetryableExhausted("gpt", attempts=4, last_error="HTTP 503: busy")
    assert error.teacher == "gpt" and error.attempts == 4
    assert "4 attempt" in str(error) and "HTTP 503: busy" in str(error)


def test_provider_class_knows_each_kind_and_rejects_others() -> None:
    assert providers.provider_class("openai").kind == "openai"
    assert providers.provider_class("gemini").kind == "gemini"
    with pytest.raises(ValueError, match="'claude'"):
        providers.provider_class("claude")


def test_public_surface_is_exported() -> None:
    assert sorted(providers.__all__) == sorted(
        name for name in providers.__all__ if hasattr(providers, name)
    )
    assert {"ChatProvider", "ChatRequest", "ChatResult", "FatalProviderError"} <= set(
        providers.__all__
    )


def test_providers_import_nothing_of_specs_stages_or_cli() -> None:
    forbidden = ("fairspec.dsl", "fairspec.plan", "fairspec.stages", "fairspec.cli")
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
