"""Group commit: the calls completed on the event loop are stored by one writer thread,
which commits whatever has arrived in one transaction.

A call's ``await`` returns only once the transaction that holds it is durable (committed,
and with ``synchronous=FULL`` its WAL fsynced), so the guarantee is the one a single
``put`` gives; what changes is that 64 calls completing within one fsync share it, and
that the event loop never waits for SQLite: it hands the record over and goes on with the
network. The writer has its own connection (WAL: the loop's reads never wait for it).

A task that is cancelled (Ctrl-C) while its record waits does not take the record back:
the writer still commits it, and closing the store (or the process exiting) waits for
every record handed over. Only kill -9 or a power loss can drop a record that was handed
over and not yet acknowledged; an acknowledged one survives both (synchronous=FULL; with
NORMAL it would survive kill -9 but not a power loss).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fairspec.errors import StoreWriteFailed

logger = logging.getLogger(__name__)

#: The most records one transaction holds (a burst larger than this takes several).
MAX_GROUP = 1024
#: A failed transaction is tried this many times in all, pausing COMMIT_PAUSE_S, then
#: twice that, ... between tries (each try also waits up to the store's busy timeout).
COMMIT_TRIES = 4
COMMIT_PAUSE_S = 0.5


@dataclass
class CommitCounts:
    """What the writer did: transactions, records, the largest group."""

    commits: int = 0
    records: int = 0
    largest: int = 0


class GroupCommitter:
    """One writer thread in front of a store's file.

    ``connect`` opens the writer's own connection (in the writer's thread); ``write(conn,
    items)`` stores ``items`` in one transaction on it and returns what each resolves to
    (an exception in that list fails its own item only).

    Handing over costs the loop one ``deque.append``: the writer is woken (an Event) only
    when it sleeps, so a group that arrives while a commit is being fsynced costs no
    wake-up at all, and the loop does not trade the GIL with the writer once per call.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection],
                 write: Callable[[sqlite3.Connection, list[Any]], list[Any]],
                 name: str = "fairspec-store-writer") -> None:
        self._connect = connect
        self._write = write
        self._waiting: collections.deque[tuple[Any, Any, Any]] = collections.deque()
        self._wake = threading.Event()
        self._idle = False
        self._stopping = False
        self.counts = CommitCounts()
        self.unsaved = 0  # records whose transaction failed after every try
        self._opened = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._error is not None:
            raise self._error
        # a store never closed still commits what it was handed before the process exits
        # (atexit runs before the interpreter stops its daemon threads)
        atexit.register(self.close)

    def submit(self, item: Any) -> asyncio.Future[Any]:
        """Hand ``item`` to the writer; the future resolves once its transaction is durable."""
        if self._stopping or not self._thread.is_alive():
            raise RuntimeError("the call store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((item, loop, future))
        if self._idle:  # read after the append: a writer going to sleep sees it or is woken
            self._wake.set()
        return future

    def close(self) -> None:
        """Commit everything handed over so far, then stop the writer."""
        atexit.unregister(self.close)
        self._stopping = True
        self._wake.set()
        self._thread.join()

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # noqa: BLE001 - raised again in the opening thread
            self._error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while True:
                group = self._take()
                if group:
                    self._commit(conn, group)
                elif self._stopping:
                    return
                else:
                    self._sleep()
        finally:
            conn.close()

    def _write_retrying(self, conn: sqlite3.Connection, items: list[Any]) -> list[Any]:
        """``write`` again after a failed transaction (a lock held past the busy timeout, a
        full disk, an I/O error), ``COMMIT_TRIES`` times with a growing pause: paid answers
        are not given up at the first failure."""
        for attempt in range(COMMIT_TRIES):
            try:
                return self._write(conn, items)
            except sqlite3.Error as exc:
                if attempt == COMMIT_TRIES - 1:
                    raise
                logger.warning("the call store could not commit %d call(s) (%s): trying again",
                               len(items), exc)
                time.sleep(COMMIT_PAUSE_S * 2 ** attempt)
        raise AssertionError("unreachable")

    def _take(self) -> list[tuple[Any, Any, Any]]:
        group = []
        while self._waiting and len(group) < MAX_GROUP:
            group.append(self._waiting.popleft())
        return group

    def _sleep(self) -> None:
        """Wait for the next record (no lost wake-up: idle is set before the last look)."""
        self._idle = True
        if not self._waiting and not self._stopping:
            self._wake.wait()
        self._wake.clear()
        self._idle = False

    def _commit(self, conn: sqlite3.Connection, waiting: list[tuple[Any, Any, Any]]) -> None:
        try:
            results: list[Any] = self._write_retrying(conn, [item for item, _, _ in waiting])
        except BaseException as exc:  # noqa: BLE001 - every waiter gets it
            self.unsaved += len(waiting)
            logger.error("the call store could not commit %d call(s): %s", len(waiting), exc)
            failure = StoreWriteFailed(f"{type(exc).__name__}: {exc}, {COMMIT_TRIES} tries",
                                       lambda: self.unsaved) \
                if isinstance(exc, sqlite3.Error) else exc
            results = [failure] * len(waiting)
        else:
            self.counts.commits += 1
            self.counts.records += len(waiting)
            self.counts.largest = max(self.counts.largest, len(waiting))
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for (_, loop, future), result in zip(waiting, results, strict=True):
            by_loop.setdefault(loop, []).append((future, result))
        for loop, settled in by_loop.items():  # one wake-up of each loop for the whole group
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the loop is closed: the records are stored all the same
                pass


def _settle(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    """On the loop: each future gets its record, or its error (a cancelled waiter: nothing)."""
    for future, result in settled:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
