"""Keeps every teacher call in one SQLite file, durable the moment ``put`` returns.

One file per output folder (``<output_dir>/calls.sqlite``), shared by every run
and variant that writes there, so no call is paid for twice.

Durability. The database runs in WAL mode with ``synchronous=FULL``: a write is a
short ``BEGIN IMMEDIATE`` transaction whose commit fsyncs the WAL before the write
returns. WAL with ``synchronous=NORMAL`` would already survive kill -9 or Ctrl-C (the
commit is in the OS page cache), but a power loss or kernel crash could roll back the
last commits, i.e. calls that were paid for. FULL survives both.

Two ways in. ``put`` (and ``put_many``) store from any thread and return once durable.
``await commit(record)`` is for the event loop: the record goes to the store's writer
thread (:mod:`fairspec.store.group_commit`), which commits whatever has arrived in one
transaction, and the ``await`` returns once that transaction is durable: the same
guarantee, one fsync for a whole group of calls, and the loop never waits for SQLite.

Concurrency. Several processes (two variants at once) may share the file: writes
are serialised by SQLite's lock, with a busy timeout so a writer waits instead of
failing; readers never block. Within a process the connection is guarded by a
lock; the writer thread has its own connection.
The file must live on a local disk: WAL does not work over a network filesystem.

Rules. ``get`` answers only completed calls (ok, empty, truncated). An error
record is kept for the report but never blocks a retry; a later success replaces
it. A completed record is never overwritten: the first one wins, and a second
completion with a different text is logged and dropped.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from fairspec.errors import DataError, StoreDamaged
from fairspec.secrets import redact
from fairspec.store.call_record import COMPLETED, CallRecord
from fairspec.store.group_commit import CommitCounts, GroupCommitter
from fairspec.store.keys import canonical_json

logger = logging.getLogger(__name__)

#: The store's file name inside a run's output_dir.
CALLS_FILENAME = "calls.sqlite"
#: 1: fairspec 0.1.0; 2 adds ``score_logprobs``; 3 keeps the rows in a rowid table with a
#: unique key index (a WITHOUT ROWID table of rows this large made each insert ~3x the
#: CPU); 4 adds ``cached_input_tokens`` and ``reasoning_tokens`` (the usage as billed). A
#: store of an older schema is upgraded in place, keeping every call (the new columns are
#: NULL for its calls: not reported).
SCHEMA_VERSION = 4
BUSY_TIMEOUT_MS = 60_000
#: Opening a store locked by another program: after this long a line says so and what it
#: waits for (the rest of BUSY_TIMEOUT_MS), rather than a silent minute.
SAY_LOCKED_AFTER_MS = 2_000
#: Keys per ``IN (...)`` query in ``get_many`` (well under SQLite's variable limit).
_CHUNK = 500

_COLUMNS = (
    "key", "provider", "base_url", "model", "messages", "settings", "sample_index", "status",
    "text", "finish_reason", "input_tokens", "output_tokens", "latency_s", "attempts",
    "last_error", "created_at", "teacher", "score_logprobs", "cached_input_tokens",
    "reasoning_tokens",
)
#: columns added after schema 1, with their types: an older table gets them in place
_ADDED = (("score_logprobs", "TEXT"), ("cached_input_tokens", "INTEGER"),
          ("reasoning_tokens", "INTEGER"))
_DONE = f"status IN ({', '.join(repr(status) for status in sorted(COMPLETED))})"
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM calls"
_INSERT = (f"INSERT OR REPLACE INTO calls ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)})")
#: a call not stored yet (the common case): one statement, no read first
_INSERT_NEW = (f"INSERT INTO calls ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join('?' for _ in _COLUMNS)}) ON CONFLICT (key) DO NOTHING")
#: calls per multi-row insert (20 columns each, well under SQLite's 32,766 variables)
_ROWS_PER_INSERT = 512
#: How many answers a store keeps in memory for twin teachers (``CallStore.recent``).
RECENT = 4096
#: What a teacher's key is replaced by in a stored reply (:meth:`CallStore.protect`).
KEY_REMOVED = "[API key removed]"


@functools.lru_cache(maxsize=64)
def _insert_new(rows: int) -> str:
    """``_INSERT_NEW`` for ``rows`` calls at once."""
    one = f"({', '.join('?' for _ in _COLUMNS)})"
    return (f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES {', '.join([one] * rows)} "
            "ON CONFLICT (key) DO NOTHING")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    messages TEXT NOT NULL,
    settings TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    text TEXT,
    finish_reason TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    latency_s REAL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    teacher TEXT NOT NULL,
    score_logprobs TEXT,
    cached_input_tokens INTEGER,
    reasoning_tokens INTEGER
);
CREATE INDEX IF NOT EXISTS calls_teacher_status ON calls (teacher, status);
"""


