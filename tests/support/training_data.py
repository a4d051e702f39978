"""A small real training set (SVAMP questions, a rationale and a feedback per sample) and
the train arguments the training tests share."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make_dataset(folder: Path) -> list[dict]:
    from datasets import Dataset

    rows = [json.loads(line) for line in
            (REPO / "fairspec/resources/data/svamp-mini/train.jsonl").read_text().splitlines()[:6]]
    examples = []
    for i, row in enumerate(rows):
        prompt = f"### Instruction: Answer the question.\n### Input: {row['question_concat']}\n### Response: "
        examples.append({"sample": i, "kind": "rationale", "teacher": "t",
                         "prompt": prompt, "completion": f"{row['Equation']} = {row['Answer']:g}"})
        examples.append({"sample": i, "kind": "feedback", "teacher": "t", "prompt": prompt + "(wrong)",
                         "completion": f"The student should compute {row['Equation']}."})
    Dataset.from_list(examples).save_to_disk(str(folder / "dataset"))
    return examples


def train_args(folder: Path, model: str, **changes) -> dict:
    return {
        "model_path": model, "dataset": str(folder / "dataset"),
        "output_dir": str(folder / "train"), "alpha": 0.5, "epochs": 4, "batch_size": 4,
        "learning_rate": 3e-4, "warmup_ratio": 0.0, "max_seq_length": 160, "optimizer": "adamw_torch",
        "gradient_accumulation_steps": 1, "max_grad_norm": 1.0, "weight_decay": 0.0, "lora": None,
        "gradient_checkpointing": False, "chat_template": False, "seed": 1, "dtype": "fp32",
        "device": "cpu", **changes,
    }


def generates(model_dir: Path, prompt: str) -> bool:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    encoded = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**encoded, max_new_tokens=12, do_sample=False)
    return output.shape[1] > encoded["input_ids"].shape[1]
