"""Checkpoints of ``train()``: every ``save_steps`` optimizer steps (else one per epoch), the
newest kept by the Trainer unless ``keep_checkpoints: all`` (``none`` and ``last`` differ only
once the stage is done: the stage deletes the folder for ``none``)."""

from __future__ import annotations

import pytest
from training_data import make_dataset, train_args

#: LoRA: a checkpoint holds the adapter and its optimizer state, megabytes, not 1.6 GB
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def steps_saved(folder) -> list[int]:
    return sorted(int(p.name.split("-")[-1]) for p in folder.glob("checkpoint-*"))


@pytest.mark.slow
@pytest.mark.parametrize(("keep", "kept"), [("last", [3]), ("all", [1, 2, 3])])
def test_save_steps_checkpoints_inside_the_epoch_and_keeps_what_is_asked(tmp_path, small_student,
                                                                          keep, kept):
    from fairspec.training.launch import train

    make_dataset(tmp_path)  # 12 examples, 4 a step: 3 steps in the one epoch
    stats = train(train_args(tmp_path, small_student, epochs=1, lora=LORA, save_steps=1,
                             keep_checkpoints=keep))
    assert stats["steps"] == 3
    assert steps_saved(tmp_path / "train" / "checkpoints") == kept


@pytest.mark.slow
def test_without_save_steps_one_checkpoint_per_epoch(tmp_path, small_student):
    from fairspec.training.launch import train

    make_dataset(tmp_path)
    stats = train(train_args(tmp_path, small_student, epochs=2, lora=LORA, keep_checkpoints="all"))
    assert stats["steps"] == 6
    assert steps_saved(tmp_path / "train" / "checkpoints") == [3, 6]


def test_the_stage_drops_its_checkpoints_once_done_unless_kept(tmp_path):
    from fairspec.stages.train import drop_checkpoints

    for keep in ("none", "last", "all"):
        work = tmp_path / keep
        (work / "checkpoints" / "checkpoint-3").mkdir(parents=True)
        (work / "checkpoints" / "checkpoint-3" / "trainer_state.json").write_text("{}")
        drop_checkpoints(work, keep)
        assert (work / "checkpoints").exists() == (keep != "none")
