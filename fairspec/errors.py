"""Every exception fairspec raises on purpose, in one tree; each class carries its exit status.

    FairspecError (exit 2)           base of everything below
    ├── SpecError                    the spec is wrong: every Problem found, with FILE:LINE:COL
    ├── PlanError                    a valid spec cannot be planned here (or the graph is broken)
    ├── DataError                    a dataset split cannot be read, lacks a column, has bad rows
    ├── RecordedError                a recorded answers file cannot answer as the spec says
    ├── RecordedMissing              questions the recorded files do not answer (no live teacher)
    ├── TemplateRenderError          a template failed while rendering
    ├── ModelNotAvailable            a model reference cannot be loaded here (what to install)
    ├── ProviderError                a teacher could not answer a call
    │   ├── FatalProviderError       retrying cannot help (bad key, unknown model): stop the teacher
    │   └── RetryableExhausted       every retry of a transient failure was used up
    ├── ReplayMissError              a replay file holds no answer for a call (also a KeyError)
    ├── StageError                   a stage could not finish; what it completed is kept
    │   ├── TeacherStopped           a teacher stage stopped (fatal provider error, failed calls)
    │   ├── TrainingFailed           the training process failed; checkpoints kept for resume
    │   ├── TrackerFailed            an experiment tracker could not be reached or written
    │   └── EngineFailed             a replica of a data-parallel exam failed (its log named)
    ├── StageContractError           a stage read or wrote an artifact its plan does not declare
    ├── PreflightError               `fairspec run` found problems before starting anything
    ├── DiffError                    a side of `fairspec diff` is neither a spec nor a record
    ├── OutputBusy                   another fairspec run holds the output folder (its pid, host)
    ├── StoreDamaged                 the call store is not a store, or lacks calls a stage used
    ├── StoreWriteFailed             answered calls could not be saved (disk full, store locked)
    └── BudgetReached (exit 3)       the next teacher call could pass the spending limit

Outside the tree, internal: ``TransientFailure`` (one attempt of a teacher call failed in
a way another may not; raised by the providers and always caught by their retry loop), and
two raised and caught inside one module each: ``template_sandbox.Overrun`` (a render past
its bounds, reported as a TemplateRenderError) and ``dsl.source._TooBig`` (a spec file past
its size, reported as a SpecError). ``tests/test_errors.py`` checks this tree against the
classes.

The CLI maps any of them to ``exit_status`` with one handler and prints the message (one
line per problem for a SpecError); it never shows a Python traceback for these.
Ctrl-C exits 130 and SIGTERM 143 (both stop a run the same way), outside this tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

EXIT_USER_ERROR = 2
EXIT_BUDGET = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


@dataclass(frozen=True)
class Problem:
    """One user error: where it is (file, 1-based line and column, field path), what, a hint."""

    file: str
    line: int
    col: int
    path: str
    message: str
    hint: str | None = None

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        field = f" {self.path}:" if self.path else ""
        text = f"{where}:{field} {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class FairspecError(Exception):
    """Base of every error fairspec raises on purpose."""

    exit_status: ClassVar[int] = EXIT_USER_ERROR

    def lines(self) -> list[str]:
        """What the CLI prints for this error, one line each."""
        return [f"error: {self}"]


class SpecError(FairspecError):
    """A spec has one or more problems; ``problems`` lists all of them, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col, p.path))
        super().__init__("\n".join(p.format() for p in self.problems))

    def lines(self) -> list[str]:
        count = len(self.problems)
        return [p.format() for p in self.problems] + [
            f"{count} problem{'s' if count != 1 else ''} found."]


class PlanError(FairspecError):
    """A valid spec cannot be turned into a plan (or the plan cannot be shown) here."""


class DataError(FairspecError):
    """A split cannot be read, lacks a mapped column, or has bad rows.

    ``problems`` holds one line per problem (all of them, even when the message lists
    only the first few).
    """

    def __init__(self, message: str, problems: list[str] | tuple[str, ...] = ()) -> None:
        self.problems = list(problems)
        super().__init__(message)


class TemplateRenderError(FairspecError):
    """A template failed while rendering (undefined variable, sandbox violation, ...)."""


class ModelNotAvailable(FairspecError):
    """A model reference that cannot be loaded here; the message says what to install."""


