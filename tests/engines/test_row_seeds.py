"""Sampled answers of the student's hf engine depend on the row's prompt and seed only:
not on ``batch_size``, the rows batched with it, or where the split is cut into chunks
(each row samples from its own generator, seeded ``seed + its position``)."""

from __future__ import annotations

import pytest

from fairspec.engines import Sampling, make_engine

PROMPTS = ["What is 2 + 3? Think step by step.", "Name a colour and say why.",
           "What is 10 - 4? Explain.", "Say hello in French, then in German.",
           "What is 3 x 3? Show your work.", "Tell me a fact about the moon."]


def answers(engine, prompts: list[str], sampling: Sampling) -> list[str]:
    return [c.text for c in sorted(engine.generate(prompts, sampling), key=lambda c: c.position)]


@pytest.mark.slow
def test_sampled_answers_do_not_depend_on_the_batch_size_or_the_chunking(small_student):
    sampling = Sampling(temperature=1.0, top_p=0.95, top_k=50, max_new_tokens=24, seed=11)
    engines = {size: make_engine("hf", small_student, dtype="fp32", device="cpu", batch_size=size,
                                 use_chat_template=True) for size in (1, 4)}
    try:
        one, four = (answers(engines[size], PROMPTS, sampling) for size in (1, 4))
        # the last three rows alone, seeded as the split's rows 3..5 are (seed + start)
        tail = answers(engines[4], PROMPTS[3:], Sampling(**{**sampling.__dict__, "seed": 11 + 3}))
        other_seed = answers(engines[4], PROMPTS, Sampling(**{**sampling.__dict__, "seed": 12}))
    finally:
        for engine in engines.values():
            engine.close()
    assert one == four
    assert tail == four[3:]
    # the seed still matters: at temperature 1, another seed changes some answer
    assert other_seed != four
