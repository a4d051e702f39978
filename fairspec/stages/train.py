"""The train stage (eq. 5-7): joint instruction tuning of the student on the built set."""

from __future__ import annotations

import json
import shlex
import subprocess
from typing import Any

from fairspec.artifacts import atomic_write_json, atomic_write_text
from fairspec.errors import TrainingFailed
from fairspec.progress import counter
from fairspec.stages.context import StageContext
from fairspec.weights import resolve_model

TRAIN_KEYS = ("alpha", "epochs", "batch_size", "learning_rate", "warmup_ratio", "max_seq_length",
              "optimizer", "gradient_accumulation_steps", "max_grad_norm", "weight_decay", "lora",
              "gradient_checkpointing", "chat_template", "seed", "dtype", "device")


def train_args(ctx: StageContext) -> dict[str, Any]:
    """What the training process is given (``train_args.json``): settings and paths."""
    settings = ctx.settings
    return {
        **{key: settings[key] for key in TRAIN_KEYS},
        "model_path": resolve_model(settings["model"], ctx.services.base_dir),
        "dataset": str(ctx.input("build", "dataset/")),
        "output_dir": str(ctx.folder),
        "work_dir": str(ctx.work_dir),
    }


def run(ctx: StageContext) -> dict[str, Any]:
    resumed = ctx.prepare()  # checkpoints (under work/) survive a crash
    settings = ctx.settings
    args = train_args(ctx)
    atomic_write_json(ctx.output("train_args.json"), args)
    built = json.loads(ctx.input("build", "stats.json").read_text(encoding="utf-8"))
    if built["examples"] == 0:  # nothing was accepted: say so, keep the base student
        stats = {"examples": 0, "steps": 0, "truncated": 0, "resumed": resumed,
                 "skipped": "no training examples (no sample had an accepted rationale and a "
                            "feedback): the tuned student is the base student"}
        atomic_write_json(ctx.output("stats.json"), stats)
        ctx.finish({"examples": 0, "steps": 0, "truncated": 0})
        return stats
    config = settings.get("accelerate_config")
    if config is None:
        from fairspec.training.launch import train

        stats = train(args, on_step=lambda total: counter(ctx.services.progress, "train", total,
                                                          "steps"))
    else:
        atomic_write_text(ctx.output("accelerate_config.yaml"), json.dumps(config, indent=2))
        command = shlex.split(settings["command"])
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            raise TrainingFailed(f"training exited with status {done.returncode}: "
                                 f"{settings['command']}")
        stats = json.loads((ctx.work_dir / "train_result.json").read_text(encoding="utf-8"))
    stats["resumed"] = resumed
    atomic_write_json(ctx.output("stats.json"), stats)
    ctx.finish({"examples": stats["examples"], "steps": stats["steps"],
                "truncated": stats["truncated"]})
    return stats
