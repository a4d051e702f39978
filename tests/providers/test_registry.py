"""Tests for fairspec.providers.registry and the RemoteProvider outline (no network)."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from typing import Any

import pytest

from fairspec import providers
from fairspec.providers import ChatProvider, ChatRequest, FatalProviderError, RetryableExhausted
from fairspec.providers.limits import TransientFailure
from fairspec.providers.registry import (
    KINDS,
    LIMITS,
    kind_options,
    kinds_taking,
    provider_kind,
    provider_names,
)
from fairspec.providers.remote import RemoteProvider, Reply

PLAN_TEACHER = {  # a teacher as the plan hands it to the committee
    "name": "t", "provider": "openai", "model": "m", "base_url": "http://h/v1",
    "generation": {"temperature": 0.5}, "api_key_env": None, "vertex": None,
    "replay_file": None, "concurrency": 4, "rpm": None, "tpm": 1000, "timeout_s": 30.0,
    "max_retries": 2, "price": None, "batch": True,  # the committee reads batch itself
}


def test_importing_the_registry_imports_no_sdk_and_no_provider_module() -> None:
    heavy = ("openai", "google.genai", "anthropic", "torch", "transformers",
             "fairspec.providers.openai", "fairspec.providers.gemini",
             "fairspec.providers.anthropic", "fairspec.providers.hf")
    code = ("import sys, fairspec.providers.registry, fairspec.dsl.schema, fairspec.dsl.rules; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_kinds_and_their_options() -> None:
    assert provider_names() == ("openai", "gemini", "anthropic", "hf", "replay", "recorded")
    assert kind_options() == ("base_url", "api_key_env", "batch", "vertex", "replay_file",
                              "recorded")
    assert kinds_taking("batch") == ("openai", "gemini", "anthropic")
    assert all(k.no_batch for k in KINDS.values() if not k.takes("batch"))
    # a recorded teacher takes base_url and api_key_env for its fallback's live calls
    assert kinds_taking("base_url") == ("openai", "gemini", "anthropic", "recorded")
    assert kinds_taking("vertex") == ("gemini",)
    assert kinds_taking("rpm") == ("openai", "gemini", "anthropic")
    assert [k.name for k in KINDS.values() if k.priced] == ["openai", "gemini", "anthropic"]
    assert [k.name for k in KINDS.values() if k.local] == ["hf"]
    assert [k.name for k in KINDS.values() if not k.live] == ["replay", "recorded"]
    assert not provider_kind("recorded").logprobs and not provider_kind("anthropic").logprobs
    assert provider_kind("openai").key_env == "OPENAI_API_KEY"
    assert provider_kind("gemini").key_env == "GEMINI_API_KEY"
    assert provider_kind("anthropic").key_env == "ANTHROPIC_API_KEY"
    assert provider_kind("hf").spec_options == () and provider_kind("hf").key_rule is None
    assert provider_kind("gemini").takes("base_url") and not provider_kind("replay").takes("base_url")
    with pytest.raises(ValueError, match="unknown provider kind 'claude'"):
        provider_kind("claude")


@pytest.mark.parametrize("name", [name for name, kind in KINDS.items() if kind.live])
def test_each_live_kind_loads_its_class(name: str) -> None:
    kind = KINDS[name]
    cls = kind.load()
    assert cls is providers.provider_class(name)
    assert issubclass(cls, ChatProvider) and cls.kind == name
    assert issubclass(cls, RemoteProvider) == kind.remote
    if kind.remote:  # the class's own default key variable is the registry's
        assert inspect.signature(cls).parameters["api_key_env"].default == kind.key_env


def test_replay_has_no_provider_class() -> None:
    with pytest.raises(ValueError, match="'replay' has no provider class"):
        providers.provider_class("replay")


def test_arguments_pass_what_the_kind_takes_and_default_the_key_variable() -> None:
    # a base_url with no api_key_env is a keyless server: no key variable is read
    assert provider_kind("openai").arguments(PLAN_TEACHER) == {
        "base_url": "http://h/v1", "api_key_env": None, "concurrency": 4,
        "tpm": 1000, "timeout_s": 30.0, "max_retries": 2,
    }
    gemini = {**PLAN_TEACHER, "provider": "gemini", "base_url": None, "api_key_env": "MY_KEY",
              "vertex": {"project": "p", "location": "europe-west4"}}
    assert provider_kind("gemini").arguments(gemini) == {
        "api_key_env": "MY_KEY", "vertex_project": "p", "vertex_location": "europe-west4",
        "concurrency": 4, "tpm": 1000, "timeout_s": 30.0, "max_retries": 2,
    }
    assert provider_kind("hf").arguments({**PLAN_TEACHER, "provider": "hf"}) == {}
    assert set(LIMITS) <= set(PLAN_TEACHER)


class Scripted(RemoteProvider):
    """A remote provider whose SDK call plays a script: replies and failures in turn."""

    kind = "scripted"

    def __init__(self, script: list[Any], **options: Any) -> None:
        super().__init__(name="s", model="m", api_key_env=None, backoff_s=0.0, **options)
        self.script = script
        self.prepared: list[Any] = []

    def _prepare(self, request: ChatRequest) -> Any:
        return [m["content"] for m in request.messages]

    async def _send(self, prepared: Any) -> Reply:
        self.prepared.append(prepared)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def aclose(self) -> None:
        pass


REQUEST = ChatRequest(messages=[{"role": "user", "content": "hi"}])


def test_remote_outline_retries_times_and_reads_the_reply() -> None:
    reply = Reply(text="ab", finish_reason="length", truncated=True, input_tokens=3,
                  output_tokens=2, total_tokens=5)
    provider = Scripted([TransientFailure("HTTP 503: busy", status=503), reply])
    result = asyncio.run(provider.complete(REQUEST))
    assert (result.text, result.status, result.finish_reason) == ("ab", "truncated", "length")
    assert (result.input_tokens, result.output_tokens) == (3, 2)
    assert result.attempts == 2 and result.last_error == "HTTP 503: busy" and result.latency_s >= 0
    assert provider.prepared == [["hi"], ["hi"]]  # prepared once, sent twice


def test_remote_outline_gives_up_and_passes_fatal_errors() -> None:
    with pytest.raises(RetryableExhausted) as caught:
        asyncio.run(Scripted([TransientFailure("t1"), TransientFailure("t2")],
                             max_retries=1).complete(REQUEST))
    assert caught.value.attempts == 2 and caught.value.last_error == "t2"
    with pytest.raises(FatalProviderError) as fatal:
        asyncio.run(Scripted([FatalProviderError("s", "no")]).complete(REQUEST))
    assert fatal.value.attempts == 1


def test_remote_error_helpers_scrub_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTED_KEY", "plain-secret-value-123")

    class Keyed(Scripted):
        def __init__(self) -> None:
            RemoteProvider.__init__(self, name="s", model="m", api_key_env="SCRIPTED_KEY")

    provider = Keyed()
    failure = provider._status_error(401, "bad key plain-secret-value-123")
    assert isinstance(failure, FatalProviderError) and "plain-secret" not in str(failure)
    assert "SCRIPTED_KEY" in str(failure)
    assert "plain-secret" not in str(provider._connection_error("refused plain-secret-value-123"))
    assert str(provider._timed_out()) == "timed out after 120s"
    with pytest.raises(ValueError, match="timeout_s"):
        Scripted([], timeout_s=0)
