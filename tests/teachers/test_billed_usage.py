"""Usage as billed: cached input and reasoning tokens read from a real local server (the
OpenAI wire shape), priced at their rates, stored, tallied in the stage stats; and a budget
that reserves a call with a count no provider's can pass, so a prompt the 4-characters
estimate undercounts (CJK text) still stops at or below the limit."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from katan_runs import teacher_line

from fairspec.providers import ChatRequest
from fairspec.providers.openai import OpenAIProvider
from fairspec.run.executor import run_stage
from fairspec.store import CallStore
from fairspec.teachers.budget import Budget, BudgetReached, call_usd, reserve_usd
from fairspec.teachers.caller import TeacherCaller

KEY_ENV = "USAGE_TEST_KEY"
#: USD per million tokens: input 2, cached input 0.5, output 8
PRICE = {"input_per_mtok": 2.0, "cached_input_per_mtok": 0.5, "output_per_mtok": 8.0}
PRICE_YAML = "{input_per_mtok: 2.0, cached_input_per_mtok: 0.5, output_per_mtok: 8.0}"
#: 1000 input tokens of which 800 cached; 300 output tokens of which 200 reasoning
BILLED = {"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
          "prompt_tokens_details": {"cached_tokens": 800},
          "completion_tokens_details": {"reasoning_tokens": 200}}
#: what one such call costs, by hand: 200 uncached at 2, 800 cached at 0.5, 300 out at 8
ONE_CALL_USD = (200 * 2.0 + 800 * 0.5 + 300 * 8.0) / 1e6


class UsageServer:
    """OpenAI chat completions on 127.0.0.1 (stdlib, a thread of the test process): every
    request is answered "The answer is 4." with the usage ``usage(body)`` returns."""

    def __init__(self, usage: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.usage = usage
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with owner._lock:
                    owner.bodies.append(body)
                reply = {"id": f"chatcmpl-{len(owner.bodies)}", "object": "chat.completion",
                         "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                      "message": {"role": "assistant",
                                                  "content": "The answer is 4."}}],
                         "usage": owner.usage(body)}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def served(self) -> int:
        with self._lock:
            return len(self.bodies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def byte_count_usage(body: dict[str, Any]) -> dict[str, Any]:
    """The most a byte-level tokenizer can count: a token per UTF-8 byte of the prompt, and
    the whole output budget spent."""
    prompt = sum(len(m["content"].encode("utf-8")) for m in body["messages"])
    output = body.get("max_completion_tokens") or body["max_tokens"]
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., UsageServer]]:
    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-real-key-000000")
    servers: list[UsageServer] = []

    def start(usage: Callable[[dict[str, Any]], dict[str, Any]]) -> UsageServer:
        servers.append(UsageServer(usage))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def caller_on(server: UsageServer, store: CallStore, *, price: dict[str, float],
              budget: Budget | None, max_tokens: int = 400) -> TeacherCaller:
    model = "gpt-4o-mini"  # a chat model: its output budget is max_tokens
    provider = OpenAIProvider(name="t", model=model, base_url=server.url, api_key_env=KEY_ENV,
                              max_retries=0)
    return TeacherCaller(name="t", provider_kind="openai", base_url=server.url, model=model,
                         settings={"temperature": 0.0, "max_tokens": max_tokens}, store=store,
                         provider=provider, price=price, budget=budget)


def test_cached_and_reasoning_tokens_are_priced_at_their_rates() -> None:
    assert ONE_CALL_USD == pytest.approx(0.0032)
    assert call_usd(PRICE, 1000, 300, 800) == ONE_CALL_USD
    # no cached price: cached input at the input price
    plain = {"input_per_mtok": 2.0, "output_per_mtok": 8.0}
    assert call_usd(plain, 1000, 300, 800) == pytest.approx((1000 * 2.0 + 300 * 8.0) / 1e6)
    assert call_usd({**plain, "cached_input_per_mtok": None}, 1000, 300, 800) == \
        call_usd(plain, 1000, 300)
    assert call_usd(None, 1000, 300, 800) == 0.0


def test_a_call_is_billed_stored_and_tallied_with_its_cached_and_reasoning_tokens(
        serve: Callable[..., UsageServer], tmp_path) -> None:
    server = serve(lambda body: BILLED)
    budget = Budget(1.0)
    with CallStore(tmp_path / "calls.sqlite") as store:
        caller = caller_on(server, store, price=PRICE, budget=budget)

        async def ask() -> Any:
            try:
                return await caller.ask([{"role": "user", "content": "What is 2+2?"}])
            finally:
                await caller.provider.aclose()

        record = asyncio.run(ask())
        stored = store.get(record.key)
    assert server.served == 1
    assert (stored.input_tokens, stored.cached_input_tokens) == (1000, 800)
    assert (stored.output_tokens, stored.reasoning_tokens) == (300, 200)
    usage = caller.usage.to_dict()
    assert (usage["cached_input_tokens"], usage["reasoning_tokens"]) == (800, 200)
    assert usage["usd"] == ONE_CALL_USD and usage["spent_usd"] == ONE_CALL_USD
    assert budget.spent_usd == ONE_CALL_USD and budget.reserved_usd == 0.0


def test_the_teach_stage_stats_show_cached_and_reasoning_tokens_and_their_cost(
        serve: Callable[..., UsageServer], katan_run) -> None:
    server = serve(lambda body: BILLED)
    teachers = "".join(teacher_line(name, server.url, model=f"gpt-4o-{name}", key_env=KEY_ENV,
                                    price=PRICE_YAML) for name in ("a", "b"))
    made = katan_run(teachers, name="billed-usage", mistakes=2)
    with CallStore(made.base / "calls.sqlite") as store:
        stats = run_stage(made.run, "teach", base_dir=made.base, store=store)
        stored = list(store.records())
    written = json.loads((made.stage_dir("teach") / "stats.json").read_text())
    calls = 2 * 2  # 2 mistakes, a rationale and a feedback each
    assert server.served == 2 * calls and len(stored) == 2 * calls
    assert {(r.cached_input_tokens, r.reasoning_tokens) for r in stored} == {(800, 200)}
    for name in ("a", "b"):
        usage = written["teachers"][name]
        assert (usage["input_tokens"], usage["cached_input_tokens"]) == (1000 * calls, 800 * calls)
        assert (usage["output_tokens"], usage["reasoning_tokens"]) == (300 * calls, 200 * calls)
        assert usage["usd"] == pytest.approx(calls * ONE_CALL_USD)
    assert stats["usd"] == pytest.approx(2 * calls * ONE_CALL_USD)  # $0.0256


CJK = "东京的一家商店有四十七个苹果卖出了十九个还剩下多少个苹果"  # 28 characters, 84 bytes


def test_the_reservation_never_undercounts_a_dense_prompt() -> None:
    request = ChatRequest(messages=[{"role": "user", "content": CJK * 10}],
                          settings={"max_tokens": 64})
    assert len(CJK * 10) == 280 and len((CJK * 10).encode()) == 840
    four_chars = request.estimated_tokens() - 64  # 280 // 4 + 4 = 74
    assert four_chars == 74
    assert request.max_input_tokens() == 840 + 8 + 64  # bytes, one message, the request
    price = {"input_per_mtok": 1000.0, "output_per_mtok": 0.0}
    assert reserve_usd(price, request, "openai", "gpt-4o-mini") == pytest.approx(912 * 1000 / 1e6)
    # a thinking family's output budget holds its allowance on top of max_tokens
    priced_out = {"input_per_mtok": 0.0, "output_per_mtok": 1e6}
    assert reserve_usd(priced_out, request, "openai", "gpt-4o-mini") == 64.0
    assert reserve_usd(priced_out, request, "openai", "o3-mini") == 64.0 + 8192
    assert reserve_usd(priced_out, request, "hf", "any/model") == 64.0  # no family: max_tokens


def test_the_budget_stops_at_or_below_the_limit_when_the_prompt_is_denser_than_estimated(
        serve: Callable[..., UsageServer], tmp_path) -> None:
    server = serve(byte_count_usage)
    price = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}
    questions = [f"{i:02d}. {CJK * 10}" for i in range(20)]  # 844 bytes each
    one_call = call_usd(price, len(questions[0].encode()), 64)  # what the server bills: $0.908
    limit = 5.5 * one_call  # at 4 characters a token a call looks ~7 times cheaper
    budget = Budget(limit)
    with CallStore(tmp_path / "calls.sqlite") as store:
        caller = caller_on(server, store, price=price, budget=budget, max_tokens=64)

        async def ask_all() -> list[Any]:
            try:
                return await asyncio.gather(*(caller.ask([{"role": "user", "content": q}])
                                              for q in questions), return_exceptions=True)
            finally:
                await caller.provider.aclose()

        results = asyncio.run(ask_all())
        paid = store.count()
    # each call reserved at (844 bytes + 8 + 64) in + 64 out = 980 tokens: $0.98; 5 fit
    assert reserve_usd(price, ChatRequest(messages=[{"role": "user", "content": questions[0]}],
                                          settings={"max_tokens": 64}), "openai",
                       "gpt-4o-mini") == pytest.approx(0.98)
    refused = [r for r in results if isinstance(r, BudgetReached)]
    assert paid == 5 and len(refused) == 15 and server.served == paid  # none sent past the stop
    assert budget.spent_usd <= limit and budget.reserved_usd == pytest.approx(0)
    assert budget.spent_usd == pytest.approx(paid * one_call)
    # the old reservation (4 characters a token) would have let every call through: $18.16
    old_worst = call_usd(price, ChatRequest(messages=[{"role": "user", "content": questions[0]}],
                                            settings={"max_tokens": 64}).estimated_tokens() - 64, 64)
    assert old_worst * 20 < limit < 20 * one_call
