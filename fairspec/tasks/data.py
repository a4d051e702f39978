"""Loads a benchmark split into typed rows: template fields, parsed gold answer, fingerprint.

:func:`load_rows` reads the split a :class:`DatasetSource` names (the spec's
``task.dataset``, as plain values: this package knows nothing of the spec), keeps the first
``limit`` rows in the order of the source, maps each ``task.fields`` entry (template
variable -> column) and parses the ``answer`` column with
:func:`fairspec.tasks.gold.parse_gold`. Every problem is found before anything runs:
a mapped column the split lacks is one error listing the columns it has; bad rows
(a missing or null value, an unparseable gold answer, options that are not a list)
are all reported together, each with its file, row index (and line, for JSON Lines)
and field.

Sources:

- ``path:`` a file (it serves every split, as in the plan) or a folder holding
  ``<split>.jsonl``, ``.json``, ``.csv`` or ``.parquet`` (the first that exists, in
  that order). ``.jsonl`` and ``.json`` are read with the standard json module, not
  with ``datasets``: its json loader turns the text ``"12"`` into the number 12 in a
  column of mixed types, fails on some mixes with an arrow error that names no row,
  and knows no line numbers. CSV (every cell read as text, an empty cell as null) and
  parquet go through ``datasets`` with a throwaway cache folder. The fingerprint is
  the sha256 of the file's bytes (:func:`fairspec.hashing.sha256_file`), so
  a plan and a run agree on it.
- ``hf:`` a hub id loaded with ``datasets.load_dataset(hf, config, revision=..., split=...)``
  into the user's normal ``datasets`` cache; the fingerprint covers the id, config,
  revision, split and the dataset's own ``_fingerprint``.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import logging
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairspec.errors import DataError
from fairspec.hashing import canonical_json, sha256_file, sha256_text
from fairspec.resources import resolve_path
from fairspec.tasks.extract import ANSWER_KINDS, Answer
from fairspec.tasks.gold import gold_display, parse_gold
from fairspec.tasks.kinds import COMMON_FIELDS

logger = logging.getLogger(__name__)

#: The local data file types, in the order a split's file is looked for in a folder.
DATA_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".csv", ".parquet", ".jsonl.gz", ".json.gz")


def data_suffix(path: Path) -> str:
    """A data file's type: ``.jsonl``, ``.json``, ``.csv``, ``.parquet``, or the gzipped
    ``.jsonl.gz`` / ``.json.gz`` (``""`` for anything else)."""
    name = path.name.lower()
    return next((s for s in sorted(DATA_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")


def read_text(path: Path, encoding: str = "utf-8-sig") -> str:
    """A text data file's content, gunzipped when it ends in ``.gz``; bytes that are not
    ``encoding`` are a DataError naming the file and the line."""
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a gzip file ({exc})") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not {encoding.removesuffix('-sig').upper()} text "
                        f"(byte 0x{data[exc.start]:02x}): save the file as UTF-8") from None
_SOURCE_KEYS = ("hf", "config", "revision", "path")
#: At most this many bad-row problems are spelled out in a DataError's message.
MAX_LISTED_PROBLEMS = 20
_MISSING = object()




@dataclass(frozen=True)
class DatasetSource:
    """Where a task's rows come from: exactly one of ``hf`` (a hub id) or ``path`` (local).

    Attributes:
        hf: a datasets hub id (or anything ``datasets.load_dataset`` takes), or None.
        config: the hub config name (gsm8k: ``main``), or None.
        revision: the hub revision (commit or tag), or None.
        path: a local file or folder (jsonl, json, csv, parquet), relative to the
            ``base_dir`` given to :func:`load_rows`, or ``builtin:...``; or None.
    """

    hf: str | None = None
    config: str | None = None
    revision: str | None = None
    path: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DatasetSource:
        """The source ``data`` describes: its ``hf``, ``config``, ``revision`` and ``path``
        (a missing one is None; other keys, such as ``split`` or ``sha256``, are ignored)."""
        return cls(**{key: data.get(key) for key in _SOURCE_KEYS})


@dataclass(frozen=True)
class Row:
    """One benchmark row, ready for the templates and the scorer.

    Attributes:
        index: the row's position in the split (0-based, in the source's order); the
            limit only cuts the tail, so the index is stable and identifies the row
            when a run resumes.
        fields: template variable -> value, for every ``task.fields`` entry but ``answer``.
        gold: the answer parsed as the extractor kind calls for (float, bool, option
            index, or text), comparable with :func:`fairspec.tasks.answers_match`.
        gold_text: the gold answer as a prompt shows it: ``145`` (no trailing ``.0``),
            ``true``/``false``, ``C. <option text>``, or the text.
        raw_answer: the answer cell as the dataset holds it.
    """

    index: int
    fields: dict[str, Any]
    gold: Answer
    gold_text: str
    raw_answer: Any


@dataclass(frozen=True)
class LoadedSplit:
    """The rows of one split after the limit, and where they came from.

    Attributes:
        rows: the first ``limit`` rows of the split, in the source's order.
        fingerprint: sha256 of the local file's bytes, or for a hub dataset of its
            id, config, revision, split and ``datasets`` fingerprint.
        source: a human description (file or hub id, format, split).
        total_rows: the split's row count before the limit.
        split: the split's name.
    """

    rows: list[Row]
    fingerprint: str
    source: str
    total_rows: int
    split: str


@dataclass(frozen=True)
class _Record:
    """A raw row: its value (a mapping, or an error text when it could not be read)."""

    index: int
    value: Any
    line: int | None = None
    read_error: str | None = None


@dataclass(frozen=True)
class _RawSplit:
    records: list[_Record]  # only the rows kept by the limit
    columns: list[str]
    total_rows: int
    fingerprint: str
    source: str
    location: str  # what a bad-row message starts with
    text_cells: bool = False  # CSV: every cell is text, so options may be JSON text


def load_rows(
    dataset: DatasetSource,
    fields: Mapping[str, str],
    extractor_kind: str,
    split: str,
    limit: int | None,
    base_dir: Path,
) -> LoadedSplit:
    """Read ``split`` of ``dataset`` and turn its first ``limit`` rows into :class:`Row` s.

    Args:
        dataset: where the rows are (exactly one of ``hf`` / ``path``); any object with
            ``hf``, ``config``, ``revision`` and ``path`` attributes serves.
        fields: the spec's ``task.fields``, template variable -> column; needs
            ``question`` and ``answer``; ``options`` must hold a list of option texts
            (for CSV: a JSON array in the cell).
        extractor_kind: ``number``, ``boolean``, ``choice`` or ``regex``: how the
            ``answer`` column is parsed.
        split: the split to read (the spec's ``train_split`` or ``test_split``).
        limit: keep the first ``limit`` rows; None keeps all.
        base_dir: the folder a relative ``path`` is resolved against (the spec's folder).

    Returns:
        The rows, the split's fingerprint, a description of the source, the row count
        before the limit.

    Raises:
        ValueError: an unknown ``extractor_kind``, a negative ``limit``, ``fields``
            without ``question`` or ``answer``, or a dataset with both or neither of
            ``hf`` / ``path``.
        DataError: the data cannot be read, lacks a mapped column, or has bad rows;
            rows past the limit are not checked.
    """
    if extractor_kind not in ANSWER_KINDS:
        raise ValueError(
            f"unknown extractor kind {extractor_kind!r}; expected one of {', '.join(ANSWER_KINDS)}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an integer >= 0, got {limit!r}")
    for required in COMMON_FIELDS:
        if required not in fields:
            raise ValueError(f"fields must map {required!r} to a column, got {dict(fields)!r}")
    if (dataset.hf is None) == (dataset.path is None):
        raise ValueError(
            f"dataset needs exactly one of hf / path, got hf={dataset.hf!r} path={dataset.path!r}"
        )
    if dataset.hf is not None:
        raw = _read_hub(dataset.hf, dataset.config, dataset.revision, split, limit)
        source = raw.source
    else:
        local = resolve_path(dataset.path or "", base_dir)
        raw = _read_local(local, split, limit)
        # shown as the spec names it (stats, reports, records travel): errors keep the full path
        shown = dataset.path if local.is_file() else \
            f"{(dataset.path or '').rstrip('/')}/{Path(raw.location).name}"
        source = raw.source.replace(raw.location, shown, 1)
    _check_columns(raw, fields, split)
    rows = _build_rows(raw, fields, extractor_kind, split)
    logger.info("loaded %d of %d rows from %s", len(rows), raw.total_rows, raw.location)
    return LoadedSplit(rows=rows, fingerprint=raw.fingerprint, source=source,
                       total_rows=raw.total_rows, split=split)


# --- local files ----------------------------------------------------------------------


def split_file(path: Path, split: str) -> Path:
    """The file holding ``split``: ``path`` itself, or ``path/<split>.<ext>`` (first of
    jsonl, json, csv, parquet that exists).

    Raises:
        DataError: ``path`` does not exist, or the folder has no file for ``split``.
    """
    if path.is_file():
        return path
    if path.is_dir():
        for suffix in DATA_SUFFIXES:
            candidate = path / f"{split}{suffix}"
            if candidate.is_file():
                return candidate
        expected = ", ".join(f"{split}{s}" for s in DATA_SUFFIXES)
        raise DataError(f"no file for split '{split}' in {path}; expected one of {expected}")
    raise DataError(f"no such data file or folder: {path}")


def _read_local(path: Path, split: str, limit: int | None) -> _RawSplit:
    file = split_file(path, split)
    suffix = data_suffix(file)
    if not suffix:
        raise DataError(f"unsupported data file type '{file.suffix}' ({file}); "
                        "use jsonl, json, csv or parquet (jsonl and json may be gzipped)")
    fingerprint = sha256_file(file)
    source = f"{file} ({suffix[1:]}, split '{split}')"
    try:
        if suffix.startswith((".jsonl", ".json")):
            records = _read_json_records(file, suffix.removesuffix(".gz"))
            columns = _columns_of(records)
            total = len(records)
            kept = records if limit is None else records[:limit]
            return _RawSplit(kept, columns, total, fingerprint, source, str(file))
        columns, total, values = _read_with_datasets(file, suffix, limit)
    except OSError as exc:
        raise DataError(f"cannot read {file}: {exc}") from exc
    kept_records = [_Record(i, value) for i, value in enumerate(values)]
    return _RawSplit(kept_records, columns, total, fingerprint, source, str(file),
                     text_cells=suffix == ".csv")


def _read_json_records(file: Path, suffix: str) -> list[_Record]:
    try:
        text = read_text(file)
    except (EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{file}: not a readable gzip file ({exc})") from exc
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data": a JSON Lines file named .json
                raise DataError(
                    f"{file}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
                ) from exc
        else:
            if not isinstance(data, list):
                raise DataError(f"{file}: a .json data file must hold a JSON array of row "
                                f"objects, got a {type(data).__name__}; or use JSON Lines (.jsonl)")
            return [_Record(i, value) for i, value in enumerate(data)]
    records: list[_Record] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        index = len(records)
        try:
            records.append(_Record(index, json.loads(line), line=line_no))
        except json.JSONDecodeError as exc:
            records.append(_Record(index, None, line=line_no,
                                   read_error=f"invalid JSON (column {exc.colno}): {exc.msg}"))
    return records


def _columns_of(records: list[_Record]) -> list[str]:
    """Every key any row has, in order of first appearance."""
    seen: dict[str, None] = {}
    for record in records:
        if isinstance(record.value, dict):
            seen.update(dict.fromkeys(str(key) for key in record.value))
    return list(seen)


def _read_with_datasets(
    file: Path, suffix: str, limit: int | None
) -> tuple[list[str], int, list[Any]]:
    """Columns, row count and the first ``limit`` rows of a CSV or parquet file."""
    import datasets

    options: dict[str, Any] = {}
    if suffix == ".csv":
        # cells as written: "0012" stays text, "true" is not a bool, only an empty cell is null
        header = _csv_header(file)
        options = {
            "features": datasets.Features({name: datasets.Value("string") for name in header}),
            "keep_default_na": False,
            "na_values": [""],
        }
    with tempfile.TemporaryDirectory(prefix="fairspec-data-") as cache, _quiet_datasets():
        try:
            loaded = datasets.load_dataset(suffix[1:], data_files=str(file), split="train",
                                           cache_dir=cache, **options)
        except (datasets.exceptions.DatasetsError, ValueError, TypeError) as exc:
            raise DataError(f"cannot read {file}: {_cause(exc)}") from exc
        total = len(loaded)
        kept = loaded if limit is None or limit >= total else loaded.select(range(limit))
        return list(loaded.column_names), total, kept.to_list()


def _csv_header(file: Path) -> list[str]:
    with file.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise DataError(f"{file}: a CSV data file needs a header line naming its columns")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise DataError(f"{file}: duplicate column names in the header: {', '.join(duplicated)}")
    return header


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No "Generating train split" progress bars for a local file; restores the setting."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _cause(exc: BaseException) -> str:
    """The innermost message of a chained exception (datasets wraps arrow's)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"


# --- hub datasets ---------------------------------------------------------------------


def _read_hub(
    hf: str, config: str | None, revision: str | None, split: str, limit: int | None
) -> _RawSplit:
    import datasets

    what = hf + (f" (config {config})" if config else "") + (f" @ {revision}" if revision else "")
    try:
        loaded = datasets.load_dataset(hf, config, revision=revision, split=split)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as exc:
        if isinstance(exc, ValueError) and "split" in str(exc).lower():
            raise DataError(f"hub dataset {what} has no split '{split}': {exc}") from exc
        raise DataError(
            f"cannot load hub dataset {what}, split '{split}': {_cause(exc)}. It is neither "
            "reachable nor in the local datasets cache (offline?): load it once with network "
            "access, or put its files in a folder (train.jsonl, test.jsonl, ...) and give "
            "task.dataset.path instead of hf"
        ) from exc
    if not isinstance(loaded, datasets.Dataset):
        raise DataError(f"hub dataset {what}, split '{split}' is not a plain (non-streaming) "
                        f"dataset: got {type(loaded).__name__}")
    total = len(loaded)
    kept = loaded if limit is None or limit >= total else loaded.select(range(limit))
    identity = {"hf": hf, "config": config, "revision": revision, "split": split,
                "datasets_fingerprint": loaded._fingerprint}
    location = f"hub dataset {what}"
    return _RawSplit(
        records=[_Record(i, value) for i, value in enumerate(kept.to_list())],
        columns=list(loaded.column_names),
        total_rows=total,
        fingerprint=sha256_text(canonical_json(identity)),
        source=f"{location}, split '{split}'",
        location=location,
    )


# --- checks and rows ------------------------------------------------------------------


def _check_columns(raw: _RawSplit, fields: Mapping[str, str], split: str) -> None:
    if raw.total_rows == 0:
        return
    missing = [(name, column) for name, column in fields.items() if column not in raw.columns]
    if not missing:
        return
    unread = next((r for r in raw.records if r.read_error is not None), None)
    if not raw.columns and unread is not None:  # no row is an object: the file is not JSON
        where = f"{raw.location}" + (f":{unread.line}" if unread.line else "")
        raise DataError(f"{where}: not JSON Lines: {unread.read_error}")
    which = "; ".join(f"column '{column}' (field '{name}')" for name, column in missing)
    raise DataError(
        f"{raw.source}: no {which} in split '{split}'; available columns: "
        f"{', '.join(raw.columns) or '(none)'}",
        problems=[f"column '{column}' (field '{name}')" for name, column in missing],
    )


def _build_rows(
    raw: _RawSplit, fields: Mapping[str, str], kind: str, split: str
) -> list[Row]:
    rows: list[Row] = []
    problems: list[str] = []
    bad_rows = 0
    for record in raw.records:
        where = f"{raw.location}:{record.line}: row {record.index}" if record.line is not None \
            else f"{raw.location}: row {record.index}"
        row, row_problems = _build_row(record, fields, kind, raw.text_cells)
        if row_problems:
            bad_rows += 1
            problems.extend(f"{where}: {problem}" for problem in row_problems)
        elif row is not None:
            rows.append(row)
    if problems:
        listed = problems[:MAX_LISTED_PROBLEMS]
        more = len(problems) - len(listed)
        tail = [f"... and {more} more problems"] if more else []
        raise DataError(
            f"{bad_rows} bad rows ({len(problems)} problems) in {raw.source}, split '{split}':\n"
            + "\n".join(listed + tail),
            problems=problems,
        )
    return rows


def _build_row(
    record: _Record, fields: Mapping[str, str], kind: str, text_cells: bool
) -> tuple[Row | None, list[str]]:
    if record.read_error is not None:
        return None, [record.read_error]
    if not isinstance(record.value, dict):
        return None, [f"a row must be an object (column -> value), got {record.value!r:.80}"]
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name, column in fields.items():
        value = record.value.get(column, _MISSING)
        if value is _MISSING:
            problems.append(f"field '{name}': column '{column}' is missing")
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            problems.append(f"field '{name}': column '{column}' is null")
        elif _has_surrogate(value):  # a "\ud800" JSON escape: no text can be sent or saved
            problems.append(f"field '{name}': column '{column}' holds a lone surrogate "
                            "(a \\ud800-\\udfff escape), which is no text")
        else:
            values[name] = value
    options: list[str] | None = None
    if "options" in values:
        options = _as_options(values["options"], text_cells)
        if options is None:
            problems.append(f"field 'options': column '{fields['options']}' must be a list of "
                            f"option texts, got {values['options']!r:.80}")
            del values["options"]
        else:
            values["options"] = options
    if "answer" not in values or ("options" in fields and options is None):
        return None, problems
    raw_answer = values.pop("answer")
    try:
        gold = parse_gold(kind, raw_answer, options if kind == "choice" else None)
    except ValueError as exc:
        problems.append(f"field 'answer': column '{fields['answer']}': unparseable gold: {exc}")
        return None, problems
    if problems:
        return None, problems
    row = Row(index=record.index, fields=values, gold=gold,
              gold_text=gold_display(kind, gold, options), raw_answer=raw_answer)
    return row, []


def _has_surrogate(value: Any) -> bool:
    """Whether a cell (a string, or a list of them) holds a lone UTF-16 surrogate."""
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str) and not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _as_options(value: Any, text_cells: bool) -> list[str] | None:
    """The option texts, or None when ``value`` is not a list of 1-26 texts."""
    if text_cells and isinstance(value, str):  # a CSV cell can only hold a JSON array
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return None
    if not 1 <= len(value) <= 26 or not all(isinstance(option, str) for option in value):
        return None
    return list(value)

