"""The CLI's live view of the stages: per teacher done/total, retries, tokens, spend; for
the exam, training and evaluation a count with its rate and ETA."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text


class _RateColumn(ProgressColumn):
    """Units per second (rows/s, steps/s) since the task began: rows arrive a batch at a time,
    so rich's own speed, taken over the last few updates, would read a batch's burst."""

    def __init__(self, unit: str) -> None:
        super().__init__(table_column=Column(no_wrap=True))  # "0.11 steps/s" stays one line
        self.unit = unit

    def render(self, task) -> Text:  # noqa: ANN001 — rich's Task
        elapsed = task.elapsed
        if not elapsed or not task.completed:
            return Text("")
        return Text(f"{task.completed / elapsed:.2f} {self.unit}/s")


class RichStageProgress:
    """A ``TeacherProgress`` and ``CountProgress`` drawn with rich (a live display on a
    terminal, lines elsewhere)."""

    def __init__(self, console: Console, budget=None) -> None:  # noqa: ANN001 — a run Budget
        self.console = console
        self.budget = budget
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
        if self.budget is not None and self.budget.limit_usd is not None:
            spend += f" (run: ${self.budget.spent_usd:.4f} of ${self.budget.limit_usd:.2f})"
        recorded = f"recorded {usage.recorded}, " if usage.recorded else ""
        detail = (f"{recorded}paid {usage.made}, reused {usage.cached + usage.replayed}, retries "
                  f"{usage.retries}, {usage.input_tokens + usage.output_tokens:,} tok{spend}")
        batch = getattr(caller, "batch", None)
        summary = batch.summary() if batch is not None else ""
        if summary:  # the provider's words: escaped
            detail = f"{escape(summary)}; {detail}"
        self._progress.update(self._tasks[caller.name], completed=usage.calls, detail=detail)

    def start_count(self, task: str, total: int, unit: str) -> None:
        """One bar for a counted task (exam rows, training steps), with rate and ETA."""
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=24),
            MofNCompleteColumn(table_column=Column(no_wrap=True)), TextColumn(unit),
            _RateColumn(unit),
            TimeElapsedColumn(table_column=Column(no_wrap=True, min_width=7)),
            TimeRemainingColumn(table_column=Column(no_wrap=True, min_width=7)),
            # a narrow console cuts the note short rather than wrapping the line
            TextColumn("{task.fields[note]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            console=self.console, transient=False,
        )
        self._tasks = {task: self._progress.add_task(task, total=total, note="")}
        self._progress.start()

    def count(self, task: str, done: int, note: str = "") -> None:
        if self._progress is not None and task in self._tasks:
            self._progress.update(self._tasks[task], completed=done, note=note)

    def finish(self, stage: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
