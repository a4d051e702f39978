"""Answers teacher calls from a replay file (an exported call store), never by guessing.

The replay provider computes the key of the call it is asked for exactly as the
real provider would (same provider name, base_url, model, messages, settings and
sample index) and looks it up here. A missing call is a ``ReplayMissError`` naming
the model and the start of the first message: a replay never makes up an answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fairspec.errors import FairspecError
from fairspec.store.call_record import CallRecord
from fairspec.store.calls import read_jsonl
from fairspec.store.keys import call_key, normalise_base_url


class ReplayMissError(FairspecError, KeyError):
    """A call the replay file does not hold (a KeyError, so ``except KeyError`` sees it)."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.message = message
        self.key = key

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


def _preview(messages: Sequence[Mapping[str, Any]], limit: int = 80) -> str:
    content = messages[0].get("content") if messages else ""
    text = content if isinstance(content, str) else repr(content)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Replay(Mapping[str, CallRecord]):
    """The completed calls of a replay file, by key (a read-only mapping)."""

    def __init__(self, records: Mapping[str, CallRecord], source: str) -> None:
        self._records = dict(records)
        self.source = source

    def __getitem__(self, key: str) -> CallRecord:
        try:
            return self._records[key]
        except KeyError:
            raise ReplayMissError(f"{self.source} holds no call with key {key!r}", key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def answer(
        self,
        provider: str,
        base_url: str | None,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        settings: Mapping[str, Any],
        sample_index: int,
    ) -> CallRecord:
        """The recorded call with these parts; ``ReplayMissError`` when there is none."""
        key = call_key(provider, base_url, model, messages, settings, sample_index)
        record = self._records.get(key)
        if record is not None:
            return record
        same_model = sum(1 for r in self._records.values() if r.model == model)
        raise ReplayMissError(
            f"{self.source} has no recorded call for model {model!r} (provider {provider!r}, "
            f"base_url {normalise_base_url(base_url)!r}, sample {sample_index}) starting "
            f"{_preview(messages)!r} (key {key[:12]}); it holds {same_model} call(s) of this "
            "model. Record the run with the real provider first, or check that the prompts "
            "and generation settings are unchanged.",
            key,
        )


def load_replay(path: str | os.PathLike[str]) -> Replay:
    """The completed calls of the replay file at ``path`` (error records are skipped)."""
    records = {record.key: record for record in read_jsonl(path) if record.completed}
    return Replay(records, source=str(Path(path)))
