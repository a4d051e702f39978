"""Errors a teacher provider raises (defined in :mod:`fairspec.errors`, named here).

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

# One definition of each, in the package-wide tree: ``except fairspec.errors.ProviderError``
# and ``except fairspec.providers.ProviderError`` catch the same errors.
from fairspec.errors import FatalProviderError, ProviderError, RetryableExhausted

__all__ = ["FatalProviderError", "ProviderError", "RetryableExhausted"]
