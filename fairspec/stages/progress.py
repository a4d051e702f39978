"""How teacher stages report progress: one line per teacher (done/total, retries, tokens, spend).

Stages call a ``TeacherProgress``; the CLI gives them a rich live display, tests and
libraries give nothing (``None``) or their own recorder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .calls import TeacherCaller


class TeacherProgress(Protocol):
    def start(self, stage: str, totals: Mapping[str, int]) -> None:
        """``totals``: teacher -> requests the stage expects (reviews: an upper bound)."""

    def update(self, stage: str, caller: TeacherCaller) -> None:
        """Called after each answered request of ``caller``."""

    def finish(self, stage: str) -> None: ...


def attach(progress: TeacherProgress | None, stage: str, callers: Mapping[str, TeacherCaller],
           totals: Mapping[str, int]) -> None:
    """Wire ``callers`` to ``progress`` for one stage (no-op without a progress)."""
    if progress is None:
        return
    progress.start(stage, totals)
    for caller in callers.values():
        caller.on_answer = lambda c, stage=stage: progress.update(stage, c)
