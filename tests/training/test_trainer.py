"""The joint trainer on the real tiny model (CPU): loss goes down, the checkpoint works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_data import generates, make_dataset, train_args

from fairspec.training.trainer import SampleGroupSampler

REPO = Path(__file__).resolve().parents[2]


def test_sample_group_sampler_keeps_groups_together_and_reshuffles():
    groups = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    sampler = SampleGroupSampler(groups, seed=3)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(10)) and len(sampler) == 10
    for order in (first, second):
        pairs = [tuple(order[i : i + 2]) for i in range(0, 10, 2)]
        assert all(groups[a] == groups[b] for a, b in pairs)
    assert first != second  # a new order each epoch


@pytest.mark.slow
def test_training_lowers_the_loss_and_saves_a_model_that_generates(tmp_path, tiny_model):
    from fairspec.training.launch import train

    examples = make_dataset(tmp_path)
    stats = train(train_args(tmp_path, tiny_model))
    assert stats["steps"] == 12 and stats["truncated"] == 0 and stats["packed"] is True
    assert stats["last_loss"] < stats["first_loss"] * 0.7
    assert all("feedback_loss" in entry and "rationale_loss" in entry for entry in stats["log"])
    assert generates(tmp_path / "train" / "model", examples[0]["prompt"])
    assert (tmp_path / "train" / "trainer_state.json").is_file()



@pytest.mark.slow
def test_gradient_accumulation_2_equals_one_batch_twice_as_big(tmp_path, small_student):
    """Table 9's default accumulation: 2 micro-batches of 2 examples make one step of 4.

    The trainer divides each micro-batch's summed losses by the whole step's token counts
    per kind, so a GA-2 run logs the loss (and each kind's) a GA-1 run with twice the batch
    logs on the same data order; dividing per micro-batch (a mean of means), or by the
    accumulation steps, would not.
    """
    from transformers import AutoTokenizer

    from fairspec.training.launch import train

    examples = make_dataset(tmp_path)
    epochs = 2
    one = train(train_args(tmp_path, small_student, epochs=epochs, batch_size=4,
                           gradient_accumulation_steps=1, output_dir=str(tmp_path / "ga1")))
    two = train(train_args(tmp_path, small_student, epochs=epochs, batch_size=2,
                           gradient_accumulation_steps=2, output_dir=str(tmp_path / "ga2")))
    # examples / batch / accumulation steps per epoch: 12 / 2 / 2 = 3
    assert two["steps"] == epochs * len(examples) // (2 * 2) == one["steps"] == 6
    assert [e["step"] for e in two["log"]] == list(range(1, 7))
    # a mean of means differs from the pooled mean only where the micro-batches' token
    # counts differ: they do here (one micro-batch is one sample's two examples)
    tokenizer = AutoTokenizer.from_pretrained(small_student)
    lengths = {len(tokenizer(e["completion"])["input_ids"]) for e in examples if e["kind"] == "rationale"}
    assert len(lengths) > 1
    # float noise is ~1e-6 of the loss; a mean of the micro-batches' means is off by ~1e-3 of
    # it on the first step (3.3051 for 3.3095); the parts are logged to 6 decimals
    for a, b in zip(one["log"], two["log"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-5), (a, b)
        for key in ("feedback_loss", "rationale_loss"):
            assert b[key] == pytest.approx(a[key], rel=2e-5, abs=2e-6), (key, a, b)
        # eq. 7 with alpha 0.5: the joint loss is the mean of the two parts
        assert b["loss"] == pytest.approx(0.5 * b["feedback_loss"] + 0.5 * b["rationale_loss"],
                                          abs=2e-6)
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=2e-5)

@pytest.mark.slow
def test_lora_trains_only_adapters_and_saves_a_merged_model(tmp_path, small_student):
    import torch
    from safetensors.torch import load_file

    from fairspec.training.launch import train

    examples = make_dataset(tmp_path)
    lora = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
    stats = train(train_args(tmp_path, small_student, lora=lora, learning_rate=2e-3, epochs=3))
    assert stats["last_loss"] < stats["first_loss"]
    model_dir = tmp_path / "train" / "model"
    saved = load_file(str(next(model_dir.glob("*.safetensors"))))
    assert not any("lora" in name for name in saved)  # merged: a plain model, no adapter keys
    base = load_file(str(next(Path(small_student).glob("*.safetensors"))))
    name = next(n for n in saved if n.endswith("q_proj.weight"))
    assert not torch.equal(saved[name], base[name])  # the adapters were merged in
    norm = next(n for n in saved if n.endswith("input_layernorm.weight"))
    assert torch.equal(saved[norm], base[norm])  # what LoRA does not touch is unchanged
    assert generates(model_dir, examples[0]["prompt"])


@pytest.mark.slow
def test_training_resumes_from_its_last_checkpoint(tmp_path, small_student):
    """A job stopped after its first epoch's checkpoint goes on from there, not from step 0."""
    from fairspec.training.launch import last_checkpoint, train

    make_dataset(tmp_path)
    first = train(train_args(tmp_path, small_student, epochs=1))
    assert first["steps"] == 3
    checkpoint = Path(last_checkpoint(tmp_path / "train" / "checkpoints"))
    assert checkpoint.name == "checkpoint-3"
    # mark the checkpoint's history: only a job that resumes from it can report the mark
    state_file = checkpoint / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"].insert(0, {"step": 0, "loss": 123.0, "mark": "from-checkpoint"})
    state_file.write_text(json.dumps(state))
    resumed = train(train_args(tmp_path, small_student, epochs=2))
    assert resumed["steps"] == 6
    assert resumed["log"][0].get("mark") == "from-checkpoint"
    assert [entry["step"] for entry in resumed["log"]] == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_packed_rows_give_the_padded_batch_loss_on_the_real_model(tiny_model):
    """Same tokens, same positions, no attention across examples: the joint loss agrees."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fairspec.training import joint_loss_parts
    from fairspec.training.packing import packing_is_exact
    from fairspec.training.tokenize import CompletionCollator, additive_mask, encode_example

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    assert packing_is_exact(model, len(tokenizer))
    rows = [json.loads(line) for line in
            (REPO / "fairspec/resources/data/svamp-mini/train.jsonl").read_text().splitlines()[:3]]
    features = []
    for row in rows:
        prompt = f"Question: {row['question_concat']}\nAnswer:"
        for kind, completion in (("rationale", f" {row['Equation']} = {row['Answer']:g}"),
                                 ("feedback", " The student misread the question; " * 12)):
            features.append({**encode_example(tokenizer, prompt, completion, max_seq_length=256,
                                              use_chat_template=False), "kind": kind})
    assert packing_is_exact(model, len(tokenizer),
                            CompletionCollator(tokenizer.pad_token_id, pack=True, block_mask=True))
    padded = CompletionCollator(tokenizer.pad_token_id)(features)
    packed = CompletionCollator(tokenizer.pad_token_id, pack=True)(features)
    masked = CompletionCollator(tokenizer.pad_token_id, pack=True, block_mask=True)(features)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]
    masked["attention_mask"] = additive_mask(masked["attention_mask"], torch.float32)
    with torch.no_grad():
        losses = []
        for batch in (padded, packed, masked):
            inputs = {k: v for k, v in batch.items() if k not in ("labels", "is_feedback")}
            logits = model(**inputs, use_cache=False).logits
            losses.append(joint_loss_parts(logits, batch["labels"], batch["is_feedback"], 0.3))
    for part in ("loss", "feedback_loss", "rationale_loss", "feedback_tokens", "rationale_tokens"):
        for other in losses[1:]:
            assert float(getattr(other, part)) == pytest.approx(float(getattr(losses[0], part)), rel=1e-4)


def test_a_model_that_ignores_packing_is_caught():
    """A model whose attention crosses packed examples (here: a plain causal mask forced in)."""
    import torch

    from fairspec.training.packing import packing_is_exact

    class Leaky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(50, 8)
            self.out = torch.nn.Linear(8, 50)

        def forward(self, input_ids, position_ids=None, use_cache=None):
            mean = self.embed(input_ids).cumsum(1) / torch.arange(1, input_ids.shape[1] + 1)[:, None]
            return type("Out", (), {"logits": self.out(mean)})()

    assert not packing_is_exact(Leaky(), 50)
