"""Packing for the model's attention (fairspec.training.packing and the collator's ``flat``
layout): flash attention gets the whole batch as one row with sequence boundaries and no mask,
the others rows with a block mask; either way the loss is the padded batch's.

flash-attn has no CPU kernel, so flash attention is emulated here by an attention function that
follows transformers' flash path (``_flash_attention_forward``) step for step, with sdpa per
sequence where flash-attn runs its varlen kernel: varlen arguments first, then restarting
positions (read only in a batch of one row), else causal attention over each whole row.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from fairspec.training import joint_loss_parts
from fairspec.training.loss import IGNORE_INDEX, count_completion_tokens
from fairspec.training.packing import packed_collator, packing_is_exact, reads_packed_positions
from fairspec.training.tokenize import CompletionCollator, additive_mask

REPO = Path(__file__).resolve().parents[2]
EMULATED_FLASH = "emulated_flash_attention"
ROUTES: list[str] = []  # which of the flash path's branches each attention call took


def feature(size: int, kind: str, prompt: int = 2, first: int = 10) -> dict:
    ids = list(range(first, first + size))
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:], "kind": kind}


# -- the collator's layouts ---------------------------------------------------------------------


def test_a_flat_batch_is_one_row_with_restarting_positions_and_varlen_boundaries():
    features = [feature(5, "feedback"), feature(3, "rationale", first=40), feature(4, "rationale")]
    batch = CompletionCollator(pad_token_id=0, pack=True, flat=True)(features)
    assert batch["input_ids"].shape == (1, 12) and "attention_mask" not in batch
    assert batch["input_ids"][0].tolist() == [10, 11, 12, 13, 14, 40, 41, 42, 10, 11, 12, 13]
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3]
    assert batch["is_feedback"][0].tolist() == [True] * 5 + [False] * 7
    assert batch["cu_seq_lens_q"].tolist() == batch["cu_seq_lens_k"].tolist() == [0, 5, 8, 12]
    assert batch["cu_seq_lens_q"].dtype == torch.int32  # what flash-attn's varlen kernels take
    assert batch["max_length_q"] == batch["max_length_k"] == 5
    assert batch["labels"][0].tolist() == [IGNORE_INDEX] * 2 + [12, 13, 14] + [IGNORE_INDEX] * 2 \
        + [42] + [IGNORE_INDEX] * 2 + [12, 13]


def test_a_flat_batch_pads_its_tail_as_a_sequence_of_its_own():
    batch = CompletionCollator(pad_token_id=7, pad_to_multiple_of=8, pack=True, flat=True)(
        [feature(3, "rationale"), feature(2, "feedback")])
    assert batch["input_ids"][0].tolist() == [10, 11, 12, 10, 11, 7, 7, 7]
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 0, 1, 0, 1, 2]
    assert batch["cu_seq_lens_q"].tolist() == [0, 3, 5, 8]
    assert batch["labels"][0, 5:].tolist() == [IGNORE_INDEX] * 3


@pytest.mark.parametrize(("arguments", "message"), [
    ({"flat": True}, "flat=True needs pack=True"),
    ({"flat": True, "pack": True, "block_mask": True}, "flat=True takes no block_mask"),
])
def test_flat_needs_pack_and_takes_no_block_mask(arguments, message):
    with pytest.raises(ValueError, match=message):
        CompletionCollator(pad_token_id=0, **arguments)


@pytest.mark.parametrize("flat", [False, True])
def test_a_packed_example_is_never_the_target_of_the_example_before_it(flat):
    """An example whose first token is a target (no prompt): nothing predicts it in a padded
    batch; packed behind another, the other's last token must not predict it either."""
    features = [feature(4, "feedback", prompt=0), feature(3, "rationale", prompt=0, first=50)]
    padded = CompletionCollator(pad_token_id=0)(features)
    packed = CompletionCollator(pad_token_id=0, pad_to_multiple_of=8, pack=True, flat=flat)(features)
    assert packed["input_ids"].shape[0] == 1  # both in one row
    assert [int(n) for n in count_completion_tokens(packed["labels"], packed["is_feedback"])] == \
        [int(n) for n in count_completion_tokens(padded["labels"], padded["is_feedback"])] == [3, 2]
    starts = (packed["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert all(packed["labels"][0, start] == IGNORE_INDEX for start in starts)


@pytest.mark.parametrize(("implementation", "flat"), [
    ("flash_attention_2", True), ("flash_attention_3", True),
    ("kernels-community/flash-attn2", True), ("sdpa", False), ("eager", False),
    ("flex_attention", False),
])
def test_flash_attention_packs_flat_and_the_others_pack_rows_with_a_block_mask(implementation, flat):
    model = SimpleNamespace(config=SimpleNamespace(_attn_implementation=implementation))
    collator = packed_collator(model, pad_token_id=3)
    assert reads_packed_positions(model) is flat
    assert (collator.pack, collator.flat, collator.block_mask) == (True, flat, not flat)


# -- on the real model ----------------------------------------------------------------------------


def emulated_flash_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                             **kwargs):
    """transformers' ``_flash_attention_forward`` dispatch with sdpa for flash-attn's kernels
    (a padding mask, right padding only here, unpads each row)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_flash_attention_utils import (
        _is_packed_sequence,
        prepare_fa_kwargs_from_position_ids,
    )

    rows, heads, length, _ = query.shape
    if attention_mask is not None:  # padding (a padded batch): each row's tokens, zeros after
        ROUTES.append("unpadded")
        out = query.new_zeros(rows, length, heads, query.shape[-1])
        for row, size in enumerate(attention_mask.sum(-1).tolist()):
            part = (states[row : row + 1, :, :size] for states in (query, key, value))
            out[row, :size] = sdpa_attention_forward(module, *part, None, scaling=scaling,
                                                     is_causal=True)[0][0]
        return out, None
    boundaries = kwargs.get("cu_seq_lens_q")
    if boundaries is None and _is_packed_sequence(kwargs.get("position_ids"), rows):
        (boundaries, _), _ = prepare_fa_kwargs_from_position_ids(kwargs["position_ids"])
    if boundaries is None:  # flash_fn: causal over each whole row
        ROUTES.append("rows")
        return sdpa_attention_forward(module, query, key, value, None, scaling=scaling, is_causal=True)
    ROUTES.append("varlen")  # flash_varlen_fn: the batch flattened, causal within each sequence

    def flattened(states):
        return states.transpose(1, 2).reshape(1, -1, *states.shape[1::2]).transpose(1, 2)

    query, key, value = flattened(query), flattened(key), flattened(value)
    edges = boundaries.tolist()
    outputs = [sdpa_attention_forward(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None,
                                      scaling=scaling, is_causal=True)[0]
               for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return torch.cat(outputs, dim=1).reshape(rows, length, heads, -1), None


@pytest.fixture(scope="module")
def tokenizer(small_student):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(small_student)


@pytest.fixture(scope="module")
def features(tokenizer):
    """Three svamp questions, each a short rationale and a long feedback example."""
    from fairspec.training.tokenize import encode_example

    rows = [json.loads(line) for line in
            (REPO / "fairspec/resources/data/svamp-mini/train.jsonl").read_text().splitlines()[:3]]
    out = []
    for row in rows:
        prompt = f"Question: {row['question_concat']}\nAnswer:"
        for kind, completion in (("rationale", f" {row['Equation']} = {row['Answer']:g}"),
                                 ("feedback", " The student misread the question; " * 12)):
            out.append({**encode_example(tokenizer, prompt, completion, max_seq_length=256,
                                         use_chat_template=False), "kind": kind})
    return out


def load(small_student: str, implementation: str):
    from transformers import AutoModelForCausalLM
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if implementation != EMULATED_FLASH:
        return AutoModelForCausalLM.from_pretrained(small_student, dtype=torch.float32,
                                                    attn_implementation=implementation).eval()
    ALL_ATTENTION_FUNCTIONS.register(EMULATED_FLASH, emulated_flash_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(EMULATED_FLASH, flash_attention_mask)
    model = AutoModelForCausalLM.from_pretrained(small_student, dtype=torch.float32).eval()
    model.config._attn_implementation = EMULATED_FLASH  # set after loading: no flash-attn import
    return model


def loss_of(model, batch: dict) -> object:
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "is_feedback")}
    if "attention_mask" in inputs and inputs["attention_mask"].dim() == 4:
        inputs["attention_mask"] = additive_mask(inputs["attention_mask"], torch.float32)
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits
    return joint_loss_parts(logits, batch["labels"], batch["is_feedback"], 0.3)


def assert_same_loss(one, other) -> None:
    for part in ("loss", "feedback_loss", "rationale_loss", "feedback_tokens", "rationale_tokens"):
        assert float(getattr(one, part)) == pytest.approx(float(getattr(other, part)), rel=1e-4), part


@pytest.mark.slow
def test_flash_attention_reads_a_flat_batch_as_separate_examples(small_student, tokenizer, features):
    """The flat batch gives the padded batch's loss through the varlen branch; the same row read
    as one sequence (no boundaries, positions running on) gives another: the comparison would
    catch examples that attend across their boundary."""
    model = load(small_student, EMULATED_FLASH)
    collator = packed_collator(model, tokenizer.pad_token_id)
    assert collator.flat
    assert packing_is_exact(model, len(tokenizer), collator)
    padded = CompletionCollator(tokenizer.pad_token_id)(features)
    flat = collator(features)
    assert flat["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in features))
    ROUTES.clear()
    flat_loss = loss_of(model, flat)
    assert ROUTES == ["varlen"] * model.config.num_hidden_layers
    assert_same_loss(flat_loss, loss_of(model, padded))
    # without boundaries the row is one sequence: each example sees the ones before it
    running = {key: flat[key] for key in ("input_ids", "labels", "is_feedback")}
    running["position_ids"] = torch.arange(flat["input_ids"].shape[1])[None]
    ROUTES.clear()
    leaked = loss_of(model, running)
    assert set(ROUTES) == {"rows"}
    assert float(leaked.loss) != pytest.approx(float(flat_loss.loss), rel=1e-3)


@pytest.mark.slow
def test_flash_attention_over_packed_rows_would_mix_examples_and_packing_refuses_it(
        tiny_model, tokenizer, features):
    """Several packed rows with restarting positions and no mask: flash attention reads the
    restarts only in a batch of one row, so the examples sharing a row attend to each other.
    The check before training sees it (in a three-example probe of two rows). The real
    model: in two layers (the small student) the mixing moves the loss too little to see."""
    model = load(tiny_model, EMULATED_FLASH)
    rows = CompletionCollator(tokenizer.pad_token_id, pack=True)
    assert not packing_is_exact(model, len(tokenizer), rows)
    assert not packing_is_exact(model, len(tokenizer), rows, autocast=torch.bfloat16)  # above bf16's noise
    packed = rows(features)
    assert packed["input_ids"].shape[0] > 1
    padded = CompletionCollator(tokenizer.pad_token_id)(features)
    # 10x what assert_same_loss allows: the rationales packed behind others read them
    assert float(loss_of(model, packed).loss) != pytest.approx(float(loss_of(model, padded).loss),
                                                               rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_sdpa_and_eager_read_restarting_positions_in_a_flat_batch_too(small_student, tokenizer, features,
                                                                      implementation):
    """transformers builds the block mask from the positions for them (its packed-sequence
    detection), so the flat layout is exact there as well (if dense: fairspec gives them rows
    with the mask, shorter than one flat row)."""
    model = load(small_student, implementation)
    assert model.config._attn_implementation == implementation
    collator = packed_collator(model, tokenizer.pad_token_id)
    assert collator.block_mask and not collator.flat
    flat = CompletionCollator(tokenizer.pad_token_id, pack=True, flat=True)
    assert packing_is_exact(model, len(tokenizer), collator)
    assert packing_is_exact(model, len(tokenizer), flat)
    padded = loss_of(model, CompletionCollator(tokenizer.pad_token_id)(features))
    assert_same_loss(loss_of(model, flat(features)), padded)
    assert_same_loss(loss_of(model, collator(features)), padded)


def test_the_packing_check_runs_under_the_training_autocast(small_student, tokenizer):
    """Mixed precision trains fp32 weights under half autocast: the check's forward passes run
    so too (flash attention refuses fp32 inputs), and the packed logits still agree."""
    model = load(small_student, "sdpa")
    dtypes = []
    hook = model.lm_head.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    try:
        collator = packed_collator(model, tokenizer.pad_token_id)
        assert packing_is_exact(model, len(tokenizer), collator, autocast=torch.bfloat16)
        assert set(dtypes) == {torch.bfloat16}
        dtypes.clear()
        assert packing_is_exact(model, len(tokenizer), collator)
        assert set(dtypes) == {torch.float32}
    finally:
        hook.remove()


class NoKernelHere(torch.nn.Module):
    """A model whose attention cannot run on this device (flash-attn on a CPU raises)."""

    def __init__(self, implementation: str) -> None:
        super().__init__()
        self.config = SimpleNamespace(_attn_implementation=implementation)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, **inputs):
        raise RuntimeError("FlashAttention only supports Ampere GPUs or newer.")


def test_flash_attention_that_cannot_run_before_fsdp_places_the_model_is_trusted():
    """FSDP and DeepSpeed leave the model on the CPU until training starts: flash attention
    cannot run there, and transformers' own flash path is what reads the flat batch."""
    flash = NoKernelHere("flash_attention_2")
    assert packing_is_exact(flash, 50, packed_collator(flash, 0))
    sdpa = NoKernelHere("sdpa")  # any other failure turns packing off
    assert not packing_is_exact(sdpa, 50, packed_collator(sdpa, 0))