def default_store_path(output_dir: str | os.PathLike[str]) -> Path:
    """Where a run folder's call store lives: ``<output_dir>/calls.sqlite``."""
    return Path(output_dir) / CALLS_FILENAME


def completed_calls(path: str | os.PathLike[str], keys: Iterable[str]
                    ) -> dict[str, tuple[str, str | None, int | None]]:
    """key -> (status, text, output tokens) of the completed calls among ``keys`` in the store
    at ``path``, read without writing to it: a read-only connection, no lock taken, no schema
    upgraded (what ``fairspec plan`` may do to a store a run is using). A file that is not a
    store is a :class:`StoreDamaged`."""
    wanted = list(dict.fromkeys(keys))
    found: dict[str, tuple[str, str | None, int | None]] = {}
    if not wanted:
        return found
    done = ", ".join("?" for _ in COMPLETED)
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                query = (f"SELECT key, status, text, output_tokens FROM calls WHERE key IN "
                         f"({', '.join('?' for _ in chunk)}) AND status IN ({done})")
                for key, status, text, tokens in conn.execute(query, [*chunk, *sorted(COMPLETED)]):
                    found[key] = (status, text, tokens)
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise StoreDamaged(f"{path}: not a readable call store ({error})") from None
    return found


@dataclass(frozen=True)
class CallStats:
    """Totals of the calls of one teacher with one status (a row of the cost table)."""

    teacher: str
    status: str
    calls: int
    attempts: int
    input_tokens: int
    output_tokens: int
    latency_s_total: float
    latency_s_mean: float | None
    latency_s_max: float | None
    cached_input_tokens: int = 0   # of input_tokens, read from the prompt cache
    reasoning_tokens: int = 0      # of output_tokens, spent thinking


def _row(record: CallRecord) -> tuple[Any, ...]:
    values = {name: getattr(record, name) for name in _COLUMNS}
    values["messages"] = canonical_json(record.messages)
    values["settings"] = canonical_json(record.settings)
    values["score_logprobs"] = (canonical_json(record.score_logprobs)
                                if record.score_logprobs is not None else None)
    return tuple(values[name] for name in _COLUMNS)


def _record(row: tuple[Any, ...]) -> CallRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["messages"] = json.loads(values["messages"])
    values["settings"] = json.loads(values["settings"])
    if values["score_logprobs"] is not None:
        values["score_logprobs"] = json.loads(values["score_logprobs"])
    return CallRecord(**values)


