"""Gemini log-probabilities (``review.scoring: logprobs``): the ``logprobs_result`` mapping
on a built response, the request's config, and the fallback against llm-katan's Gemini API
(which returns no ``logprobsResult``)."""

from __future__ import annotations

import asyncio
import math

import pytest
from google.genai import types

from fairspec.providers import ChatRequest
from fairspec.providers.gemini import GeminiProvider, _tokens, generation_config
from fairspec.review.logprobs import TOP_LOGPROBS, TokenChoices, read_stated
from fairspec.review.score import parse_score, score_span

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

KEY_ENV = "FAIRSPEC_TEST_GEMINI_KEY"

# A reply "Overall: [4]" token by token; at "4" the model also held these candidates
# (token, probability). "four" is no score token; " 3" and "3" both count for 3.
CHOSEN = ["Overall", ":", " [", "4", "]"]
AT_SCORE = [("4", 0.40), ("3", 0.20), (" 3", 0.05), ("5", 0.10), ("four", 0.15), ("2", 0.02)]
SCORE_AT = CHOSEN.index("4")


def _candidate(token: str, probability: float) -> types.LogprobsResultCandidate:
    return types.LogprobsResultCandidate(token=token, log_probability=math.log(probability))


def _response(with_logprobs: bool = True) -> types.GenerateContentResponse:
    text = "".join(CHOSEN)
    logprobs = None
    if with_logprobs:
        chosen = [_candidate(t, dict(AT_SCORE)["4"] if t == "4" else 0.9) for t in CHOSEN]
        tops = [
            types.LogprobsResultTopCandidates(
                candidates=[_candidate(t, p) for t, p in AT_SCORE] if i == SCORE_AT
                else [_candidate(t, 0.9), _candidate("x", 0.05)]
            )
            for i, t in enumerate(CHOSEN)
        ]
        logprobs = types.LogprobsResult(chosen_candidates=chosen, top_candidates=tops)
    candidate = types.Candidate(
        content=types.Content(role="model", parts=[types.Part(text=text)]),
        finish_reason=types.FinishReason.STOP,
        logprobs_result=logprobs,
    )
    return types.GenerateContentResponse(candidates=[candidate])


def test_tokens_map_chosen_and_top_candidates_to_token_choices() -> None:
    tokens = _tokens(_response())
    assert tokens is not None
    assert [t.text for t in tokens] == CHOSEN
    assert all(isinstance(t, TokenChoices) for t in tokens)
    at = tokens[SCORE_AT]
    # every top candidate, with its log-probability, plus the chosen token itself
    assert [(tok, round(math.exp(lp), 9)) for tok, lp in at.alternatives[:-1]] == [
        (t, round(p, 9)) for t, p in AT_SCORE
    ]
    assert at.alternatives[-1][0] == "4"
    assert tokens[0].alternatives[0][0] == "Overall"


def test_read_stated_on_gemini_tokens_gives_the_renormalised_distribution() -> None:
    response = _response()
    text = response.candidates[0].content.parts[0].text
    assert parse_score(text) == 4
    span = score_span(text, (1, 5))
    assert span is not None and text[span[0]] == "4"

    reading = read_stated(text, _tokens(response), (1, 5))
    assert reading is not None and reading.how == "stated"

    by_score = {s: 0.0 for s in range(1, 6)}
    for token, probability in AT_SCORE:
        if token.strip() in {str(s) for s in by_score}:
            by_score[int(token.strip())] += probability
    mass = sum(by_score.values())
    expected = {s: p / mass for s, p in by_score.items()}
    assert reading.distribution == pytest.approx(expected, abs=1e-9)
    assert reading.mass == pytest.approx(mass, abs=1e-9)
    assert sum(reading.distribution.values()) == pytest.approx(1.0)
    assert reading.expected == pytest.approx(sum(s * p for s, p in expected.items()))


def test_tokens_are_none_without_logprobs_result() -> None:
    assert _tokens(_response(with_logprobs=False)) is None
    assert _tokens(types.GenerateContentResponse(candidates=[])) is None


def test_config_asks_for_logprobs_only_with_score_logprobs() -> None:
    asked = generation_config(ChatRequest([{"role": "user", "content": "x"}],
                                          {"score_logprobs": [1, 5]}).settings, None)
    assert asked.response_logprobs is True and asked.logprobs == TOP_LOGPROBS
    plain = generation_config(ChatRequest([{"role": "user", "content": "x"}]).settings, None)
    assert plain.response_logprobs is None and plain.logprobs is None


def test_gemini_on_katan_falls_back_to_the_text_score(katan, monkeypatch) -> None:
    """llm-katan's Gemini API accepts responseLogprobs but returns no logprobsResult: the
    reply's text (which states a score: the echo repeats the prompt) comes back, with
    score_logprobs None, so the review reads its text score."""
    monkeypatch.setenv(KEY_ENV, "fairspec-marker-gem-logprobs")
    request = ChatRequest(
        [{"role": "user", "content": "Review the rationale. Reply with the score, like [4]."}],
        {"temperature": 0, "max_tokens": 16, "score_logprobs": [1, 5]},
    )

    async def main():
        async with GeminiProvider(name="gemini", model="gemini-1.0-pro",
                                  base_url=katan.gemini_url, api_key_env=KEY_ENV) as provider:
            return await provider.complete(request)

    result = asyncio.run(main())
    assert result.status == "ok" and result.attempts == 1
    assert "User: Review the rationale." in result.text
    assert score_span(result.text, (1, 5)) is not None  # a score was stated...
    assert result.score_logprobs is None  # ...but no log-probabilities came to read it from
