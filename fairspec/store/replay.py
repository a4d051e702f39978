"""Answers teacher calls from a replay file (an exported call store), never by guessing.

A teacher asks with the ``CallIdentity`` of its call, built exactly as for the real
provider (same provider name, base_url, model, messages, settings and sample index),
and its key is looked up here. A missing call is a ``ReplayMissError`` naming
the model and the start of the first message: a replay never makes up an answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fairspec.errors import ReplayMissError
from fairspec.store.call_record import CallRecord
from fairspec.store.calls import read_call_records
from fairspec.store.keys import CallIdentity

__all__ = ["AnyProviderReplay", "Replay", "ReplayMissError", "load_replay"]


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

    def answer(self, identity: CallIdentity) -> CallRecord:
        """The recorded call ``identity`` names; ``ReplayMissError`` when there is none."""
        record = self._records.get(identity.key)
        if record is not None:
            return record
        same_model = sum(1 for r in self._records.values() if r.model == identity.model)
        raise ReplayMissError(
            f"{self.source} has no recorded call for model {identity.model!r} (provider "
            f"{identity.provider!r}, base_url {identity.base_url!r}, sample "
            f"{identity.sample_index}) starting {_preview(identity.messages)!r} (key "
            f"{identity.key[:12]}); it holds {same_model} call(s) of this model. Record the run "
            "with the real provider first, or check that the prompts and generation settings "
            "are unchanged.",
            identity.key,
        )


class AnyProviderReplay:
    """Replay lookups that ignore provider and base_url (``provider: replay`` teachers): the
    calls of ``replay`` indexed by their identity's ``loose_key``."""

    def __init__(self, replay: Replay) -> None:
        self._index = {record.identity.loose_key: record for record in replay.values()}
        self.source = getattr(replay, "source", "replay file")

    def __len__(self) -> int:
        return len(self._index)

    def answer(self, identity: CallIdentity) -> CallRecord:
        """The recorded call with ``identity``'s model, messages, settings and sample index,
        whatever provider and base_url recorded it; ``ReplayMissError`` when there is none."""
        found = self._index.get(identity.loose_key)
        if found is None:
            content = str(identity.messages[0].get("content", ""))
            raise ReplayMissError(f"{self.source} has no recorded call for model "
                                  f"{identity.model!r} starting {content[:60]!r}", identity.key)
        return found


def load_replay(path: str | os.PathLike[str]) -> Replay:
    """The completed calls of the replay file at ``path`` (error records are skipped)."""
    records = {record.key: record for record in read_call_records(path) if record.completed}
    return Replay(records, source=str(Path(path)))
