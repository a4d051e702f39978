"""Errors a teacher provider raises, in one place.

    FairspecError                  (fairspec.errors)
    └── ProviderError              a teacher could not answer a call
        ├── FatalProviderError     retrying cannot help (401/403, 400, unknown model 404, a missing
        │                          key variable): stop this teacher now; the message says what to fix
        └── RetryableExhausted     every retry of a transient failure (429, 5xx, timeout,
                                   connection) was used up; carries ``attempts`` and ``last_error``

Messages name the teacher, never its API key: every server text is scrubbed of the key
before it reaches an exception (the SDKs' own exceptions are not chained, since some
servers echo the key they were sent).
"""

from __future__ import annotations

from fairspec.errors import FairspecError


class ProviderError(FairspecError):
    """A teacher could not answer a call; ``teacher`` is its name."""

    def __init__(self, teacher: str, message: str) -> None:
        self.teacher = teacher
        super().__init__(message)


class FatalProviderError(ProviderError):
    """Retrying cannot help: ``status`` is the HTTP status (None before any request), ``hint``
    what to fix, ``attempts`` how many requests were sent (0 or 1)."""

    def __init__(
        self,
        teacher: str,
        message: str,
        *,
        status: int | None = None,
        hint: str | None = None,
        attempts: int = 0,
    ) -> None:
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
