"""One run per output folder at a time.

Two ``fairspec run`` of one spec at once (two terminals, a cron job, an array job) would
each ask the calls the other has on its way and pay for them twice: the in-flight join of
the call store works inside one process only. :func:`hold_output` takes an OS-level lock
(``filelock``: ``flock`` on POSIX) on ``<output_dir>/.fairspec.lock`` for the whole run; the
kernel releases it when the process ends, however it ends, so a killed run leaves no stale
lock. Beside it, ``.fairspec.lock.json`` says who holds it (pid, host, since when, the
command), which a second run names when it stops with exit 2.

The lock is for node 0 (and single-node runs): a joining training node only reads the
training set node 0 wrote and runs no teacher stage.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fairspec.errors import OutputBusy

LOCK_NAME = ".fairspec.lock"
HOLDER_NAME = ".fairspec.lock.json"


def holder(output_dir: Path) -> dict[str, object] | None:
    """Who holds (or last held) the output folder's lock, as its holder wrote it."""
    try:
        found = json.loads((output_dir / HOLDER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _describe(found: dict[str, object] | None) -> str:
    if not found:
        return "another fairspec run"
    since = found.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) \
        if isinstance(since, int | float) else "?"
    return f"fairspec run pid {found.get('pid')} on {found.get('host')} (since {when})"


@contextmanager
def hold_output(output_dir: Path, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold ``output_dir``'s lock while the block runs; OutputBusy when another run holds it
    for more than ``wait_s`` seconds."""
    from filelock import FileLock, Timeout

    output_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(output_dir / LOCK_NAME)
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise OutputBusy(
            f"{output_dir} is in use by {_describe(holder(output_dir))}: two runs of one "
            "output folder would pay for the same teacher calls twice. Wait for it to end "
            "(or stop it), then run again: nothing it saved is asked again") from None
    try:
        (output_dir / HOLDER_NAME).write_text(json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
            "command": " ".join(sys.argv[:1] + sys.argv[1:3])}), encoding="utf-8")
        yield
    finally:
        try:
            (output_dir / HOLDER_NAME).unlink(missing_ok=True)
        finally:
            lock.release()