class CallStore:
    """The call store in one SQLite file; a context manager. See the module docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
            check_same_thread=False,
        )
        self._writer: GroupCommitter | None = None
        self._secrets: list[str] = []
        #: call key -> the future of that call on its way (the teachers' callers share it:
        #: one request for one key, whichever teacher asks; see TeacherCaller.ask)
        self.in_flight: dict[str, Any] = {}
        #: the calls answered lately in this process, by key (at most RECENT): a caller whose
        #: lookahead found nothing checks here before paying (a twin teacher answered it)
        self.recent: collections.OrderedDict[str, CallRecord] = collections.OrderedDict()
        #: replies stored with a key value replaced by KEY_REMOVED (:meth:`protect`)
        self.secrets_removed = 0
        try:
            self._setup()
        except sqlite3.DatabaseError as error:  # not a database, truncated, locked too long
            self._conn.close()
            locked = "locked" in str(error)
            raise StoreDamaged(
                f"{self.path}: " + (f"locked by another process for over {BUSY_TIMEOUT_MS / 1000:g} s "
                                    "(another fairspec run, or a program holding it open)"
                                    if locked else f"not a readable call store ({error})")
                + ("" if locked else "; move it aside to start an empty store (its calls "
                   "would be asked again), or put back a good copy")) from None
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        """The writer thread's own connection to the (already set up) file."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = FULL")  # per connection, like the main one's
        return conn

    def _setup(self) -> None:
        """Set the file up, waiting for another program's lock: quietly for
        SAY_LOCKED_AFTER_MS, then with a line saying so, up to BUSY_TIMEOUT_MS in all."""
        first = min(SAY_LOCKED_AFTER_MS, BUSY_TIMEOUT_MS)
        try:
            self._setup_waiting(first)
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or first >= BUSY_TIMEOUT_MS:
                raise
            logger.warning("%s is locked by another program (a sqlite3 shell, a backup, a "
                           "viewer holding it open?): waiting up to %g s more for it",
                           self.path, (BUSY_TIMEOUT_MS - first) / 1000)
            self._setup_waiting(BUSY_TIMEOUT_MS - first)
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _setup_waiting(self, wait_ms: int) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        # Switching to WAL needs a brief exclusive lock that the busy handler does not
        # always cover when two processes create the file at once: retry it.
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"{self.path}: cannot use WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        with self._transaction():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreDamaged(f"{self.path} has call store schema {version}; this fairspec "
                                   f"reads up to {SCHEMA_VERSION} (upgrade fairspec)")
            found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' "
                                 "AND name = 'calls'").fetchone()
            if found is not None:
                _add_columns(conn)  # schema 1 to 3: the columns added since, NULL for old calls
            if found is not None and "WITHOUT ROWID" in found[0].upper():
                _upgrade_to_rowid(conn)  # schema 1 or 2: the same calls in a rowid table
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking SQLite's write lock up front (no upgrade deadlock)."""
        with self._lock, _immediate(self._conn) as conn:
            yield conn

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One write transaction on the store's file, committed (and fsynced) when the
        block ends: for the tables that live beside the calls (the batch ledger)."""
        return self._transaction()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement on the store's file."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- reading ------------------------------------------------------------------------

    def get(self, key: str, *, include_errors: bool = False) -> CallRecord | None:
        """The completed call with this key, or None (an error record only when asked)."""
        with self._lock:
            row = self._conn.execute(f"{_SELECT} WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        record = _record(row)
        return record if include_errors or record.completed else None

    def get_many(self, keys: Iterable[str], *,
                 include_errors: bool = False) -> dict[str, CallRecord]:
        """The completed calls among ``keys``, by key (absent keys are simply missing)."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, CallRecord] = {}
        status_filter = "" if include_errors else f" AND {_DONE}"
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start:start + _CHUNK]
                marks = ", ".join("?" for _ in chunk)
                for row in self._conn.execute(
                        f"{_SELECT} WHERE key IN ({marks}){status_filter}", chunk):
                    found[row[0]] = _record(row)
        return found

    def records(self, *, include_errors: bool = True) -> Iterator[CallRecord]:
        """Every record, ordered by key (errors too unless ``include_errors`` is False)."""
        where = "" if include_errors else f" WHERE {_DONE}"
        with self._lock:
            rows = self._conn.execute(f"{_SELECT}{where} ORDER BY key").fetchall()
        return (_record(row) for row in rows)

    def count(self, *, include_errors: bool = False) -> int:
        """How many completed calls the store holds (all records when ``include_errors``)."""
        where = "" if include_errors else f" WHERE {_DONE}"
        with self._lock:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM calls{where}").fetchone()[0])

    def stats(self) -> list[CallStats]:
        """Calls, attempts, tokens and latency per (teacher, status), sorted by both."""
        query = (
            "SELECT teacher, status, COUNT(*), COALESCE(SUM(attempts), 0), "
            "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
            "COALESCE(SUM(latency_s), 0.0), AVG(latency_s), MAX(latency_s), "
            "COALESCE(SUM(cached_input_tokens), 0), COALESCE(SUM(reasoning_tokens), 0) "
            "FROM calls GROUP BY teacher, status ORDER BY teacher, status"
        )
        with self._lock:
            rows = self._conn.execute(query).fetchall()
        return [CallStats(*row) for row in rows]

    # -- writing ------------------------------------------------------------------------

    @staticmethod
    def _merge(conn: sqlite3.Connection, record: CallRecord) -> tuple[CallRecord, bool]:
        """Write ``record`` unless the stored one must win: (the record now stored under its
        key, whether ``record`` was written)."""
        if conn.execute(_INSERT_NEW, _row(record)).rowcount == 1:  # a new key: written
            return record, True
        row = conn.execute(f"{_SELECT} WHERE key = ?", (record.key,)).fetchone()
        old = _record(row) if row else None
        if old is not None and old.completed:
            if record.completed and record.text != old.text:
                logger.warning(
                    "call %s (model %s, teacher %s) is already completed with another text; "
                    "keeping the first one", record.key[:12], record.model,
                    record.teacher or old.teacher)
            return old, False
        if old is not None and not record.completed and record.created_at < old.created_at:
            return old, False  # an older error never replaces a newer one
        if old == record:
            return old, False
        conn.execute(_INSERT, _row(record))
        return record, True

    def _checked(self, record: CallRecord) -> CallRecord:
        if not isinstance(record, CallRecord):
            raise ValueError(f"expected a CallRecord, got {type(record).__name__}")
        expected = record.key if record.keyed_by_create else record.expected_key()
        if record.key != expected:
            raise ValueError(
                f"record key {record.key!r} does not match its parts (expected {expected!r}); "
                "build records with CallRecord.create")
        if record.last_error is not None and redact(record.last_error) != record.last_error:
            # Provider errors may quote a rejected key: never store one.
            record = dataclasses.replace(record, last_error=redact(record.last_error))
        return record

    def remember(self, record: CallRecord) -> None:
        """Keep ``record`` (a call just answered and stored) among the recent answers."""
        self.recent[record.key] = record
        self.recent.move_to_end(record.key)
        while len(self.recent) > RECENT:
            self.recent.popitem(last=False)

    def protect(self, values: Iterable[str | None]) -> None:
        """Never store these values (the teachers' keys): a reply that holds one (a server
        that echoes its Authorization header) is stored with ``KEY_REMOVED`` in its place,
        counted in ``secrets_removed``. Values under 8 characters are not keys and are left."""
        with self._lock:
            found = set(self._secrets) | {v for v in values if v and len(v) >= 8}
            self._secrets = sorted(found, key=len, reverse=True)

    def _without_secrets(self, record: CallRecord) -> CallRecord:
        changes: dict[str, str] = {}
        for field in ("text", "last_error"):
            value = getattr(record, field)
            if not value:
                continue
            cleaned = value
            for secret in self._secrets:
                cleaned = cleaned.replace(secret, KEY_REMOVED)
            if cleaned != value:
                changes[field] = cleaned
        if not changes:
            return record
        self.secrets_removed += 1
        logger.warning("a reply of teacher %s held its API key: stored with %s in its place",
                    record.teacher, KEY_REMOVED)
        return dataclasses.replace(record, **changes)

    def put(self, record: CallRecord) -> CallRecord:
        """Store one call durably (committed and fsynced when this returns) and return
        the record now stored under its key: ``record``, or the first completion."""
        record = self._without_secrets(self._checked(record))
        with self._transaction() as conn:
            return self._merge(conn, record)[0]

    def put_many(self, records: Iterable[CallRecord]) -> int:
        """Store many calls in one transaction (same rules as ``put``); how many changed."""
        checked = [self._without_secrets(self._checked(record)) for record in records]
        changed = 0
        with self._transaction() as conn:
            for record in checked:
                changed += self._merge(conn, record)[1]
        return changed

    async def commit(self, record: CallRecord) -> CallRecord:
        """Store one call from the event loop (same rules as ``put``): it joins the calls
        waiting for the writer thread, which commits them in one transaction; this returns
        once that transaction is durable, with the record now stored under its key."""
        if not isinstance(record, CallRecord):  # a caller's bug: say so here, not in the thread
            raise ValueError(f"expected a CallRecord, got {type(record).__name__}")
        record = self._without_secrets(record)  # once, here: a commit tried again counts once
        with self._lock:
            if self._writer is None:
                self._writer = GroupCommitter(self._connect, self._write_group)
            writer = self._writer
        return await writer.submit(record)

    def _write_group(self, conn: sqlite3.Connection, records: list[CallRecord]) -> list[CallRecord]:
        """The writer thread's transaction: every record of a group, merged by ``put``'s rules."""
        checked: list[CallRecord | ValueError] = []
        for record in records:  # a record that is not sound fails alone, not its group
            try:
                checked.append(self._checked(record))
            except ValueError as exc:
                checked.append(exc)
        fresh = [item for item in checked if not isinstance(item, ValueError)]
        stored: dict[int, CallRecord] = {}
        with _immediate(conn):
            for start in range(0, len(fresh), _ROWS_PER_INSERT):
                part = fresh[start:start + _ROWS_PER_INSERT]
                # one statement for the group's new calls: the writer gives the GIL up once,
                # not once per row (each wait for it again is a wait on the event loop)
                values = [value for record in part for value in _row(record)]
                if conn.execute(_insert_new(len(part)), values).rowcount != len(part):
                    # some keys were stored before: each call by put's rules (the ones just
                    # inserted read back as themselves)
                    stored.update((id(record), self._merge(conn, record)[0]) for record in part)
        return [item if isinstance(item, ValueError) else stored.get(id(item), item)
                for item in checked]

    @property
    def commits(self) -> CommitCounts:
        """What the writer thread has committed (transactions, records, the largest group)."""
        return self._writer.counts if self._writer is not None else CommitCounts()

    # -- replay files -------------------------------------------------------------------

    def export_jsonl(self, path: str | os.PathLike[str], keys: Iterable[str] | None = None, *,
                     include_errors: bool = False) -> int:
        """Write the replay file: one record per line, fields in a fixed order, sorted by
        key, replaced atomically. With ``keys``, exactly those calls (each must be
        completed). Returns how many records were written."""
        if keys is None:
            records = list(self.records(include_errors=include_errors))
        else:
            wanted = list(dict.fromkeys(keys))
            found = self.get_many(wanted, include_errors=include_errors)
            missing = [key for key in wanted if key not in found]
            if missing:
                raise ValueError(f"{len(missing)} of {len(wanted)} keys have no completed call "
                                 f"in {self.path} (first: {missing[0]!r})")
            records = [found[key] for key in sorted(found)]
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                for record in records:
                    handle.write(json.dumps(record.to_json(), ensure_ascii=False,
                                            allow_nan=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
            _fsync_dir(target.parent)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return len(records)

    def import_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Merge a replay file into the store (same rules as ``put``, one transaction).
        Idempotent: returns how many records were added or changed, 0 the second time."""
        records = list(read_call_records(path))
        return self.put_many(records)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Commit what the writer thread still holds, then close the connections (every
        ``put`` and every returned ``commit`` is already durable)."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> CallStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CallStore({str(self.path)!r})"


def _add_columns(conn: sqlite3.Connection) -> None:
    """Give an older store's table the columns added since its schema (NULL for its calls),
    inside the caller's transaction."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    for name, kind in _ADDED:
        if name not in columns:
            conn.execute(f"ALTER TABLE calls ADD COLUMN {name} {kind}")


def _upgrade_to_rowid(conn: sqlite3.Connection) -> None:
    """Move the calls of a schema 1 or 2 store (a WITHOUT ROWID table, its columns already
    added by ``_add_columns``) to a rowid table, inside the caller's transaction (all or
    nothing)."""
    conn.execute("DROP INDEX IF EXISTS calls_teacher_status")
    conn.execute("ALTER TABLE calls RENAME TO calls_without_rowid")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    names = ", ".join(_COLUMNS)
    conn.execute(f"INSERT INTO calls ({names}) SELECT {names} FROM calls_without_rowid ORDER BY key")
    conn.execute("DROP TABLE calls_without_rowid")


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on ``conn`` (rolled back if the block raises)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every OS can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_call_records(path: str | os.PathLike[str]) -> Iterator[CallRecord]:
    """The records of a replay file; a file that is not one (a device, a folder), a line that
    is not UTF-8 or not a call record (a field missing or of the wrong type), or whose key
    does not match its parts is a DataError naming the file and the line."""
    if not Path(path).is_file():
        raise DataError(f"{path}: not a file of exported calls"
                        + (" (it does not exist)" if not os.path.exists(path) else ""))
    with open(path, "rb") as handle:  # bytes: a line that is not UTF-8 is named by its number
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = CallRecord.from_json(json.loads(raw.decode("utf-8")))
                expected = record.expected_key()
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                detail = f"missing field {error}" if isinstance(error, KeyError) else str(error)
                raise DataError(f"{path}:{number}: not a call record: {detail}") from None
            if record.key != expected:
                raise DataError(f"{path}:{number}: key {record.key!r} does not match the "
                                f"record's parts (expected {expected!r})")
            yield record
