"""The strict OpenAI and Gemini stand-ins, driven by the official SDKs, and fairspec's providers against them.

The stand-ins (``tests/support/strict_openai.py``, ``tests/support/strict_gemini.py``) refuse
what the real APIs refuse for each model family; these tests pin that behaviour, so a test of a
teacher against them fails with the 400 a user would get.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from standin_http import PrefixCache, count_tokens, cut
from strict_gemini import GeminiCall, StrictGemini
from strict_openai import ChatCall, StrictOpenAI

# google-genai defines its own aiohttp session subclass, which aiohttp frowns upon
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

KEY = "fairspec-marker-strict-51c2"
KEY_ENV = "FAIRSPEC_TEST_STRICT_KEY"
ASK = [{"role": "user", "content": "What is 2 + 2?"}]
# about 1,300 tokens under the stand-ins' rule: long enough for prompt caching
LONG = " ".join(f"Fact {i}: the value of item {i} is {i * 7}." for i in range(130))


@pytest.fixture
def oai() -> Iterator[StrictOpenAI]:
    with StrictOpenAI(key=KEY) as server:
        yield server


@pytest.fixture
def client(oai: StrictOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=oai.url, api_key=KEY, max_retries=0)


@pytest.fixture
def gem() -> Iterator[StrictGemini]:
    with StrictGemini(key=KEY) as server:
        yield server


@pytest.fixture
def gclient(gem: StrictGemini) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url=gem.url, retry_options=types.HttpRetryOptions(attempts=1)))


def _refusal(client: openai.OpenAI, **body: Any) -> openai.APIStatusError:
    body.setdefault("messages", ASK)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**body)
    return caught.value


def _gemini_refusal(gclient: genai.Client, model: str, **config: Any) -> genai_errors.APIError:
    with pytest.raises(genai_errors.APIError) as caught:
        gclient.models.generate_content(model=model, contents="What is 2 + 2?",
                                        config=types.GenerateContentConfig(**config))
    return caught.value


def _post(url: str, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- the shared pieces ---------------------------------------------------------------------------


def test_tokens_are_words_and_single_punctuation_and_cut_keeps_whole_tokens() -> None:
    assert count_tokens("What is 2+2?") == 6
    assert cut("The answer is 42.", 3) == "The answer is"
    assert cut("short", 9) == "short" and cut("short", 0) == ""


def test_prefix_cache_counts_hits_from_the_minimum_in_whole_steps() -> None:
    cache = PrefixCache(min_tokens=4, step=2)
    first = list("abcdefghi")
    assert cache.hit("m", first) == 0  # nothing seen yet
    assert cache.hit("m", first) == 8  # 4, 6, 8 are boundaries; 9 is not
    assert cache.hit("m", list("abcdeXXXX")) == 4  # diverges after 5 tokens: the 4-token step
    assert cache.hit("other-model", first) == 0
    assert cache.hit("m", list("abc")) == 0  # below the minimum


# -- OpenAI: the classic chat family -------------------------------------------------------------


def test_gpt4o_accepts_the_classic_body_and_seeds_its_answer(client: openai.OpenAI,
                                                            oai: StrictOpenAI) -> None:
    def ask(seed: int) -> Any:
        return client.chat.completions.create(
            model="gpt-4o", messages=ASK, temperature=0.3, top_p=0.9, presence_penalty=0.1,
            frequency_penalty=0.2, max_tokens=64, seed=seed, logprobs=True, top_logprobs=5,
            stop=["\n\n"])

    first, again, other = ask(7), ask(7), ask(8)
    text = first.choices[0].message.content
    assert text.startswith("You asked: What is 2 + 2?") and first.choices[0].finish_reason == "stop"
    assert again.choices[0].message.content == text
    assert other.choices[0].message.content != text
    usage = first.usage
    assert usage.completion_tokens == count_tokens(text)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert len(first.choices[0].logprobs.content[0].top_logprobs) == 5
    assert oai.bodies[0]["max_tokens"] == 64 and oai.last.headers["authorization"] == f"Bearer {KEY}"


def test_classic_model_cuts_at_max_tokens_with_finish_reason_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-3.5-turbo", messages=ASK, max_tokens=3)
    assert reply.choices[0].message.content == "You asked:"
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 3


def test_a_classic_model_refuses_reasoning_effort_as_an_unrecognized_argument(
        client: openai.OpenAI) -> None:
    error = _refusal(client, model="gpt-4o-mini", reasoning_effort="low")
    assert error.status_code == 400 and error.code is None and error.param is None
    assert error.message.endswith("Unrecognized request argument supplied: reasoning_effort")


def test_an_unknown_argument_is_refused(client: openai.OpenAI) -> None:
    error = _refusal(client, model="gpt-4o", extra_body={"top_k": 5})
    assert error.status_code == 400
    assert "Unrecognized request argument supplied: top_k" in error.message


def test_gpt5_chat_latest_is_a_chat_model_that_takes_a_temperature(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-5-chat-latest", messages=ASK, temperature=0.3)
    assert reply.choices[0].message.content and reply.usage.completion_tokens_details.reasoning_tokens == 0


def test_messages_take_the_developer_role_and_refuse_an_unknown_one(client: openai.OpenAI) -> None:
    ok = client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "developer", "content": "Be brief."}, *ASK])
    assert ok.choices[0].finish_reason == "stop"
    error = _refusal(client, model="gpt-4.1", messages=[{"role": "teacher", "content": "hi"}])
    assert (error.code, error.param) == ("invalid_value", "messages[0].role")
    error = _refusal(client, model="gpt-4.1", messages=[])
    assert (error.code, error.param) == ("empty_array", "messages")


def test_out_of_range_values_are_refused_with_the_reference_ranges(client: openai.OpenAI) -> None:
    assert _refusal(client, model="gpt-4o", temperature=2.5).code == "decimal_above_max_value"
    assert _refusal(client, model="gpt-4o", top_logprobs=3).param == "top_logprobs"  # no logprobs
    assert _refusal(client, model="gpt-4o", logprobs=True, top_logprobs=21).code == "integer_above_max_value"
    assert _refusal(client, model="gpt-4o", stop=list("abcde")).code == "array_above_max_length"


def test_a_wrong_key_and_an_unknown_model_get_openais_errors(oai: StrictOpenAI) -> None:
    wrong = openai.OpenAI(base_url=oai.url, api_key="sk-not-the-key-0000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model="gpt-4o", messages=ASK)
    assert caught.value.code == "invalid_api_key" and "sk-not-the-key" not in caught.value.message
    right = openai.OpenAI(base_url=oai.url, api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        right.chat.completions.create(model="gpt-7-imaginary", messages=ASK)
    assert missing.value.code == "model_not_found"


def test_the_reply_is_pluggable(client: openai.OpenAI, oai: StrictOpenAI) -> None:
    seen: list[ChatCall] = []

    def reply(call: ChatCall) -> str:
        seen.append(call)
        return f"Score: [{call.index + 3}]"

    oai.reply = reply
    answer = client.chat.completions.create(model="gpt-4o", messages=ASK, n=2, seed=11)
    assert [c.message.content for c in answer.choices] == ["Score: [3]", "Score: [4]"]
    assert [(c.family, c.seed, c.prompt) for c in seen] == [("chat", 11, "What is 2 + 2?")] * 2


def test_a_digit_gets_the_other_digits_as_its_top_logprobs(client: openai.OpenAI,
                                                           oai: StrictOpenAI) -> None:
    oai.reply = lambda call: "Score: [4]"
    reply = client.chat.completions.create(model="gpt-4o", messages=ASK, logprobs=True, top_logprobs=3)
    tokens = reply.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == "Score: [4]"
    four = next(t for t in tokens if t.token == "4")
    assert [(alt.token, alt.logprob) for alt in four.top_logprobs] == [("4", -0.05), ("0", -3.0), ("1", -4.0)]


def test_requests_are_recorded_with_the_status_answered_under_any_base_path(oai: StrictOpenAI) -> None:
    url = f"{oai.root}/openai/v1/chat/completions"
    status, _ = _post(url, {"model": "gpt-4o", "messages": ASK})
    assert status == 401  # no key
    status, body = _post(url, {"model": "gpt-4o", "messages": ASK}, Authorization=f"Bearer {KEY}")
    assert status == 200 and body["object"] == "chat.completion"
    assert [(r.path, r.status) for r in oai.received] == [("/openai/v1/chat/completions", 401),
                                                          ("/openai/v1/chat/completions", 200)]


def test_o1_mini_refuses_a_system_message(client: openai.OpenAI) -> None:
    error = _refusal(client, model="o1-mini", messages=[{"role": "system", "content": "Be brief."}, *ASK])
    assert (error.code, error.param) == ("unsupported_value", "messages[0].role")


# -- OpenAI: reasoning families --------------------------------------------------------------------


def test_o3_refuses_a_non_default_temperature_as_an_unsupported_value(client: openai.OpenAI) -> None:
    error = _refusal(client, model="o3", temperature=0.3)
    assert isinstance(error, openai.BadRequestError)
    assert (error.code, error.param) == ("unsupported_value", "temperature")
    assert "does not support 0.3 with this model. Only the default (1) value is supported." in error.message


def test_o3_refuses_max_tokens_and_names_max_completion_tokens(client: openai.OpenAI) -> None:
    error = _refusal(client, model="o3", max_tokens=512)
    assert (error.code, error.param) == ("unsupported_parameter", "max_tokens")
    assert error.body["message"] == ("Unsupported parameter: 'max_tokens' is not supported with this "
                                     "model. Use 'max_completion_tokens' instead.")


@pytest.mark.parametrize(("model", "name", "value"), [
    ("o4-mini", "top_p", 0.5), ("gpt-5-mini", "presence_penalty", 0.1),
    ("gpt-5", "frequency_penalty", 0.2), ("o3", "stop", ["END"]), ("gpt-5-nano", "logprobs", True),
])
def test_reasoning_models_refuse_sampling_parameters(client: openai.OpenAI, model: str, name: str,
                                                     value: Any) -> None:
    error = _refusal(client, model=model, **{name: value})
    assert (error.status_code, error.code, error.param) == (400, "unsupported_parameter", name)


def test_o_series_answers_403_to_a_logprobs_request(client: openai.OpenAI) -> None:
    error = _refusal(client, model="o4-mini", logprobs=True)
    assert isinstance(error, openai.PermissionDeniedError)


def test_reasoning_models_accept_the_default_sampling_values_and_a_seed(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="o3-mini", messages=ASK, temperature=1, top_p=1,
                                           presence_penalty=0, seed=5, max_completion_tokens=2000)
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("model", "effort", "accepted"), [
    ("o3", "high", True), ("o3", "minimal", False), ("o4-mini-2025-04-16", "low", True),
    ("gpt-5", "minimal", True), ("gpt-5", "none", False), ("gpt-5-pro", "medium", False),
    ("gpt-5.1", "none", True), ("gpt-5.1", "minimal", False), ("gpt-5.1", "xhigh", False),
    ("gpt-5.2", "xhigh", True), ("o1-mini", "low", False),
])
def test_reasoning_effort_takes_each_familys_values(client: openai.OpenAI, model: str, effort: str,
                                                    accepted: bool) -> None:
    body = {"model": model, "messages": ASK, "reasoning_effort": effort, "max_completion_tokens": 4000}
    if accepted:
        assert client.chat.completions.create(**body).choices[0].finish_reason == "stop"
    else:
        error = _refusal(client, **body)
        assert error.param == "reasoning_effort"
        assert error.code in ("unsupported_value", "unsupported_parameter")


def test_gpt51_takes_a_temperature_only_while_it_does_not_reason(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="gpt-5.1", messages=ASK, temperature=0.3)
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0
    error = _refusal(client, model="gpt-5.1", temperature=0.3, reasoning_effort="low")
    assert error.code == "unsupported_value"


def test_o3_thinks_through_a_small_budget_and_answers_empty_with_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="o3", messages=ASK, max_completion_tokens=100)
    assert reply.choices[0].message.content == "" and reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens_details.reasoning_tokens == 100
    assert reply.usage.completion_tokens == 100


def test_reasoning_tokens_follow_the_effort_and_count_in_completion_tokens(
        client: openai.OpenAI, oai: StrictOpenAI) -> None:
    oai.set_reasoning_tokens("o3", low=40)
    reply = client.chat.completions.create(model="o3", messages=ASK, reasoning_effort="low",
                                           max_completion_tokens=1000)
    text = reply.choices[0].message.content
    assert text and reply.usage.completion_tokens_details.reasoning_tokens == 40
    assert reply.usage.completion_tokens == 40 + count_tokens(text)
    other = client.chat.completions.create(model="o4-mini", messages=ASK, reasoning_effort="low",
                                           max_completion_tokens=1000)
    assert other.usage.completion_tokens_details.reasoning_tokens == 64  # the default table


def test_cached_tokens_appear_on_the_second_identical_long_prompt(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": LONG}, *ASK]
    first = client.chat.completions.create(model="gpt-4o", messages=messages)
    second = client.chat.completions.create(model="gpt-4o", messages=messages)
    prompt = first.usage.prompt_tokens
    assert prompt > 1024 and first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == 1024 + 128 * ((prompt - 1024) // 128)
    short = client.chat.completions.create(model="gpt-4o", messages=ASK)
    again = client.chat.completions.create(model="gpt-4o", messages=ASK)
    assert short.usage.prompt_tokens_details.cached_tokens == 0
    assert again.usage.prompt_tokens_details.cached_tokens == 0  # under 1024 tokens: never cached


# -- Gemini ----------------------------------------------------------------------------------------


def test_flash_spends_a_small_max_output_tokens_on_thoughts_and_returns_no_text(
        gclient: genai.Client, gem: StrictGemini) -> None:
    reply = gclient.models.generate_content(model="gemini-2.5-flash", contents="What is 2 + 2?",
                                            config=types.GenerateContentConfig(max_output_tokens=32))
    candidate = reply.candidates[0]
    assert candidate.finish_reason == types.FinishReason.MAX_TOKENS
    assert candidate.content.parts is None and reply.text is None
    usage = reply.usage_metadata
    assert usage.thoughts_token_count == 32 and usage.candidates_token_count is None
    assert usage.total_token_count == usage.prompt_token_count + 32
    assert gem.last.path == "/v1/models/gemini-2.5-flash:generateContent"


def test_flash_with_thinking_off_answers_within_the_same_budget(gclient: genai.Client) -> None:
    reply = gclient.models.generate_content(
        model="gemini-2.5-flash", contents="What is 2 + 2?",
        config=types.GenerateContentConfig(max_output_tokens=32, seed=3,
                                           thinking_config=types.ThinkingConfig(thinking_budget=0)))
    assert reply.text.startswith("You asked: What is 2 + 2?")
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata.thoughts_token_count is None
    assert reply.usage_metadata.candidates_token_count == count_tokens(reply.text)


def test_a_budget_caps_the_thoughts_and_include_thoughts_returns_a_thought_part(
        gclient: genai.Client) -> None:
    reply = gclient.models.generate_content(
        model="gemini-2.5-pro", contents="What is 2 + 2?",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(
            thinking_budget=200, include_thoughts=True)))
    assert reply.usage_metadata.thoughts_token_count == 200
    parts = reply.candidates[0].content.parts
    assert [bool(p.thought) for p in parts] == [True, False]


@pytest.mark.parametrize(("model", "thinking", "message"), [
    ("gemini-2.5-pro", {"thinking_budget": 0},
     "Budget 0 is invalid. This model only works in thinking mode."),
    ("gemini-2.5-pro", {"thinking_budget": 64}, "The thinking budget (64) is invalid."),
    ("gemini-2.5-flash", {"thinking_budget": 30000}, "The thinking budget (30000) is invalid."),
    ("gemini-2.5-flash-lite", {"thinking_budget": 256}, "The thinking budget (256) is invalid."),
    ("gemini-2.5-flash", {"thinking_level": "LOW"}, "Thinking level is not supported for this model."),
    ("gemini-3-pro-preview", {"thinking_budget": 1024, "thinking_level": "LOW"},
     "You can only set only one of thinking budget and thinking level."),
    ("gemini-3-pro-preview", {"thinking_level": "MINIMAL"},
     "Thinking level MINIMAL is not supported for this model."),
    ("gemini-2.0-flash", {"thinking_budget": 1024}, "thinking_config is not supported."),
])
def test_thinking_config_is_refused_where_the_family_refuses_it(
        gclient: genai.Client, model: str, thinking: dict[str, Any], message: str) -> None:
    error = _gemini_refusal(gclient, model, thinking_config=types.ThinkingConfig(**thinking))
    assert (error.code, error.status, error.message) == (400, "INVALID_ARGUMENT", message)


def test_gemini3_thinks_by_level_and_takes_a_legacy_budget(gclient: genai.Client) -> None:
    def thoughts(model: str, **thinking: Any) -> int | None:
        config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(**thinking))
        reply = gclient.models.generate_content(model=model, contents="hi", config=config)
        return reply.usage_metadata.thoughts_token_count

    assert thoughts("gemini-3-pro-preview", thinking_level="LOW") == 256
    assert thoughts("gemini-3-flash-preview", thinking_level="MINIMAL") == 32
    assert thoughts("gemini-3-pro-preview", thinking_budget=300) == 300
    reply = gclient.models.generate_content(model="gemini-3-pro-preview", contents="hi")
    assert reply.usage_metadata.thoughts_token_count == 1024  # default level: high


def test_flash_lite_does_not_think_unless_asked(gclient: genai.Client) -> None:
    plain = gclient.models.generate_content(model="gemini-2.5-flash-lite", contents="hi")
    assert plain.usage_metadata.thoughts_token_count is None
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=600))
    thinking = gclient.models.generate_content(model="gemini-2.5-flash-lite", contents="hi", config=config)
    assert thinking.usage_metadata.thoughts_token_count == 600


def test_generation_config_values_are_checked(gclient: genai.Client) -> None:
    assert _gemini_refusal(gclient, "gemini-2.0-flash", temperature=2.5).code == 400
    assert _gemini_refusal(gclient, "gemini-2.0-flash", response_logprobs=True, logprobs=21).code == 400
    assert _gemini_refusal(gclient, "gemini-2.0-flash", candidate_count=9).code == 400
    assert _gemini_refusal(gclient, "gemini-2.0-flash", max_output_tokens=9000).code == 400
    assert "Logprobs is not enabled" in _gemini_refusal(
        gclient, "gemini-3-pro-preview", response_logprobs=True, logprobs=3).message
    reply = gclient.models.generate_content(
        model="gemini-2.0-flash", contents="What is 2 + 2?",
        config=types.GenerateContentConfig(response_logprobs=True, logprobs=4, seed=1, candidate_count=2))
    result = reply.candidates[1].logprobs_result
    assert len(reply.candidates) == 2 and len(result.top_candidates[0].candidates) == 4
    assert "".join(c.token for c in result.chosen_candidates) == reply.candidates[1].content.parts[0].text


def test_an_unknown_generation_config_field_is_an_invalid_argument(gem: StrictGemini) -> None:
    url = f"{gem.root}/v1beta/models/gemini-2.5-flash:generateContent?key={KEY}"
    contents = [{"role": "user", "parts": [{"text": "hi"}]}]
    status, body = _post(url, {"contents": contents, "generationConfig": {"maxTokens": 5}})
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["message"] == ('Invalid JSON payload received. Unknown name "maxTokens" at '
                                        "'generation_config': Cannot find field.")
    # proto JSON takes the snake_case field names too
    snake = {"max_output_tokens": 5, "thinking_config": {"thinking_budget": 0}}
    status, body = _post(url, {"contents": contents, "generation_config": snake})
    assert status == 200 and body["candidates"][0]["finishReason"] == "MAX_TOKENS"


def test_gemini_keys_and_models_are_checked(gem: StrictGemini) -> None:
    url = f"{gem.root}/v1beta/models/gemini-2.5-flash:generateContent"
    contents = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert _post(url, contents)[0] == 403
    status, body = _post(url, contents, **{"x-goog-api-key": "wrong"})
    assert (status, body["error"]["message"]) == (400, "API key not valid. Please pass a valid API key.")
    assert _post(url, contents, Authorization=f"Bearer {KEY}")[0] == 200
    status, body = _post(f"{gem.root}/v1beta/models/gemini-9-ultra:generateContent?key={KEY}", contents)
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"
    status, body = _post(url + f"?key={KEY}", {"contents": [{"role": "system", "parts": [{"text": "x"}]}]})
    assert status == 400 and "valid role" in body["error"]["message"]


def test_implicit_caching_counts_a_repeated_long_prefix(gclient: genai.Client, gem: StrictGemini) -> None:
    def cached(model: str, text: str) -> tuple[int, int | None]:
        reply = gclient.models.generate_content(model=model, contents=text)
        return reply.usage_metadata.prompt_token_count, reply.usage_metadata.cached_content_token_count

    prompt, first = cached("gemini-2.5-flash", LONG)
    assert 1024 <= prompt < 2048 and first is None
    assert cached("gemini-2.5-flash", LONG) == (prompt, prompt)
    assert cached("gemini-2.5-pro", LONG)[1] is None and cached("gemini-2.5-pro", LONG)[1] is None  # < 2048
    assert cached("gemini-2.0-flash", LONG)[1] is None and cached("gemini-2.0-flash", LONG)[1] is None


def test_the_gemini_reply_is_pluggable(gclient: genai.Client, gem: StrictGemini) -> None:
    seen: list[GeminiCall] = []

    def reply(call: GeminiCall) -> str:
        seen.append(call)
        return f"{call.family}:{call.system}:{call.prompt}"

    gem.reply = reply
    config = types.GenerateContentConfig(system_instruction="Be brief.", seed=4,
                                         thinking_config=types.ThinkingConfig(thinking_budget=0))
    answer = gclient.models.generate_content(model="gemini-2.5-flash", contents="hi", config=config)
    assert answer.text == "2.5-flash:Be brief.:hi"
    assert [(c.seed, c.index, c.contents) for c in seen] == [(4, 0, [{"role": "user", "text": "hi"}])]


# -- fairspec's providers against the stand-ins --------------------------------------------------

# What providers/openai.py::settings_body sent for every model before request shapes (issue #32)
PAPER_BODY = {"temperature": 0.8, "max_tokens": 512, "top_p": 1.0, "presence_penalty": 0.0,
              "frequency_penalty": 0.0}


def test_the_pre_issue_32_request_body_is_refused_by_a_reasoning_model(client: openai.OpenAI) -> None:
    error = _refusal(client, model="o3", extra_body=PAPER_BODY)
    assert (error.status_code, error.code, error.param) == (400, "unsupported_parameter", "max_tokens")
    body = {k: v for k, v in PAPER_BODY.items() if k != "max_tokens"}
    error = _refusal(client, model="gpt-5", max_completion_tokens=512, extra_body=body)
    assert (error.code, error.param) == ("unsupported_value", "temperature")


def test_openai_provider_gets_an_answer_from_a_reasoning_model(
        oai: StrictOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    from fairspec.providers import ChatRequest
    from fairspec.providers.openai import OpenAIProvider

    monkeypatch.setenv(KEY_ENV, KEY)

    async def main() -> Any:
        async with OpenAIProvider(name="o3", model="o3", base_url=oai.url, api_key_env=KEY_ENV,
                                  max_retries=0) as provider:
            return await provider.complete(ChatRequest(ASK))

    result = asyncio.run(main())
    assert oai.last.status == 200, oai.last.reply
    assert "max_tokens" not in oai.last.body and "temperature" not in oai.last.body
    assert result.status == "ok" and result.text.startswith("You asked:")


def test_gemini_provider_gets_an_answer_from_a_thinking_model(
        gem: StrictGemini, monkeypatch: pytest.MonkeyPatch) -> None:
    from fairspec.providers import ChatRequest
    from fairspec.providers.gemini import GeminiProvider

    monkeypatch.setenv(KEY_ENV, KEY)

    async def main() -> Any:
        async with GeminiProvider(name="gemini", model="gemini-2.5-flash", base_url=gem.url,
                                  api_key_env=KEY_ENV, max_retries=0) as provider:
            return await provider.complete(ChatRequest(ASK))

    result = asyncio.run(main())
    # before request shapes: maxOutputTokens 512 with the (dynamic, 1024-token) thoughts inside
    # it, so the reply came back cut to nothing with MAX_TOKENS
    assert gem.last.status == 200, gem.last.reply
    assert result.status == "ok" and result.text.startswith("You asked:")
    assert result.finish_reason == "STOP"
