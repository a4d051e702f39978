"""AnthropicProvider through the official SDK against the strict Messages API stand-in
(tests/support/strict_anthropic.py), which refuses what the real API refuses."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import anthropic
import pytest
from strict_anthropic import StrictAnthropic, default_answer, tokens

from fairspec.providers import ChatRequest, FatalProviderError, RetryableExhausted, provider_class
from fairspec.providers.anthropic import AnthropicProvider, to_anthropic

KEY_ENV = "FAIRSPEC_TEST_ANTHROPIC_KEY"
KEY = "sk-ant-api03-fairspecmarker7f3a9c1e5b"
PAPER = {"temperature": 0.8, "top_p": 1.0, "max_tokens": 512}  # Table 7's defaults


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def server() -> Iterator[StrictAnthropic]:
    with StrictAnthropic(key=KEY) as running:
        yield running


def provider(server: StrictAnthropic, model: str = "claude-sonnet-4-5", **options) -> AnthropicProvider:
    settings = {"api_key_env": KEY_ENV, "backoff_s": 0.01, "backoff_max_s": 0.05, "max_retries": 3}
    settings.update(options)
    return AnthropicProvider(name="claude", model=model, base_url=server.url, **settings)


def ask(text: str, **settings: object) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], {**PAPER, **settings})


def complete(teacher: AnthropicProvider, *requests: ChatRequest) -> list:
    async def main():
        async with teacher:
            return [await teacher.complete(r) for r in requests]

    return asyncio.run(main())


def test_the_stand_in_refuses_temperature_with_top_p_for_a_4_5_model(server) -> None:
    """The rule the provider must respect is alive: the same body with both is a 400."""
    client = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 512, "temperature": 0.8, "top_p": 1.0,
            "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.BadRequestError, match="cannot both be specified"):
        client.post("/v1/messages", body=body, cast_to=object)
    body["model"] = "claude-sonnet-4-0"  # a 4.0 model takes both
    client.post("/v1/messages", body=body, cast_to=object)
    assert len(server.accepted) == 1


def test_paper_defaults_on_claude_sonnet_4_5_send_temperature_only_and_get_an_answer(server) -> None:
    teacher = provider(server)
    request = ChatRequest([{"role": "system", "content": "You are a teacher."},
                           {"role": "system", "content": "Be brief."},
                           {"role": "user", "content": "What is 2 + 3?"}],
                          {**PAPER, "presence_penalty": 0.5, "seed": 7})
    [result] = complete(teacher, request)
    [body] = server.accepted
    assert result.status == "ok" and result.finish_reason == "end_turn" and result.attempts == 1
    assert result.text == default_answer(body) and "What is 2 + 3?" in result.text
    assert body["temperature"] == 0.8 and body["max_tokens"] == 512
    assert not {"top_p", "presence_penalty", "frequency_penalty", "seed"} & set(body)
    assert body["system"][0]["text"] == "You are a teacher.\n\nBe brief."
    assert result.output_tokens == tokens(result.text)
    assert server.refused == []


def test_a_moved_top_p_is_sent_alone_to_claude_opus_4_1(server) -> None:
    [result] = complete(provider(server, "claude-opus-4-1"), ask("q", top_p=0.9))
    [body] = server.accepted
    assert result.status == "ok" and body["top_p"] == 0.9 and "temperature" not in body


def test_thinking_2048_gets_2048_on_top_of_the_reply_budget_and_a_text_reply(server) -> None:
    teacher = provider(server)
    request = ask("Why is the sky blue?", thinking=2048)
    prepared = teacher._prepare(request)

    async def main():
        async with teacher:
            return await teacher._send(prepared), await teacher.complete(request)

    reply, result = asyncio.run(main())
    body = server.accepted[-1]
    assert body["max_tokens"] == 512 + 2048
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "temperature" not in body and "top_p" not in body  # thinking allows neither here
    assert result.status == "ok" and result.text == default_answer(body)
    assert "think" not in result.text  # the thinking block is not the answer
    assert reply.reasoning_tokens == 2048 and reply.output_tokens == 2048 + tokens(reply.text)
    assert result.reasoning_tokens == 2048 and result.output_tokens == reply.output_tokens


def test_a_reply_cut_short_while_thinking_is_recorded_truncated(server) -> None:
    server.thinking_spend = 10_000  # thinks past max_tokens
    [result] = complete(provider(server), ask("hard question", thinking=2048))
    assert result.status == "truncated" and result.finish_reason == "max_tokens"
    assert result.text == "" and result.output_tokens == 512 + 2048


def test_a_long_answer_is_truncated_and_a_stop_sequence_ends_it(server) -> None:
    [short, stopped] = complete(provider(server), ask("x " * 200, max_tokens=5),
                                ask("hello", stop=["to:"]))
    assert short.status == "truncated" and short.finish_reason == "max_tokens"
    assert tokens(short.text) == 5
    assert stopped.finish_reason == "stop_sequence" and stopped.status == "ok"
    assert server.accepted[1]["stop_sequences"] == ["to:"]
    assert stopped.text == default_answer(server.accepted[1]).split("to:")[0]


def test_a_refusal_is_recorded_with_its_stop_reason(server) -> None:
    server.answer = lambda body: None
    [result] = complete(provider(server), ask("something it declines"))
    assert result.finish_reason == "refusal" and result.status == "empty" and result.text == ""
    assert result.attempts == 1


def test_a_529_then_an_answer_is_retried_and_counted(server) -> None:
    server.fail_calls(1, 529)
    [result] = complete(provider(server), ask("q"))
    assert result.status == "ok" and result.attempts == 2
    assert "529" in result.last_error and "Overloaded" in result.last_error
    assert server.calls == 2 and server.refused == [(529, "Overloaded")]
    assert [(r.path, r.status) for r in server.received] == [("/v1/messages", 529),
                                                             ("/v1/messages", 200)]


def test_a_429_waits_its_retry_after(server) -> None:
    server.fail_calls(1, 429, retry_after=0.6)
    started = time.perf_counter()
    [result] = complete(provider(server), ask("q"))
    assert result.attempts == 2 and "429" in result.last_error
    assert time.perf_counter() - started >= 0.6  # not the 0.01 s back-off


def test_persistent_overload_gives_up_after_the_retries(server) -> None:
    server.fail_calls(10, 529)
    with pytest.raises(RetryableExhausted):
        complete(provider(server, max_retries=2), ask("q"))
    assert server.calls == 3


def test_a_400_is_fatal_with_the_servers_message_and_no_key(server) -> None:
    # the field name carries the key: the server's message quotes it back
    with pytest.raises(FatalProviderError) as caught:
        complete(provider(server), ask("q", extra_body={KEY: 1}))
    error = caught.value
    assert error.status == 400 and "Extra inputs are not permitted" in str(error)
    assert KEY not in str(error) and KEY not in repr(error) and KEY not in (error.hint or "")
    assert server.calls == 1  # never retried


def test_thinking_with_top_k_through_extra_body_is_refused_as_the_api_does(server) -> None:
    with pytest.raises(FatalProviderError, match="top_k"):
        complete(provider(server), ask("q", thinking=1024, extra_body={"top_k": 5}))


def test_a_wrong_key_is_fatal_and_names_the_variable(server, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-ant-wrong-key-0000")
    with pytest.raises(FatalProviderError) as caught:
        complete(provider(server), ask("q"))
    assert caught.value.status == 401 and KEY_ENV in str(caught.value.hint)
    assert "sk-ant-wrong-key-0000" not in str(caught.value)


def test_usage_counts_cache_writes_then_reads_of_the_shared_prefix(server) -> None:
    instructions = "Review the rationale below and score it. " * 140  # 1120 tokens
    teacher = provider(server)
    requests = [ChatRequest([{"role": "system", "content": instructions},
                             {"role": "user", "content": f"rationale {i}"}], PAPER)
                for i in range(2)]

    async def main():
        async with teacher:
            return [await teacher._send(teacher._prepare(r)) for r in requests]

    first, second = asyncio.run(main())
    prefix = tokens(instructions)
    assert prefix >= 1024  # Sonnet 4.5's minimum cacheable length
    assert first.cached_input_tokens == 0 and second.cached_input_tokens == prefix
    # input_tokens is every input token of the call, cache reads and writes included
    assert first.input_tokens == second.input_tokens > prefix
    assert first.total_tokens == first.input_tokens + first.output_tokens


def test_a_prefix_below_the_minimum_is_not_cached(server) -> None:
    requests = [ChatRequest([{"role": "system", "content": "Short instructions."},
                             {"role": "user", "content": "q"}], PAPER)] * 2
    teacher = provider(server)

    async def main():
        async with teacher:
            return [await teacher._send(teacher._prepare(r)) for r in requests]

    assert [r.cached_input_tokens for r in asyncio.run(main())] == [0, 0]


def test_a_call_past_its_timeout_is_retried_then_given_up(server) -> None:
    server.delay_s = 0.5
    with pytest.raises(RetryableExhausted, match="timed out after 0.2s"):
        complete(provider(server, timeout_s=0.2, max_retries=1), ask("q"))
    assert server.calls == 2


def test_a_refused_connection_is_retried_then_given_up() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    teacher = AnthropicProvider(name="claude", model="claude-sonnet-4-5",
                                base_url=f"http://127.0.0.1:{port}", api_key_env=KEY_ENV,
                                max_retries=1, backoff_s=0.01, backoff_max_s=0.02)
    with pytest.raises(RetryableExhausted, match="connection error"):
        complete(teacher, ask("q"))


def test_messages_become_system_and_turns_with_breakpoints_closing_prefixes_only() -> None:
    system, turns = to_anthropic([{"role": "system", "content": "S"},
                                  {"role": "user", "content": "U1"},
                                  {"role": "assistant", "content": "A1"},
                                  {"role": "user", "content": "U2"}])
    assert system == [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    marked = [t["content"][0]["text"] for t in turns if "cache_control" in t["content"][0]]
    assert marked == ["U1"]
    # a head and a tail: one turn of two blocks, the head closed by a breakpoint
    _, [turn] = to_anthropic([{"role": "user", "content": "head"}, {"role": "user", "content": "tail"}])
    assert [(b["text"], "cache_control" in b) for b in turn["content"]] == [("head", True),
                                                                             ("tail", False)]
    # the whole prompt is never a breakpoint: no other call would read it
    _, [turn] = to_anthropic([{"role": "user", "content": "U"}])
    assert "cache_control" not in turn["content"][0]
    system, turns = to_anthropic([{"role": "system", "content": "S"},
                                  {"role": "user", "content": "U"}], cache=False)
    assert "cache_control" not in system[0] and "cache_control" not in turns[0]["content"][0]
    with pytest.raises(ValueError, match="only system"):
        to_anthropic([{"role": "system", "content": "S"}])


def test_a_shared_head_sent_as_its_own_message_is_read_from_the_cache(server) -> None:
    head = "Question: how many apples are left after the trades below? " * 100  # 1200 tokens
    teacher = provider(server)
    requests = [ChatRequest([{"role": "user", "content": head},
                             {"role": "user", "content": f"Rationale {i}: ... Score it."}], PAPER)
                for i in range(3)]

    async def main():
        async with teacher:
            return [await teacher._send(teacher._prepare(r)) for r in requests]

    replies = asyncio.run(main())
    assert [r.cached_input_tokens for r in replies] == [0, tokens(head), tokens(head)]
    assert len({r.text for r in replies}) == 3  # each answer reads its whole prompt


def test_a_review_prompts_head_is_cached_by_its_marked_prefix(server) -> None:
    """What the review stage sends: one user message per review and, apart, how many of its
    characters every review of the question shares (``ChatRequest.cache_prefix``)."""
    from fairspec.prompting import review_head, review_prompt
    from fairspec.resources import resource_root

    template = (resource_root() / "prompts" / "review.j2").read_text()
    mistake = {"fields": {"question": "How many apples are left after the trades below? " * 100},
               "gold_text": "7"}
    prompts = [review_prompt(template, mistake, f"Rationale {i}: 3 + 4 = 7.") for i in range(3)]
    head = review_head(template, mistake, prompts[0])
    assert head is not None and prompts[0][:head].endswith("Rationale: ")
    assert len({p[:head] for p in prompts}) == 1 and len({p[head:] for p in prompts}) == 3
    teacher = provider(server)
    requests = [ChatRequest([{"role": "user", "content": p}], PAPER, cache_prefix=head)
                for p in prompts]

    async def main():
        async with teacher:
            return [await teacher._send(teacher._prepare(r)) for r in requests]

    replies = asyncio.run(main())
    assert replies[0].cached_input_tokens == 0
    assert replies[1].cached_input_tokens == replies[2].cached_input_tokens == tokens(prompts[0][:head])
    # without the mark nothing is cached: no breakpoint closes a prefix of the prompt
    plain = ChatRequest([{"role": "user", "content": prompts[0]}], PAPER)
    assert "cache_control" not in json.dumps(teacher._prepare(plain)["messages"])


def test_the_registry_builds_it_and_its_repr_names_no_key(server) -> None:
    cls = provider_class("anthropic")
    assert cls is AnthropicProvider
    teacher = provider(server)
    assert KEY not in repr(teacher) and "claude-sonnet-4-5" in repr(teacher)


@pytest.mark.parametrize(("change", "refusal"), [
    ({"max_tokens": None}, "max_tokens: Field required"),
    ({"model": None}, "model: Field required"),
    ({"presence_penalty": 0.0}, "presence_penalty: Extra inputs are not permitted"),
    ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
    ({"temperature": 0.5, "top_p": 0.9}, "cannot both be specified"),
    ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "greater than or equal to 1024"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 1024},
     "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048,
      "temperature": 0.8}, "`temperature` may only be set to 1 when thinking is enabled"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048,
      "top_p": 0.9}, "`top_p` must be greater than or equal to 0.95"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
     "text content blocks must be non-empty"),
    ({"system": [{"type": "text", "text": f"s{i}", "cache_control": {"type": "ephemeral"}}
                 for i in range(5)]}, "A maximum of 4 blocks with cache_control"),
])
def test_the_stand_in_refuses_what_the_api_refuses(server, change, refusal) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    client = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", body=body, cast_to=object)
    assert refusal in str(caught.value) and caught.value.type == "invalid_request_error"


def test_the_stand_in_wants_the_version_header_and_the_key(server) -> None:
    no_version = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0,
                                     default_headers={"anthropic-version": anthropic.Omit()})
    body = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(anthropic.BadRequestError, match="anthropic-version"):
        no_version.post("/v1/messages", body=body, cast_to=object)
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(api_key="sk-ant-other", base_url=server.url, max_retries=0).post(
            "/v1/messages", body=body, cast_to=object)
    assert server.accepted == []
