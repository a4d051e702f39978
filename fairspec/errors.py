"""Every exception fairspec raises on purpose, in one place.

    FairspecError                 base of everything below
    ├── SpecError                 the spec is wrong: carries every Problem found, with FILE:LINE:COL
    └── PlanError                 a valid spec cannot be planned here (e.g. a missing run folder)

The CLI maps SpecError to exit status 2 and prints one line per problem; it never
shows a Python traceback for these.
"""

from __future__ import annotations

from dataclasses import dataclass


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


class SpecError(FairspecError):
    """A spec has one or more problems; ``problems`` lists all of them, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col, p.path))
        super().__init__("\n".join(p.format() for p in self.problems))


class PlanError(FairspecError):
    """A valid spec cannot be turned into a plan (or the plan cannot be shown) here."""
