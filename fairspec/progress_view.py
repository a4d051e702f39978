"""The CLI's live view of teacher stages: per teacher done/total, retries, tokens, spend."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class RichTeacherProgress:
    """A ``TeacherProgress`` drawn with rich (a live display on a terminal, lines elsewhere)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, int] = {}

    def start(self, stage: str, totals: Mapping[str, int]) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self._tasks = {name: self._progress.add_task(f"{stage} {name}", total=total, detail="")
                       for name, total in totals.items()}
        self._progress.start()

    def update(self, stage: str, caller) -> None:  # noqa: ANN001 — a TeacherCaller
        if self._progress is None or caller.name not in self._tasks:
            return
        usage = caller.usage
        spend = "" if usage.spent_usd is None else f" ${usage.spent_usd:.4f}"
        detail = (f"paid {usage.made}, reused {usage.cached + usage.replayed}, retries "
                  f"{usage.retries}, {usage.input_tokens + usage.output_tokens:,} tok{spend}")
        self._progress.update(self._tasks[caller.name], completed=usage.calls, detail=detail)

    def finish(self, stage: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
