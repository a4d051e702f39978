"""The train stage (eq. 5-7): joint instruction tuning of the student on the built set."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from fairspec.artifacts import atomic_write_json, atomic_write_text, prepare_stage_folder, write_manifest
from fairspec.errors import FairspecError
from fairspec.plan.graph import RunPlan
from fairspec.progress import CountProgress, counter
from fairspec.weights import resolve_model

TRAIN_KEYS = ("alpha", "epochs", "batch_size", "learning_rate", "warmup_ratio", "max_seq_length",
              "optimizer", "gradient_accumulation_steps", "max_grad_norm", "weight_decay", "lora",
              "gradient_checkpointing", "chat_template", "seed", "dtype", "device")


class TrainingFailed(FairspecError):
    """The training process failed; its checkpoints are kept for a resumed run."""


def train_args(run: RunPlan, base_dir: Path, folder: Path) -> dict[str, Any]:
    settings = run.stage("train").settings
    return {
        **{key: settings[key] for key in TRAIN_KEYS},
        "model_path": resolve_model(settings["model"], base_dir),
        "dataset": str(Path(run.run_dir) / "build" / "dataset"),
        "output_dir": str(folder),
    }


def run_train(run: RunPlan, base_dir: Path, folder: Path,
              progress: CountProgress | None = None) -> dict[str, Any]:
    started = time.time()
    stage = run.stage("train")
    resumed = prepare_stage_folder(folder, stage.fingerprint)  # checkpoints survive a crash
    args = train_args(run, base_dir, folder)
    atomic_write_json(folder / "train_args.json", args)
    built = json.loads((Path(run.run_dir) / "build" / "stats.json").read_text(encoding="utf-8"))
    if built["examples"] == 0:  # nothing was accepted: say so, keep the base student
        stats = {"examples": 0, "steps": 0, "truncated": 0, "resumed": resumed,
                 "skipped": "no training examples (no sample had an accepted rationale and a "
                            "feedback): the tuned student is the base student"}
        atomic_write_json(folder / "stats.json", stats)
        write_manifest(folder, stage="train", fingerprint=stage.fingerprint,
                       inputs={"build": run.stage("build").fingerprint}, outputs=["stats.json"],
                       counts={"examples": 0, "steps": 0, "truncated": 0}, started=started)
        return stats
    config = stage.settings.get("accelerate_config")
    if config is None:
        from fairspec.training.launch import train

        stats = train(args, on_step=lambda total: counter(progress, "train", total, "steps"))
    else:
        atomic_write_text(folder / "accelerate_config.yaml", json.dumps(config, indent=2))
        command = shlex.split(stage.settings["command"])
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            raise TrainingFailed(f"training exited with status {done.returncode}: "
                                 f"{stage.settings['command']}")
        stats = json.loads((folder / "train_result.json").read_text(encoding="utf-8"))
    stats["resumed"] = resumed
    atomic_write_json(folder / "stats.json", stats)
    write_manifest(folder, stage="train", fingerprint=stage.fingerprint,
                   inputs={"build": run.stage("build").fingerprint},
                   outputs=["model/", "trainer_state.json", "stats.json"],
                   counts={"examples": stats["examples"], "steps": stats["steps"],
                           "truncated": stats["truncated"]}, started=started)
    return stats
