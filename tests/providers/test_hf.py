"""HfProvider with the real tiny model (SmolLM2-135M): batching, greedy, truncation, close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fairspec.providers import ChatRequest, ChatResult
from fairspec.providers.hf import HfProvider

pytestmark = pytest.mark.slow


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[ChatRequest]]:
    """Every batch handed to ``generate``, in order (the real generation still runs)."""
    seen: list[list[ChatRequest]] = []
    real = HfProvider._generate

    def spy(self: HfProvider, requests: list[ChatRequest]) -> Any:
        seen.append(list(requests))
        return real(self, requests)

    monkeypatch.setattr(HfProvider, "_generate", spy)
    return seen


def ask(text: str, **settings: Any) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], {"temperature": 0.0, **settings})


def provider(path: str) -> HfProvider:
    return HfProvider(name="smol", model="builtin:smollm2-135m-instruct", model_path=path)


def answers(path: str, requests: list[ChatRequest]) -> list[ChatResult]:
    async def main() -> list[ChatResult]:
        async with provider(path) as hf:
            return await asyncio.gather(*(hf.complete(r) for r in requests))

    return asyncio.run(main())


def test_concurrent_calls_are_answered_in_one_batch_with_token_counts(tiny_model, batches) -> None:
    prompts = ["Say hi.", "Name a color.", "What is 2 + 2?",
               "Write one short sentence about the sea, the sky and the wind over the hills."]
    results = answers(tiny_model, [ask(p, max_tokens=8) for p in prompts])
    assert len(batches) == 1 and len(batches[0]) == 4
    for result in results:
        assert result.text.strip() and result.attempts == 1
        assert 1 <= result.output_tokens <= 8 and result.input_tokens > 0
        assert result.status == ("truncated" if result.finish_reason == "length" else "ok")
        assert result.finish_reason in ("stop", "length")
    # the longest prompt is the longest input, left padding notwithstanding
    assert results[3].input_tokens > max(r.input_tokens for r in results[:3])


def test_greedy_is_deterministic_across_calls(tiny_model) -> None:
    request = ask("Name three fruits.", max_tokens=12)
    first = answers(tiny_model, [request])[0]
    second = answers(tiny_model, [request])[0]
    assert first.text and first.text == second.text
    assert (first.input_tokens, first.output_tokens) == (second.input_tokens, second.output_tokens)


def test_a_tiny_token_budget_is_truncated(tiny_model) -> None:
    result = answers(tiny_model, [ask("Tell me a long story about a dragon.", max_tokens=2)])[0]
    assert result.status == "truncated" and result.finish_reason == "length"
    assert result.output_tokens == 2 and result.text.strip()


def test_requests_with_different_settings_are_batched_apart_and_all_answered(
        tiny_model, batches) -> None:
    greedy = {"max_tokens": 3}
    sampled = {"max_tokens": 5, "temperature": 0.9, "seed": 7}
    requests = [ask("Say hi.", **greedy), ask("Count to ten.", **sampled),
                ask("Name a color.", **greedy), ask("Name an animal.", **sampled)]
    results = answers(tiny_model, requests)
    assert all(r.text.strip() for r in results)
    for request, result in zip(requests, results, strict=True):
        assert 1 <= result.output_tokens <= request.settings.max_tokens
    assert sorted(len(b) for b in batches) == [2, 2]
    for batch in batches:  # one generate call never mixes settings
        assert len({r.settings for r in batch}) == 1


def test_aclose_leaves_no_task_behind(tiny_model) -> None:
    async def main() -> tuple[ChatResult, set]:
        hf = provider(tiny_model)
        result = await hf.complete(ask("Say hi.", max_tokens=2))
        await hf.aclose()
        await hf.aclose()  # a second close is harmless
        return result, asyncio.all_tasks() - {asyncio.current_task()}

    result, left = asyncio.run(main())
    assert result.text and not left


def test_aclose_ends_the_calls_still_waiting(tiny_model) -> None:
    async def main() -> bool:
        hf = provider(tiny_model)
        waiting = [asyncio.ensure_future(hf.complete(ask(t, max_tokens=4)))
                   for t in ("Say hi.", "Say yo.")]
        await asyncio.sleep(0.2)  # the worker has taken them
        await hf.aclose()
        try:  # an answer, an error or a cancellation: anything but waiting forever
            await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 3)
        except TimeoutError:
            return False
        return True

    assert asyncio.run(main())


REVIEW = ("Imagine you are a reviewer. Question: Tom has 3 apples and buys 4 more. How many "
          "apples does he have?\nRationale: 3 + 4 = 7. The answer is 7.\nGive one number from "
          "1 to 5 in square brackets, e.g. [4].")


def _next_token_scores(path: str, ids: list[int]) -> dict[int, float]:
    """Independently: one unbatched forward over ``ids``, softmax over the whole vocabulary,
    the probabilities of the tokens "1".."5", renormalised."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.inference_mode():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
    by_score = {s: float(sum(probs[i] for i in range(len(tokenizer))
                             if tokenizer.decode([i]).strip() == str(s))) for s in range(1, 6)}
    total = sum(by_score.values())
    return {s: p / total for s, p in by_score.items()}


