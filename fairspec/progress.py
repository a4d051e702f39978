"""How stages report progress: teacher stages one line per teacher (done/total, retries,
tokens, spend); the exam, training and evaluation one count (rows, steps).

Stages call a ``TeacherProgress`` / ``CountProgress``; the CLI gives them a rich live
display, tests and libraries give nothing (``None``) or their own recorder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol


class TeacherProgress(Protocol):
    def start(self, stage: str, totals: Mapping[str, int]) -> None:
        """``totals``: teacher -> requests the stage expects (reviews: an upper bound)."""

    def update(self, stage: str, caller: Any) -> None:
        """Called after each answered request of ``caller``."""

    def finish(self, stage: str) -> None: ...


def attach(progress: TeacherProgress | None, stage: str, callers: Mapping[str, Any],
           totals: Mapping[str, int]) -> None:
    """Wire ``callers`` (TeacherCallers, each calling its ``on_answer(caller)`` after an
    answered request) to ``progress`` for one stage (no-op without a progress)."""
    if progress is None:
        return
    progress.start(stage, totals)
    for caller in callers.values():
        caller.on_answer = lambda c, stage=stage: progress.update(stage, c)


class CountProgress(Protocol):
    def start_count(self, task: str, total: int, unit: str) -> None:
        """A task of ``total`` units (rows answered, optimizer steps) begins."""

    def count(self, task: str, done: int, note: str = "") -> None:
        """``done`` units of ``task`` are complete; ``note`` is a short status (the loss)."""

    def finish(self, task: str) -> None: ...


def counter(progress: CountProgress | None, task: str, total: int,
            unit: str) -> Callable[..., None] | None:
    """An ``on_progress(done, total, note="")`` callback for ``task`` (None without a progress)."""
    if progress is None or not hasattr(progress, "start_count"):
        return None
    progress.start_count(task, total, unit)

    def update(done: int, _total: int, note: str = "") -> None:
        progress.count(task, done, note)
        if done >= total:
            progress.finish(task)

    return update