class ProviderError(FairspecError):
    """A teacher could not answer a call; ``teacher`` is its name.

    Messages name the teacher, never its API key: every server text is scrubbed of the
    key before it reaches an exception (the SDKs' own exceptions are not chained, since
    some servers echo the key they were sent).
    """

    def __init__(self, teacher: str, message: str) -> None:
        self.teacher = teacher
        super().__init__(message)


class FatalProviderError(ProviderError):
    """Retrying cannot help: ``status`` is the HTTP status (None before any request), ``hint``
    what to fix, ``attempts`` how many requests were sent (0 or 1)."""

    def __init__(self, teacher: str, message: str, *, status: int | None = None,
                 hint: str | None = None, attempts: int = 0) -> None:
        self.status = status
        self.hint = hint
        self.attempts = attempts
        text = f"teacher {teacher!r}: {message}"
        if hint:
            text += f" (fix: {hint})"
        super().__init__(teacher, text)


class RetryableExhausted(ProviderError):
    """All ``attempts`` failed with transient errors; ``last_error`` is the last one, scrubbed."""

    def __init__(self, teacher: str, *, attempts: int, last_error: str) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            teacher,
            f"teacher {teacher!r}: gave up after {attempts} attempt(s); last error: {last_error}",
        )


class ReplayMissError(FairspecError, KeyError):
    """A call the replay file does not hold (a KeyError, so ``except KeyError`` sees it)."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.message = message
        self.key = key

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class StageError(FairspecError):
    """A stage could not finish; everything it completed is kept for the next run."""


class TeacherStopped(StageError):
    """A teacher stage could not finish (a fatal provider error, or calls that kept failing);
    every completed call is kept in the store."""


class TrainingFailed(StageError):
    """The training process failed; its checkpoints are kept for a resumed run."""


class TrackerFailed(StageError):
    """An experiment tracker of ``training.report_to`` could not be reached or written."""


class EngineFailed(StageError):
    """An exam engine replica (a process of a data-parallel exam) failed; the rows answered
    before it are kept, and its log is named."""


class StageContractError(FairspecError):
    """A stage read or wrote an artifact that its plan does not declare (a bug in the stage)."""


class RecordedError(FairspecError):
    """A recorded file cannot answer as the spec says (unreadable, a column or item missing)."""


class RecordedMissing(FairspecError):
    """Questions the recorded files do not answer, and no live teacher to ask instead."""


class PreflightError(FairspecError):
    """``fairspec run`` found problems before starting anything (exit 2)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) found before anything ran:\n"
                         + "\n".join(f"  - {p}" for p in self.problems)
                         + "\nnothing was started; fix these and run again")


class DiffError(FairspecError):
    """A side of a diff is neither a spec nor a record, or the two cannot be paired."""


class OutputBusy(FairspecError):
    """Another ``fairspec run`` holds the output folder (and its call store): two runs of one
    spec at once would pay for the same calls twice."""


class StoreDamaged(FairspecError):
    """The call store cannot be read (not a store, truncated, a newer schema) or lacks calls
    that finished stages used: going on would pay them again or lose the run's record."""


class StoreWriteFailed(FairspecError):
    """Answered teacher calls could not be committed to the call store after every retry (the
    disk is full, another program holds the store's lock): the run stops, having saved every
    call it could; those are asked again by the next run. ``unsaved()`` counts them when the
    message is shown (the calls on their way when the first failed may fail too)."""

    def __init__(self, reason: str, unsaved: Callable[[], int]) -> None:
        super().__init__(reason)
        self.reason, self.unsaved = reason, unsaved

    def __str__(self) -> str:
        return (f"{self.unsaved()} answered teacher call(s) could not be saved in the call "
                f"store ({self.reason}); every other call is saved. Free the disk or the "
                "store's lock and run again: those calls are asked again")


class BudgetReached(FairspecError):
    """The next teacher call could pass the spending limit; nothing past it was sent."""

    exit_status: ClassVar[int] = EXIT_BUDGET

    def lines(self) -> list[str]:
        return [str(self)]


class TransientFailure(Exception):
    """One attempt failed in a way another attempt may not (raised by providers, caught by the
    retry loop, never by a user). ``message`` must already be scrubbed of secrets."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)
