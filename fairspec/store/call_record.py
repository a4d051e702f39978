"""Defines CallRecord: one teacher call as the call store keeps it, and its JSON form.

A record holds what was asked (the parts of its key), what came back and what it
cost. It holds no request headers, no API key and no client settings: the store
never receives them, so no field can carry one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fairspec.store.keys import CallIdentity

#: A completed call: counted as done, never paid for again.
COMPLETED: frozenset[str] = frozenset({"ok", "empty", "truncated"})
#: Every status a record may have; "error" is kept for the report and retried.
STATUSES: tuple[str, ...] = ("ok", "empty", "truncated", "error")
#: Fields the JSON form leaves out when None (added after fairspec 0.1.0: older records,
#: and records without them, keep 0.1.0's form byte for byte).
_OPTIONAL_JSON: tuple[str, ...] = ("score_logprobs", "cached_input_tokens", "reasoning_tokens")


def utc_now() -> str:
    """Now, as the ISO 8601 UTC text (milliseconds) stored in ``created_at``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class CallRecord:
    """One teacher call. Build it with ``CallRecord.create(identity, ...)`` so its key
    matches its parts.

    ``messages`` and ``settings`` are plain lists and dicts (JSON-ready), so a record
    compares by value but is not hashable. ``teacher`` is the display name that made
    the call: informational only, it is not part of the key. ``score_logprobs`` is a
    review's score distribution read from log-probabilities (``ScoreReading.to_json()``),
    None for every other call; its JSON form leaves it out when None, so records of runs
    without log-probability scoring are byte-identical to fairspec 0.1.0's.
    ``cached_input_tokens`` (of ``input_tokens``, those read from the provider's prompt
    cache) and ``reasoning_tokens`` (of ``output_tokens``, those spent thinking) are the
    usage as billed, None where the provider did not report them; left out of the JSON
    form when None, as ``score_logprobs`` is.
    """

    key: str
    provider: str
    base_url: str
    model: str
    messages: list[dict[str, Any]]
    settings: dict[str, Any]
    sample_index: int
    status: str
    text: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    attempts: int = 1
    last_error: str | None = None
    created_at: str = field(default_factory=utc_now)
    teacher: str = ""
    score_logprobs: dict[str, Any] | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status != "error" and not isinstance(self.text, str):
            raise ValueError(f"a {self.status!r} call needs its text (a string), got {self.text!r}")
        if self.text is not None and not isinstance(self.text, str):
            raise ValueError(f"text must be a string or None, got {type(self.text).__name__}")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) \
                or self.attempts < 0:
            raise ValueError(f"attempts must be an int >= 0, got {self.attempts!r}")
        for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be an int or None, got {value!r}")
        if self.score_logprobs is not None and not isinstance(self.score_logprobs, Mapping):
            raise ValueError(f"score_logprobs must be a mapping or None, got {self.score_logprobs!r}")

    @property
    def completed(self) -> bool:
        """True for ok, empty and truncated: the call is done and must not be paid again."""
        return self.status in COMPLETED

    @classmethod
    def create(
        cls,
        identity: CallIdentity,
        *,
        status: str,
        text: str | None = None,
        finish_reason: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        latency_s: float | None = None,
        attempts: int = 1,
        last_error: str | None = None,
        created_at: str | None = None,
        teacher: str = "",
        score_logprobs: Mapping[str, Any] | None = None,
        cached_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> CallRecord:
        """A record of the call ``identity`` names: its key and (normalised) parts."""
        if not isinstance(identity, CallIdentity):
            raise TypeError(f"identity must be a CallIdentity, got {type(identity).__name__}")
        record = cls(
            key=identity.key,
            **identity.parts(),
            status=status,
            text=text,
            finish_reason=finish_reason,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_s=latency_s,
            attempts=attempts,
            last_error=last_error,
            created_at=created_at or utc_now(),
            teacher=teacher,
            score_logprobs=dict(score_logprobs) if score_logprobs is not None else None,
            cached_input_tokens=cached_input_tokens,
            reasoning_tokens=reasoning_tokens,
        )
        object.__setattr__(record, "_keyed_by_create", True)  # not a field: no eq, no JSON
        return record

    @property
    def keyed_by_create(self) -> bool:
        """True for a record ``create`` made: its key is its identity's, hashed from the
        same normalised parts (``dataclasses.replace`` makes a record that is checked again)."""
        return self.__dict__.get("_keyed_by_create", False)

    @property
    def identity(self) -> CallIdentity:
        """The call this record answers, rebuilt (and re-normalised) from its parts."""
        return CallIdentity(self.provider, self.base_url, self.model, self.messages,
                            self.settings, self.sample_index)

    def expected_key(self) -> str:
        """The key this record's parts hash to (equal to ``key`` for a sound record)."""
        return self.identity.key

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object, fields in declaration order (the replay file's form);
        ``score_logprobs``, ``cached_input_tokens`` and ``reasoning_tokens`` only when set."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in _OPTIONAL_JSON:
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallRecord:
        """A record from ``to_json`` output; unknown or missing fields are a ValueError."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown call record field(s) {unknown}")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"call record is missing field(s) {missing}")
        return cls(**dict(data))
