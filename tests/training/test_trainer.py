"""The joint trainer on the real tiny model (CPU): loss goes down, the checkpoint works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fairspec.training.launch import train

    rows = [json.loads(line) for line in
            (REPO / "fairspec/resources/data/svamp-mini/train.jsonl").read_text().splitlines()[:6]]
    examples = []
    for i, row in enumerate(rows):
        prompt = f"### Instruction: Answer the question.\n### Input: {row['question_concat']}\n### Response: "
        examples.append({"sample": i, "kind": "rationale", "teacher": "t",
                         "prompt": prompt, "completion": f"{row['Equation']} = {row['Answer']:g}"})
        examples.append({"sample": i, "kind": "feedback", "teacher": "t", "prompt": prompt + "(wrong)",
                         "completion": f"The student should compute {row['Equation']}."})
    Dataset.from_list(examples).save_to_disk(str(tmp_path / "dataset"))
    args = {
        "model_path": tiny_model, "dataset": str(tmp_path / "dataset"),
        "output_dir": str(tmp_path / "train"), "alpha": 0.5, "epochs": 4, "batch_size": 4,
        "learning_rate": 3e-4, "warmup_ratio": 0.0, "max_seq_length": 160, "optimizer": "adamw_torch",
        "gradient_accumulation_steps": 1, "max_grad_norm": 1.0, "weight_decay": 0.0, "lora": None,
        "gradient_checkpointing": False, "chat_template": False, "seed": 1, "dtype": "fp32",
        "device": "cpu",
    }
    stats = train(args)
    assert stats["steps"] == 12 and stats["truncated"] == 0
    assert stats["last_loss"] < stats["first_loss"] * 0.7
    assert all("feedback_loss" in entry and "rationale_loss" in entry for entry in stats["log"])
    model_dir = tmp_path / "train" / "model"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    encoded = tokenizer(examples[0]["prompt"], return_tensors="pt")
    output = model.generate(**encoded, max_new_tokens=12, do_sample=False)
    assert output.shape[1] > encoded["input_ids"].shape[1]
    assert (tmp_path / "train" / "trainer_state.json").is_file()
