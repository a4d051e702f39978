"""kill -9 of `fairspec run` in the middle of a training epoch, then a rerun: training goes on
from the last ``training.save_steps`` checkpoint (not from the epoch's start, not from step 0),
ends with the weights an uninterrupted training of the same arguments gets, and the finished
stage leaves no checkpoint behind (``keep_checkpoints: none``, the default)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from katan_runs import ECHOED_REVIEW, committee, spec_text, write_spec
from kill_runs import kill_when, run_to_end

pytestmark = pytest.mark.slow

SAVE_STEPS = 2
#: one epoch of one example a step: every checkpoint but the last is inside the epoch
TRAINING = (f"{{epochs: 1, batch_size: 1, gradient_accumulation_steps: 1, learning_rate: 1.0e-4, "
            f"max_seq_length: 128, save_steps: {SAVE_STEPS}}}")


def write_resume_spec(folder: Path, url: str, model: str) -> Path:
    return write_spec(folder, spec_text(
        committee(url, concurrency=2, timeout_s=30), name="resume", seed=7,
        limit="{train: 6, test: 2}",
        student=f"{{model: {model}, exam: {{engine: hf, max_new_tokens: 24, batch_size: 3}}, "
                "hardware: {device: cpu, dtype: fp32}}",
        generation="{max_tokens: 32}", training=TRAINING,
        evaluation="{decoding: greedy, base: false}", output_dir="runs",
        prompts=f"{{review: {ECHOED_REVIEW}}}"))


def saved_steps(checkpoints: Path) -> list[int]:
    """The steps of the complete checkpoints (a trainer state written last) in ``checkpoints``."""
    return sorted(int(p.parent.name.split("-")[-1])
                  for p in checkpoints.glob("checkpoint-*/trainer_state.json"))


def test_a_kill_inside_an_epoch_resumes_from_the_last_save_steps_checkpoint(tmp_path, start_katan,
                                                                           small_student):
    import torch
    from safetensors.torch import load_file

    from fairspec.training.launch import train

    server = start_katan("--latency-ms", "50")
    spec = write_resume_spec(tmp_path, server.openai_url, small_student)
    train_dir = tmp_path / "runs" / "resume" / "train"
    checkpoints = train_dir / "work" / "checkpoints"
    landed = kill_when(tmp_path, spec, lambda: bool(saved_steps(checkpoints)), train_dir,
                       (0.0, 0.0), "the first training checkpoint")
    assert landed, "the training finished before the kill"
    steps = saved_steps(checkpoints)
    last = checkpoints / f"checkpoint-{steps[-1]}"
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["epoch"] < 1 and steps[-1] < state["max_steps"], "no checkpoint inside the epoch"
    assert steps[-1] % SAVE_STEPS == 0
    # mark the last checkpoint's history: only a training that resumes from it can show it
    state["log_history"].insert(0, {"step": 0, "loss": 123.0, "mark": "from-checkpoint"})
    (last / "trainer_state.json").write_text(json.dumps(state))

    run_to_end(tmp_path, spec)
    stats = json.loads((train_dir / "stats.json").read_text())
    assert stats["resumed"] is True and stats["steps"] == state["max_steps"]
    history = json.loads((train_dir / "trainer_state.json").read_text())["log_history"]
    assert history[0].get("mark") == "from-checkpoint"
    # the steps after the checkpoint were trained once more, none before it
    assert [e["step"] for e in history if "loss" in e][1:] == list(range(1, state["max_steps"] + 1))
    assert not checkpoints.exists()  # keep_checkpoints: none, once the stage is done

    # the same arguments trained without a kill end with the same weights
    args = json.loads((train_dir / "train_args.json").read_text())
    whole = tmp_path / "uninterrupted"
    train({**args, "output_dir": str(whole), "work_dir": str(whole / "work")})
    ours = load_file(str(train_dir / "model" / "model.safetensors"))
    theirs = load_file(str(whole / "model" / "model.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
