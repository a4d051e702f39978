"""An OpenAI-compatible teacher with a base_url and no api_key_env sends no key: a keyless
local server (vLLM, llama.cpp, Ollama; here llm-katan, which needs none) works without a
dummy key exported, and validate does not ask for OPENAI_API_KEY."""

from __future__ import annotations

from katan_runs import requests_served

from fairspec.dsl.rules import check_rules
from fairspec.providers.registry import provider_kind
from fairspec.run.executor import run_stage
from fairspec.store import CallStore


def keyless(url: str) -> str:
    return "".join(f'  - {{name: {n}, provider: openai, model: gpt-{n}, base_url: "{url}"}}\n'
                   for n in ("alpha", "beta"))


def test_no_key_variable_means_no_key_for_a_base_url_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    kind = provider_kind("openai")
    assert kind.arguments({"base_url": "http://127.0.0.1:1/v1"})["api_key_env"] is None
    assert kind.arguments({})["api_key_env"] == "OPENAI_API_KEY"  # the OpenAI API needs one
    assert kind.arguments({"api_key_env": "MY_KEY"})["api_key_env"] == "MY_KEY"
    gemini = provider_kind("gemini")  # Vertex AI authenticates without an API key
    assert gemini.arguments({"vertex": {"project": "p"}})["api_key_env"] is None
    assert gemini.arguments({})["api_key_env"] == "GEMINI_API_KEY"


def test_a_keyless_server_teaches_with_no_key_exported(tmp_path, katan, katan_run, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    made = katan_run(keyless(katan.openai_url), mistakes=2)
    assert check_rules(made.loaded.spec, tmp_path) == []
    before = requests_served(katan)
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(made.run, "teach", base_dir=made.base, store=store)
        assert store.count() == 2 * 2 * 2  # 2 mistakes x 2 teachers x (rationale, feedback)
        assert requests_served(katan) - before == store.count()
    assert made.done("teach")