def test_a_reviewer_that_wrote_no_score_is_scored_with_one_forced_pass(tiny_model) -> None:
    from transformers import AutoTokenizer

    from fairspec.review.logprobs import SCORE_CUE, ScoreReading
    from fairspec.review.score import parse_score

    [result] = answers(tiny_model, [ask(REVIEW, max_tokens=24, score_logprobs=[1, 5])])
    if parse_score(result.text) is not None:
        pytest.skip(f"the tiny model stated a score this time: {result.text!r}")
    reading = ScoreReading.from_json(result.score_logprobs)
    assert reading.how == "forced"
    assert 0.0 < reading.mass <= 1.0
    # the same distribution as a plain forward pass over prompt + reply + the score cue
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": REVIEW}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt + result.text, add_special_tokens=False)["input_ids"]
    ids += tokenizer.encode(SCORE_CUE, add_special_tokens=False)
    expected = _next_token_scores(tiny_model, ids)
    assert reading.distribution == pytest.approx(expected, abs=1e-4)


def test_a_stated_score_is_read_at_its_token_in_a_padded_batch(tiny_model) -> None:
    """read_scores on replies of different lengths (left padding, position ids) equals an
    unbatched forward up to the score's token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fairspec.providers.hf import read_scores

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": REVIEW}], tokenize=False,
                                           add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    texts = ["The steps are right and the sum is correct, so I give it [4]",
             "Score: 2"]
    replies = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    readings = read_scores(tokenizer, model, "cpu", [prompt_ids, prompt_ids], replies, texts, (1, 5))
    for text, reply, reading in zip(texts, replies, readings, strict=True):
        assert reading["how"] == "stated"
        digit = next(i for i, t in enumerate(reply) if tokenizer.decode([t]).strip() in "12345"
                     and tokenizer.decode([t]).strip())
        expected = _next_token_scores(tiny_model, prompt_ids + reply[:digit])
        got = {int(s): p for s, p in reading["distribution"].items()}
        assert got == pytest.approx(expected, abs=1e-4), text


def test_a_seeded_call_samples_the_same_alone_or_in_a_batch(tiny_model, batches) -> None:
    """Each row samples with its own call's seed: its reply does not depend on the calls
    batched with it, and another seed samples another reply."""
    sampled = {"temperature": 1.0, "top_p": 0.9, "max_tokens": 12}
    target = ask("Tell me a fact about the moon.", seed=1234, **sampled)
    others = [ask(f"Tell me about the number {n}.", seed=n, **sampled) for n in range(3)]
    alone = answers(tiny_model, [target])[0]
    batched = answers(tiny_model, [*others, target])[-1]
    assert [len(b) for b in batches] == [1, 4]  # a different seed does not split a batch
    assert batched.text == alone.text
    reseeded = [answers(tiny_model, [ask("Tell me a fact about the moon.", seed=s, **sampled)])[0].text
                for s in (1, 2, 3)]
    assert len({alone.text, *reseeded}) > 1
