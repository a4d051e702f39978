"""Files a stage writes: atomic JSON, durable JSONL appends, crash-tolerant reads, manifests.

A stage folder belongs to one fingerprint: ``.fingerprint`` is written first, and a
folder left by another fingerprint is cleared before work starts. The manifest is
written last, atomically; a folder without a matching manifest is never taken as done.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from fairspec.errors import DataError
from fairspec.hashing import sha256_file

MANIFEST = "manifest.json"
OWNER_FILE = ".fingerprint"
#: The layout of manifest.json this fairspec writes. 1: fingerprint, inputs, outputs,
#: counts, times; 2: ``files`` (each output file's size and hash) and ``schema_version``.
MANIFEST_SCHEMA_VERSION = 2
#: The layout of a stage's stats.json (and evaluate's metrics.json): 1 adds ``schema_version``.
STATS_SCHEMA_VERSION = 1
#: The layout of a run folder's run.json: 1 adds ``schema_version`` (0: every earlier one,
#: some without ``settings``, ``alpha``, ``train_seed`` or ``repeats``).
RUN_INFO_SCHEMA_VERSION = 1


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[TextIO]:
    """A text file written via a temp file in the same folder, fsynced, then renamed over
    ``path`` when the block ends (if it raises, ``path`` is left as it was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder, fsync, then rename over ``path``."""
    with atomic_file(path) as handle:
        handle.write(text)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write a whole JSONL file atomically, row by row (``rows`` may be a generator: they
    are never all in memory); returns the row count."""
    count = 0
    with atomic_file(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


class SortedJsonlWriter:
    """Rows added in any order, written at the end as one JSONL file sorted by ``key``,
    with at most ``run_rows`` of them in memory: a full buffer is sorted and spilled to a
    run file (in a hidden folder beside ``path``), and :meth:`finish` merges the runs
    (``heapq.merge``) into ``path``, atomically. Equal keys keep the order they came in.

    The runs are scratch: a crash leaves no ``path``; the stage that writes it derives
    its rows again (a teacher stage from the call store, which is the durable record).
    """

    def __init__(self, path: Path, key: Callable[[dict[str, Any]], Any], *,
                 run_rows: int = 4096) -> None:
        self.path = path
        self._key = key
        self._run_rows = run_rows
        self._buffer: list[dict[str, Any]] = []
        self._runs: list[Path] = []
        self._scratch: Path | None = None
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        self.count += 1
        if len(self._buffer) >= self._run_rows:
            self._spill()

    def _spill(self) -> None:
        if self._scratch is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._scratch = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.runs-",
                                                  dir=self.path.parent))
        run = self._scratch / f"{len(self._runs):05d}.jsonl"
        self._buffer.sort(key=self._key)
        with run.open("w", encoding="utf-8") as handle:
            for row in self._buffer:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._runs.append(run)
        self._buffer = []

    def _read_run(self, run: Path) -> Iterator[dict[str, Any]]:
        with run.open(encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

    def finish(self) -> int:
        """Write ``path`` (sorted), drop the runs; returns the row count."""
        try:
            self._buffer.sort(key=self._key)
            if not self._runs:
                return write_jsonl(self.path, self._buffer)
            merged = heapq.merge(*(self._read_run(run) for run in self._runs), self._buffer,
                                 key=self._key)
            return write_jsonl(self.path, merged)
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop the rows and the runs (the stage stopped before its end)."""
        self._buffer = []
        self._runs = []
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


class JsonlAppender:
    """Appends rows to a JSONL file, flushed and fsynced after each ``append``/``extend``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair(path)
        self._handle = path.open("a", encoding="utf-8")

    @staticmethod
    def _repair(path: Path) -> None:
        """Drop a half-written last line (a crash mid-write) so appends start clean."""
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def append(self, row: dict[str, Any]) -> None:
        self.extend([row])

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file, skipping a truncated last line left by a crash."""
    if not path.exists():
        return
    with path.open("rb") as handle:  # bytes: a bad byte is named by its line
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                return
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
                if not isinstance(row, dict):
                    raise ValueError(f"a {type(row).__name__}, not an object")
            except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
                raise DataError(f"{path}:{number}: not a JSON object per line ({exc}); the "
                                "file was damaged: delete its stage folder to make it "
                                "again") from None
            yield row


#: Where a finished stage of another fingerprint is kept when its stage runs again:
#: ``<stage>.previous`` beside it (one, the newest), until the user deletes it.
PREVIOUS_SUFFIX = ".previous"


def previous_folder(folder: Path) -> Path:
    return folder.with_name(folder.name + PREVIOUS_SUFFIX)


def set_aside(folder: Path) -> None:
    """Empty a stage folder's place: a finished stage (its manifest written) is moved to
    :func:`previous_folder` (replacing an older one), anything else is deleted."""
    if (folder / MANIFEST).is_file():
        kept = previous_folder(folder)
        shutil.rmtree(kept, ignore_errors=True)
        folder.rename(kept)
    else:
        shutil.rmtree(folder)


def prepare_stage_folder(folder: Path, fingerprint: str) -> bool:
    """Make ``folder`` belong to ``fingerprint``; True if earlier partial work is kept. A
    folder of another fingerprint is cleared, except a finished one (its manifest written:
    a trained model, an evaluation), which is moved to :func:`previous_folder` instead, so
    a changed setting or a new fairspec version never silently deletes finished work."""
    owner = folder / OWNER_FILE
    if folder.exists() and (not owner.exists() or owner.read_text().strip() != fingerprint):
        set_aside(folder)
    if folder.exists():
        return True
    folder.mkdir(parents=True)
    atomic_write_text(owner, fingerprint + "\n")
    return False


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest in this fairspec's layout (:func:`upgrade_manifest`); None when
    there is none, it cannot be read, or a newer fairspec wrote it."""
    try:
        return upgrade_manifest(json.loads((folder / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def upgrade_manifest(manifest: Any) -> dict[str, Any] | None:
    """A manifest of any earlier layout in the current one (the one place that knows the
    old layouts, as dbt's artifact readers do); None for one that is not a manifest or
    that a newer fairspec wrote (its stage is done again rather than misread)."""
    if not isinstance(manifest, dict) or "fingerprint" not in manifest:
        return None
    version = manifest.get("schema_version", 2 if "files" in manifest else 1)
    if not isinstance(version, int) or version > MANIFEST_SCHEMA_VERSION:
        return None
    if version < 2:  # no file list: its outputs are checked for presence only
        manifest = {**manifest, "files": None}
    return {**manifest, "schema_version": MANIFEST_SCHEMA_VERSION}


def upgrade_stats(stats: Any) -> dict[str, Any] | None:
    """A stage's stats.json (or metrics.json) of any earlier layout in the current one;
    None for one that is not a mapping or that a newer fairspec wrote."""
    if not isinstance(stats, dict):
        return None
    version = stats.get("schema_version", 0)
    if not isinstance(version, int) or version > STATS_SCHEMA_VERSION:
        return None
    return {**stats, "schema_version": STATS_SCHEMA_VERSION}


def upgrade_run_info(info: Any, name: str) -> dict[str, Any]:
    """A run folder's run.json of any layout in the current one (``name``: the run folder's,
    for a file that is missing or unreadable). A key an older fairspec did not write is None
    (``overrides``: empty); ``settings`` is None unless it is the resolved spec."""
    if not isinstance(info, dict):
        info = {"name": name}
    version = info.get("schema_version", 0)
    if not isinstance(version, int) or version > RUN_INFO_SCHEMA_VERSION:  # read what is known
        version = RUN_INFO_SCHEMA_VERSION
    settings = info.get("settings")
    settings = settings if isinstance(settings, dict) else None
    alpha = info.get("alpha")
    if alpha is None and settings is not None:
        alpha = (settings.get("training") or {}).get("alpha")
    defaults = dict.fromkeys(("spec", "spec_file", "variant", "origin", "description", "seed",
                              "train_seed", "repeats"))
    return {**defaults, **info, "name": info.get("name") or name,
            "overrides": info.get("overrides") or {}, "alpha": alpha, "settings": settings,
            "schema_version": RUN_INFO_SCHEMA_VERSION}


def write_stats(path: Path, stats: dict[str, Any]) -> dict[str, Any]:
    """Write a stage's summary (stats.json, metrics.json) with its ``schema_version``;
    returns what was written."""
    stats = {"schema_version": STATS_SCHEMA_VERSION, **stats}
    atomic_write_json(path, stats)
    return stats


def is_done(folder: Path, fingerprint: str) -> bool:
    manifest = read_manifest(folder)
    return bool(manifest and manifest.get("fingerprint") == fingerprint)


#: Output files up to this size are recorded (and checked) by content hash, larger ones
#: (model weights) by size: hashing gigabytes at every rerun would cost more than it saves.
HASHED_UP_TO = 64 * 2**20
_hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, this process


def _file_entry(path: Path) -> dict[str, Any]:
    stat = path.stat()
    entry: dict[str, Any] = {"size": stat.st_size}
    if stat.st_size <= HASHED_UP_TO:
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _hashes:
            _hashes[key] = sha256_file(path)
        entry["sha256"] = _hashes[key]
    return entry


def output_files(folder: Path, outputs: list[str]) -> dict[str, dict[str, Any]]:
    """Each file a stage wrote (a folder output: every file in it), relative to ``folder``:
    its size, and its content hash up to ``HASHED_UP_TO``."""
    files: dict[str, dict[str, Any]] = {}
    for name in outputs:
        path = folder / name
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else \
            [path] if path.is_file() else []
        for file in found:
            files[file.relative_to(folder).as_posix()] = _file_entry(file)
    return files


def output_damage(folder: Path, *, ignore: frozenset[str] = frozenset()) -> str | None:
    """What changed in a finished stage's outputs since its manifest recorded them (a file
    deleted, truncated or rewritten), or None; files in ``ignore`` (those a later stage
    amends, as evaluate writes the tuned model's card) and manifests of earlier versions,
    which record no files, are not checked."""
    manifest = read_manifest(folder) or {}
    for name, recorded in (manifest.get("files") or {}).items():
        if name in ignore:
            continue
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        now = _file_entry(path) if path.stat().st_size <= HASHED_UP_TO else {"size": path.stat().st_size}
        if now["size"] != recorded.get("size"):
            return f"{name} changed size ({recorded.get('size')} -> {now['size']} bytes)"
        if "sha256" in recorded and now.get("sha256") != recorded["sha256"]:
            return f"{name} changed content"
    return None


def write_manifest(folder: Path, *, stage: str, fingerprint: str, inputs: dict[str, str],
                   outputs: list[str], counts: dict[str, Any], started: float) -> dict[str, Any]:
    """The stage's last write: what it was, what it read and wrote (each file's size and
    hash, :func:`output_files`), counts and timings."""
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "stage": stage,
        "fingerprint": fingerprint,
        "inputs": inputs,
        "outputs": outputs,
        "files": output_files(folder, outputs),
        "counts": counts,
        "started_at": started,
        "finished_at": time.time(),
        "seconds": round(time.time() - started, 3),
    }
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest
