"""The run's progress lines on a console that is not a terminal (CI logs, pipes)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fairspec.progress_view import RichStageProgress


@pytest.mark.parametrize("width", [80, 120])
def test_a_counted_task_is_one_line_with_its_rate_and_loss_note(width: int) -> None:
    out = io.StringIO()
    progress = RichStageProgress(Console(file=out, width=width, force_terminal=False))
    progress.start_count("train", 5, "steps")
    for done in range(1, 6):
        progress.count("train", done, note="loss 0.708 (fb 0.784, rt 0.632)")
    progress.finish("train")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines  # neither the rate nor the note wraps onto a second line
    assert "5/5 steps" in lines[0] and "steps/s" in lines[0]
    assert "loss 0.708 (fb 0.784, rt 0.632)" in lines[0]
    assert len(lines[0]) <= width


def test_a_batch_teachers_line_shows_its_batches_in_the_providers_words_escaped() -> None:
    from types import SimpleNamespace

    from fairspec.teachers.caller import TeacherUsage

    out = io.StringIO()
    progress = RichStageProgress(Console(file=out, width=200, force_terminal=False))
    batch = SimpleNamespace(summary=lambda: "batches: 1 running ([bold]in_progress[/bold])")
    caller = SimpleNamespace(name="gpt", usage=TeacherUsage(calls=3, made=3), batch=batch)
    progress.start("teach", {"gpt": 6})
    progress.update("teach", caller)
    progress.finish("teach")
    text = out.getvalue()
    assert "batches: 1 running ([bold]in_progress[/bold]); paid 3" in text  # not rendered as markup
