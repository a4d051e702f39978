"""What a hostile server sends back never costs a secret, a paid call or the budget: a reply
that echoes the key it was sent (as a server echoing its Authorization header does) is
stored, shown and exported with the key replaced; a 200 with no usable choice is retried,
then an error (asked again next run), never a completed empty answer; usage that is
negative, missing or not a number is counted at the request's own bound; review
log-probabilities that are no log-probabilities leave the text score."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from katan_runs import TEST_KEY, svamp_mistakes, teacher_line
from standin_http import send_json
from strict_openai import ChatCall, StrictOpenAI

from fairspec.artifacts import read_jsonl
from fairspec.providers import ChatRequest
from fairspec.providers.base import GenerationSettings
from fairspec.providers.openai import OpenAIProvider
from fairspec.run.executor import run_stage
from fairspec.store import CallStore
from fairspec.store.calls import KEY_REMOVED
from fairspec.teachers.budget import Budget
from fairspec.teachers.caller import TeacherCaller


@pytest.fixture
def server(katan_key) -> Iterator[StrictOpenAI]:
    with StrictOpenAI(key=TEST_KEY) as stand_in:
        yield stand_in


def echo_key(call: ChatCall) -> str:
    if call.prompt.startswith("Imagine you are a reviewer"):
        return f"Headers seen: Authorization: Bearer {TEST_KEY}. [4]"
    return f"Debug: your key is {TEST_KEY} (Authorization: Bearer {TEST_KEY}). The answer is 5."


def test_a_reply_that_echoes_the_key_is_stored_without_it(tmp_path, server, katan_run):
    server.reply = echo_key
    teachers = teacher_line("alpha", server.url, model="gpt-4o") + \
        teacher_line("beta", server.url, model="gpt-4.1")
    run = katan_run(teachers, base=tmp_path, mistakes=svamp_mistakes(2),
                    review="{threshold: 3, early_exit: false}").run
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        run_stage(run, "review", base_dir=tmp_path, store=store)
        assert store.secrets_removed == 2 * 2 * 2 + 2 * 2  # every rationale, feedback, review
    rationales = list(read_jsonl(Path(run.run_dir) / "teach" / "rationales.jsonl"))
    assert rationales and all(KEY_REMOVED in r["text"] and "The answer is 5." in r["text"]
                              for r in rationales)
    reviews = list(read_jsonl(Path(run.run_dir) / "review" / "reviews.jsonl"))
    assert reviews and all(r["score"] == 4 for r in reviews)  # the rest of the reply is kept
    # not in any file the run wrote: outputs, the store, its write-ahead log
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and TEST_KEY.encode() in p.read_bytes()]
    assert leaked == []


# -- a server whose 200 replies are malformed -------------------------------------------------


def completion(content, *, choices=None, usage=None, logprobs=None) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": content},
              "finish_reason": "stop", "logprobs": logprobs}
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [choice] if choices is None else choices,
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            if usage is None else usage}


#: case word in the prompt -> the body every attempt gets
BODIES = {
    "NO-CHOICE": completion("x", choices=[]),
    "OBJECT-CONTENT": completion({"text": "not a string"}),
    "NEGATIVE-USAGE": completion("The answer is 5.", usage={"prompt_tokens": -10**9,
                                                            "completion_tokens": -5}),
    "JUNK-USAGE": completion("The answer is 5.", usage={"prompt_tokens": "abc",
                                                        "completion_tokens": 1e308}),
    "PARTS-CONTENT": completion([{"type": "text", "text": "The answer "},
                                 {"type": "text", "text": "is 5."}]),
    "JUNK-LOGPROBS": completion("Fine work. [4]", logprobs={"content": [
        {"token": t, "logprob": lp, "top_logprobs": [{"token": "5", "logprob": bad}
                                                     for bad in (1000, "abc", 1e308)]}
        for t, lp in (("Fine", -0.1), (" work", -0.2), (".", -0.1), (" [", -0.1), ("4", "abc"),
                      ("]", -0.1))]}),
}


class Hostile(BaseHTTPRequestHandler):
    asked: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = request["messages"][-1]["content"]
        case = next(c for c in BODIES if c in prompt)
        Hostile.asked.append(case)
        send_json(self, 200, BODIES[case])


@pytest.fixture
def hostile():
    Hostile.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def caller(url: str, store: CallStore, budget: Budget | None = None,
           price: dict | None = None) -> TeacherCaller:
    provider = OpenAIProvider(name="h", model="some-model", base_url=url, api_key_env="KATAN_KEY",
                              max_retries=1)
    return TeacherCaller(name="h", provider_kind="openai", base_url=url, model="some-model",
                         settings={"temperature": 0.0, "max_tokens": 50}, store=store,
                         provider=provider, price=price, budget=budget)


def ask(teacher: TeacherCaller, case: str):
    async def go():
        try:
            return await teacher.ask([{"role": "user", "content": f"{case}: what is 2 + 3?"}])
        finally:
            await teacher.provider.aclose()
    return asyncio.run(go())


@pytest.mark.parametrize("case", ["NO-CHOICE", "OBJECT-CONTENT"])
def test_a_200_with_no_usable_choice_is_retried_then_an_error_never_an_empty_answer(
        tmp_path, hostile, katan_key, case):
    with CallStore(tmp_path / "calls.sqlite") as store:
        record = ask(caller(hostile, store), case)
        assert record.status == "error" and not record.completed
        assert Hostile.asked.count(case) == 2  # the first attempt and its one retry
        assert ("no choice" if case == "NO-CHOICE" else "not text") in record.last_error
        # an error is asked again by the next run, not kept as an answer
        again = ask(caller(hostile, store), case)
        assert Hostile.asked.count(case) == 4 and again.status == "error"


def test_content_parts_are_joined(tmp_path, hostile, katan_key):
    with CallStore(tmp_path / "calls.sqlite") as store:
        record = ask(caller(hostile, store), "PARTS-CONTENT")
    assert (record.status, record.text) == ("ok", "The answer is 5.")


@pytest.mark.parametrize("case", ["NEGATIVE-USAGE", "JUNK-USAGE"])
def test_usage_a_server_garbles_is_counted_at_the_requests_bound(tmp_path, hostile, katan_key,
                                                                 case):
    price = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}
    budget = Budget(10.0)
    with CallStore(tmp_path / "calls.sqlite") as store:
        teacher = caller(hostile, store, budget, price)
        record = ask(teacher, case)
    assert record.status == "ok" and record.input_tokens > 0
    assert record.output_tokens == 50  # the whole output budget: max_tokens
    assert teacher.usage.usage_bounded == 1
    # the spend is what the bound costs: never negative, never nothing
    assert budget.spent_usd == pytest.approx((record.input_tokens + 50) * 1000.0 / 1e6)
    assert budget.spent_usd > 0


def test_review_logprobs_that_are_no_logprobs_fall_back_to_the_text_score(tmp_path, hostile,
                                                                          katan_key):
    provider = OpenAIProvider(name="h", model="gpt-4o", base_url=hostile,
                              api_key_env="KATAN_KEY", max_retries=0)
    settings = GenerationSettings(temperature=0.0, max_tokens=20, score_logprobs=(1, 5))

    async def go():
        try:
            return await provider.complete(ChatRequest(
                messages=[{"role": "user", "content": "JUNK-LOGPROBS: review this."}],
                settings=settings))
        finally:
            await provider.aclose()
    result = asyncio.run(go())
    assert result.status == "ok" and result.text == "Fine work. [4]"
    assert result.score_logprobs is None  # no distribution could be read: text fallback


class Trickle(BaseHTTPRequestHandler):
    """A 200 whose body comes 10 bytes every 0.5 s: each read succeeds, the reply never ends
    in time."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        import time

        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(completion("The answer is 5.")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for start in range(0, len(body), 10):
                self.wfile.write(body[start:start + 10])
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:  # the client gave up: as it should
            pass


def test_timeout_s_is_a_deadline_for_the_whole_call_not_for_each_read(tmp_path, katan_key):
    import time

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    provider = OpenAIProvider(name="slow", model="m", base_url=url, api_key_env="KATAN_KEY",
                              timeout_s=1.5, max_retries=1, backoff_s=0.1)
    try:
        with CallStore(tmp_path / "calls.sqlite") as store:
            teacher = TeacherCaller(name="slow", provider_kind="openai", base_url=url, model="m",
                                    settings={"temperature": 0.0, "max_tokens": 20}, store=store,
                                    provider=provider)
            started = time.monotonic()
            record = ask(teacher, "TRICKLE")
            took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    # the body takes ~100 s to trickle; two attempts of 1.5 s each end it
    assert took < 15, took
    assert record.status == "error" and "timed out after 1.5s" in record.last_error
