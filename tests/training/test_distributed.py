"""Training on two CPU processes over gloo, for real: the same launch the train stage uses.

Two ranks with a per-rank batch of one sample see, at each optimizer step, exactly the
micro-batches one process sees with gradient accumulation 2 (accelerate hands rank r the
batches r, r + 2, ...), so the joint loss, its two parts and the updated weights must
agree step by step. They agree to float32 rounding, not bit for bit: DDP all-reduces the
gradients in buckets where one process sums its two micro-batches' gradients in place, and
the token counts of each kind are summed across ranks in another order. Measured here:
at most 1.8e-6 relative on the losses; the test allows 2e-4 (below any real bug: a missing
rescale for DDP's averaging is a factor of 2, a per-rank normalisation ~10-50%).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from training_data import generates, make_dataset, train_args

from fairspec.plan.hardware import TrainingLayout

pytestmark = pytest.mark.slow

TOLERANCE = 2e-4


def launch(layout: TrainingLayout, args: dict, folder: Path, *, threads: int) -> dict:
    """Run ``fairspec.training.launch`` as the train stage would, return train_result.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "work").mkdir(exist_ok=True)
    args = {**args, "output_dir": str(folder), "work_dir": str(folder / "work")}
    path = folder / "train_args.json"
    path.write_text(json.dumps(args))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(layout.command(str(path), python=sys.executable), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((folder / "work" / "train_result.json").read_text())


def test_two_ranks_train_like_one_process_on_the_same_global_batch(tmp_path, small_student):
    make_dataset(tmp_path)
    common = train_args(tmp_path, small_student, epochs=2, batch_size=2, learning_rate=1e-4)
    two = launch(TrainingLayout("torchrun", nodes=1, processes=2), common, tmp_path / "two",
                 threads=1)
    one = launch(TrainingLayout("inline"), {**common, "gradient_accumulation_steps": 2},
                 tmp_path / "one", threads=2)
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["steps"] == one["steps"] == 6  # 6 samples / (2 ranks x 1 sample) x 2 epochs
    for a, b in zip(two["log"], one["log"], strict=True):
        for key in ("loss", "feedback_loss", "rationale_loss"):
            assert a[key] == pytest.approx(b[key], rel=TOLERANCE), (key, a, b)
    assert two["last_loss"] < two["first_loss"]
    # one writer: rank 0 saved one model folder (no per-rank leftovers) that loads and generates
    model = tmp_path / "two" / "model"
    assert generates(model, "### Instruction: Answer the question.\n### Input: 2 + 3?\n### Response: ")
    assert not (model / "training_args.bin").exists()
    assert sorted(p.name for p in (tmp_path / "two" / "work").iterdir()) == [
        "checkpoints", "progress.json", "train_result.json"]
    progress = json.loads((tmp_path / "two" / "work" / "progress.json").read_text())
    assert progress["done"] == progress["total"] == 6 and progress["note"].startswith("loss ")


def test_a_failing_rank_is_an_error_naming_its_log(tmp_path, small_student):
    from fairspec.stages.train import _failure

    make_dataset(tmp_path)
    args = train_args(tmp_path, small_student, optimizer="no_such_optimizer", work_dir=str(tmp_path))
    path = tmp_path / "train_args.json"
    path.write_text(json.dumps(args))
    command = TrainingLayout("torchrun", nodes=1, processes=2).command(str(path))
    log = tmp_path / "launch.log"
    with log.open("wb") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300).returncode
    assert code != 0
    message = _failure(code, command, log, tmp_path)
    assert str(log) in message
    assert "first error of a rank:" in message and "no_such_optimizer" in message
