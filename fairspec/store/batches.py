"""The batch ledger: which teacher calls were sent in which provider batch, in the call store.

A batch teacher (``batch: true``) sends its calls through the provider's batch API. The
ledger lives in the same SQLite file as the calls (two tables, ``batches`` and
``batch_items``), so it is as durable as they are and shared the same way:

* a submission is written *before* the provider is asked to create it (state
  ``submitting``, every item with its call key and its whole request), and the
  provider's batch id is written the moment it is returned (state ``running``): a run
  killed at any point finds every batch it may have paid for, and resumes by polling
  it, never by sending its requests again;
* each item is marked when its result is read (``answered``, ``failed``, ``expired``) and
  the batch is closed (``done``, or ``failed`` when the provider rejected it whole);
* an item's request (provider, base_url, model, messages, settings, sample index) is kept
  so that a result read by a later invocation is stored as the call it answers, whoever
  asks for it then.

Nothing here talks to a provider; :mod:`fairspec.teachers.batch_queue` does.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fairspec.store.call_record import utc_now
from fairspec.store.calls import CallStore
from fairspec.store.keys import CallIdentity, canonical_json

#: A batch the provider may still be working on (or that may exist there: ``submitting``).
OPEN = ("submitting", "running")
#: An item waiting for its result.
PENDING = "pending"
ITEM_STATES = (PENDING, "answered", "failed", "expired", "unsent")

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    provider TEXT NOT NULL,
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    remote_id TEXT,
    state TEXT NOT NULL,
    remote_state TEXT,
    requests INTEGER NOT NULL,
    answered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    reserved_usd REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    detail TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_items (
    batch TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (batch, custom_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_items_key ON batch_items (key, state);
CREATE INDEX IF NOT EXISTS batches_state ON batches (state);
"""

_BATCH_COLUMNS = ("id", "teacher", "provider", "base_url", "model", "remote_id", "state",
                  "remote_state", "requests", "answered", "failed", "reserved_usd",
                  "created_at", "updated_at", "detail")


