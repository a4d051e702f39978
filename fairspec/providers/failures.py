"""Turns an HTTP error status from any teacher API into a retry or a fatal error with a hint."""

from __future__ import annotations

from collections.abc import Mapping

from fairspec.providers.errors import FatalProviderError
from fairspec.providers.limits import RETRYABLE_STATUSES, TransientFailure, retry_after_seconds

#: Error codes some APIs send with a 429 that no wait will fix (an empty account).
_NO_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


def status_failure(
    *,
    teacher: str,
    model: str,
    base_url: str | None,
    key_env: str | None,
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
) -> TransientFailure | FatalProviderError:
    """The exception for an error response; ``message`` must already be scrubbed."""
    where = base_url or "the provider's default endpoint"
    if status == 429 and code in _NO_QUOTA_CODES:
        return FatalProviderError(
            teacher,
            f"HTTP 429 {code}: {message}",
            status=status,
            hint="the account has no quota left; add credit or use another key",
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        return TransientFailure(
            f"HTTP {status}: {message}", status=status, retry_after=retry_after_seconds(headers)
        )
    if status in (401, 403) or (status == 400 and "api key" in message.lower()):
        key = f"the key in {key_env}" if key_env else "an API key (api_key_env is not set)"
        hint = (
            f"set {key_env} to a valid key for {where}"
            if key_env
            else f"name the key variable with api_key_env for {where}"
        )
        return FatalProviderError(
            teacher,
            f"HTTP {status}: {where} refused {key}: {message}",
            status=status,
            hint=hint,
        )
    if status == 404:
        return FatalProviderError(
            teacher,
            f"HTTP 404: model {model!r} or its endpoint not found at {where}: {message}",
            status=status,
            hint="check the model name and base_url",
        )
    return FatalProviderError(
        teacher,
        f"HTTP {status}: the request was rejected: {message}",
        status=status,
        hint="check the model name and the generation settings this API accepts",
    )