@dataclass(frozen=True)
class BatchRow:
    """One submission: fairspec's ``id`` (also sent to the provider as metadata / display
    name), the provider's ``remote_id``, fairspec's ``state`` (submitting, running, done,
    failed) and the provider's own word for it (``remote_state``)."""

    id: str
    teacher: str
    provider: str
    base_url: str
    model: str
    remote_id: str | None
    state: str
    remote_state: str | None
    requests: int
    answered: int
    failed: int
    reserved_usd: float
    created_at: str
    updated_at: str
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch: its ``custom_id`` in the batch, the call ``key`` it answers,
    the call itself (``identity``) and which submission of that call this is."""

    batch: str
    custom_id: str
    key: str
    identity: CallIdentity
    attempt: int
    state: str


def _request_json(identity: CallIdentity) -> str:
    return canonical_json({"provider": identity.provider, "base_url": identity.base_url,
                           "model": identity.model, "messages": identity.messages,
                           "settings": identity.settings, "sample_index": identity.sample_index})


def _identity(text: str) -> CallIdentity:
    data = json.loads(text)
    return CallIdentity(data["provider"], data["base_url"] or None, data["model"],
                        data["messages"], data["settings"], data["sample_index"])


class BatchLedger:
    """The ``batches`` and ``batch_items`` tables of a :class:`CallStore`'s file."""

    def __init__(self, store: CallStore) -> None:
        self.store = store
        with store.transaction() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    # -- writing --------------------------------------------------------------------------

    def submitting(self, *, teacher: str, provider: str, base_url: str | None, model: str,
                   items: Sequence[tuple[str, CallIdentity, int]], reserved_usd: float) -> str:
        """Write a submission about to be created (items: custom_id, call, attempt) and
        return its id; committed when this returns."""
        batch_id = f"fsb-{secrets.token_hex(8)}"
        now = utc_now()
        with self.store.transaction() as conn:
            conn.execute(
                f"INSERT INTO batches ({', '.join(_BATCH_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _BATCH_COLUMNS)})",
                (batch_id, teacher, provider, base_url or "", model, None, "submitting", None,
                 len(items), 0, 0, reserved_usd, now, now, None))
            conn.executemany(
                "INSERT INTO batch_items (batch, custom_id, key, request, attempt, state) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(batch_id, custom_id, identity.key, _request_json(identity), attempt, PENDING)
                 for custom_id, identity, attempt in items])
        return batch_id

    def running(self, batch_id: str, remote_id: str, remote_state: str | None) -> None:
        """The provider created the batch: its id, committed when this returns."""
        self._update(batch_id, remote_id=remote_id, state="running", remote_state=remote_state)

    def observed(self, batch_id: str, remote_state: str | None, detail: str | None = None) -> None:
        self._update(batch_id, remote_state=remote_state, detail=detail)

    def mark(self, batch_id: str, states: Iterable[tuple[str, str]]) -> None:
        """Set items' states (custom_id, state) and the batch's answered/failed counts."""
        rows = [(state, batch_id, custom_id) for custom_id, state in states]
        if not rows:
            return
        with self.store.transaction() as conn:
            conn.executemany("UPDATE batch_items SET state = ? WHERE batch = ? AND custom_id = ?",
                             rows)
            self._recount(conn, batch_id)

    def close(self, batch_id: str, state: str, detail: str | None = None) -> None:
        """The batch is finished (``done``) or rejected whole (``failed``); items still
        pending become ``unsent`` (the provider never ran them)."""
        with self.store.transaction() as conn:
            conn.execute("UPDATE batch_items SET state = 'unsent' WHERE batch = ? AND state = ?",
                         (batch_id, PENDING))
            self._recount(conn, batch_id)
            conn.execute("UPDATE batches SET state = ?, detail = COALESCE(?, detail), "
                         "updated_at = ? WHERE id = ?", (state, detail, utc_now(), batch_id))

    def _recount(self, conn: Any, batch_id: str) -> None:
        conn.execute(
            "UPDATE batches SET answered = (SELECT COUNT(*) FROM batch_items WHERE batch = ? "
            "AND state = 'answered'), failed = (SELECT COUNT(*) FROM batch_items WHERE batch = ? "
            "AND state IN ('failed', 'expired')), updated_at = ? WHERE id = ?",
            (batch_id, batch_id, utc_now(), batch_id))

    def _update(self, batch_id: str, **values: Any) -> None:
        values = {k: v for k, v in values.items() if v is not None}  # None: left as it is
        values["updated_at"] = utc_now()
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self.store.transaction() as conn:
            conn.execute(f"UPDATE batches SET {assignments} WHERE id = ?",
                         (*values.values(), batch_id))

    # -- reading --------------------------------------------------------------------------

    def batch(self, batch_id: str) -> BatchRow:
        rows = self.store.query(f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches WHERE id = ?",
                                (batch_id,))
        if not rows:
            raise KeyError(f"no batch {batch_id} in {self.store.path}")
        return BatchRow(*rows[0])

    def batches(self, *, teacher: str | None = None, open_only: bool = False) -> list[BatchRow]:
        """Every submission (of ``teacher``; only those still open), oldest first."""
        where, params = [], []
        if teacher is not None:
            where.append("teacher = ?")
            params.append(teacher)
        if open_only:
            where.append(f"state IN ({', '.join('?' for _ in OPEN)})")
            params.extend(OPEN)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.store.query(f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches{clause} "
                                "ORDER BY created_at, id", tuple(params))
        return [BatchRow(*row) for row in rows]

    def items(self, batch_id: str, *, state: str | None = None) -> list[BatchItem]:
        where = " AND state = ?" if state is not None else ""
        rows = self.store.query(
            "SELECT batch, custom_id, key, request, attempt, state FROM batch_items "
            f"WHERE batch = ?{where} ORDER BY custom_id", (batch_id, *([state] if state else [])))
        return [BatchItem(b, c, k, _identity(r), a, s) for b, c, k, r, a, s in rows]

    def pending_batch(self, key: str) -> str | None:
        """The open batch that holds the call ``key`` still unanswered, if any."""
        rows = self.store.query(
            "SELECT i.batch FROM batch_items i JOIN batches b ON b.id = i.batch "
            f"WHERE i.key = ? AND i.state = ? AND b.state IN ({', '.join('?' for _ in OPEN)}) "
            "ORDER BY b.created_at DESC LIMIT 1", (key, PENDING, *OPEN))
        return rows[0][0] if rows else None

    def attempts(self, key: str) -> int:
        """How many times the call ``key`` was submitted in a batch (failed or expired)."""
        rows = self.store.query("SELECT COALESCE(MAX(attempt), 0) FROM batch_items WHERE key = ?",
                                (key,))
        return int(rows[0][0])
