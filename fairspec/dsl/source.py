"""Reads a spec file into plain Python data plus the line and column of every node.

The YAML is composed (not constructed) with ruamel.yaml, so nothing in the file can
create a Python object: only the core schema's plain tags (map, seq, str, int, float,
bool, null, and the merge key) are accepted; any other tag, such as ``!!python/object``,
is a problem reported at its position. Duplicate keys are all reported, not only the first.
The one fairspec tag is ``!delete`` (``key: !delete``, no value): in a spec that
``extends`` a base, it removes a key the base sets (see :mod:`fairspec.dsl.extends`).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from fairspec.errors import Problem

FieldPath = tuple[str | int, ...]

_PLAIN_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
DELETE_TAG = "!delete"


class _Delete:
    """The value of ``key: !delete``: drop the key a base spec sets (it never reaches a Spec)."""

    def __repr__(self) -> str:
        return "!delete"


DELETE = _Delete()


def format_path(path: FieldPath) -> str:
    """``("teachers", 1, "name")`` -> ``teachers[1].name``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class SpecFile:
    """One file of a spec: the spec itself (first) or a base it ``extends``, with its hash.

    ``label`` names it in messages (the path as reached from the spec, or
    ``builtin:specs/<name>.yaml``); ``extended_by`` is the label of the file naming it.
    """

    label: str
    sha256: str
    folder: str                  # relative paths written in this file resolve against it
    builtin: bool = False
    extended_by: str | None = None


@dataclass
class SpecSource:
    """A spec's data with positions: ``values[path]`` and ``keys[path]`` are 1-based (line, col).

    A spec that extends others merges them: ``files[path]`` names the file that wrote
    the key or value at ``path`` (absent: ``file``, the spec itself), and ``chain`` lists
    the spec and its bases, nearest first.
    """

    file: str
    data: Any
    text: str = ""
    values: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    files: dict[FieldPath, str] = field(default_factory=dict)
    chain: tuple[SpecFile, ...] = ()

    def locate(self, path: FieldPath, *, key: bool = False) -> tuple[str, int, int]:
        """The file and best position for ``path``: its key or value, else its nearest
        written ancestor."""
        probe = tuple(path)
        if not key and probe in self.keys and probe in self.values:
            if self.values[probe][0] != self.keys[probe][0]:
                key = True  # a block below its key: point at the key line
        table = (self.keys, self.values) if key else (self.values, self.keys)
        for positions in table:
            if probe in positions:
                return (self.files.get(probe, self.file), *positions[probe])
        while probe:  # a key that is not written: point at the nearest written parent key
            probe = probe[:-1]
            for positions in (self.keys, self.values):
                if probe in positions:
                    return (self.files.get(probe, self.file), *positions[probe])
        return (self.file, 1, 1)

    def position(self, path: FieldPath, *, key: bool = False) -> tuple[int, int]:
        _, line, col = self.locate(path, key=key)
        return (line, col)

    def pulled_in(self, file: str) -> str:
        """For a base file, `` (base spec: a.yaml extends b.yaml)``: who pulled it in."""
        labels = [link.label for link in self.chain]
        if file == self.file or file not in labels:
            return ""
        return " (base spec: " + " extends ".join(labels[: labels.index(file) + 1]) + ")"

    def problem(
        self, path: FieldPath, message: str, hint: str | None = None, *, key: bool = False
    ) -> Problem:
        file, line, col = self.locate(path, key=key)
        return Problem(file, line, col, format_path(path), message + self.pulled_in(file), hint)


def _tag(node: Any) -> str:
    tag = node.tag
    return str(getattr(tag, "value", tag) if tag is not None else "")


#: A spec past these is refused with a located problem, never expanded: YAML aliases can
#: repeat a node exponentially (a "billion laughs" file of a few lines), and deep nesting
#: exhausts the parser's recursion.
MAX_VALUES = 100_000
MAX_DEPTH = 64


class _TooBig(Exception):
    def __init__(self, node: Any, message: str, hint: str) -> None:
        super().__init__(message)
        self.node, self.message, self.hint = node, message, hint


class _Builder:
    """Turns a composed node tree into plain data, recording positions and problems."""

    def __init__(self, source: SpecSource, yaml: YAML) -> None:
        self.source = source
        self.yaml = yaml
        self.problems: list[Problem] = []
        self.values = 0

    def _mark(self, node: Any) -> tuple[int, int]:
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: Any, path: FieldPath) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooBig(node, f"the spec expands to more than {MAX_VALUES:,} values (YAML "
                          "aliases repeating nodes)", "write the values out, or use fewer aliases")
        if len(path) > MAX_DEPTH:
            raise _TooBig(node, f"the spec nests deeper than {MAX_DEPTH} levels",
                          "a spec is a few levels deep: check the indentation and brackets")
        self.source.values.setdefault(path, self._mark(node))
        tag = _tag(node)
        if node.id == "mapping":
            if tag != _MAP_TAG:
                return self._reject(node, path, tag)
            return self._mapping(node, path)
        if node.id == "sequence":
            if tag != _SEQ_TAG:
                return self._reject(node, path, tag)
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        if tag == DELETE_TAG and node.value == "":
            return DELETE
        if tag not in _PLAIN_SCALAR_TAGS:
            return self._reject(node, path, tag)
        return self.yaml.constructor.construct_object(node, deep=True)

    def _reject(self, node: Any, path: FieldPath, tag: str) -> None:
        line, col = self._mark(node)
        shown = tag.replace("tag:yaml.org,2002:", "!!")
        if tag == DELETE_TAG:
            message, hint = "!delete takes no value", f"write '{path[-1] if path else 'key'}: !delete'"
        else:
            message = (f"YAML tag {shown!r} is not allowed: a spec is plain YAML "
                       "(maps, lists, strings, numbers, booleans, null)")
            hint = "remove the tag (the one fairspec tag is '!delete', for keys a base spec sets)"
        self.problems.append(
            Problem(self.source.file, line, col, format_path(path), message, hint))
        return None

    def _mapping(self, node: Any, path: FieldPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[Any, tuple[int, int]] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line, key_col = self._mark(key_node)
            if _tag(key_node) == _MERGE_TAG:
                merged.update(self._merge(value_node, path))
                continue
            if key_node.id != "scalar" or _tag(key_node) not in _PLAIN_SCALAR_TAGS:
                self.problems.append(
                    Problem(self.source.file, key_line, key_col, format_path(path),
                            "a mapping key must be a plain scalar")
                )
                continue
            key = self.yaml.constructor.construct_object(key_node, deep=True)
            key = key if isinstance(key, str) else str(key)
            if key in seen:
                first_line, _ = seen[key]
                self.problems.append(
                    Problem(
                        self.source.file, key_line, key_col, format_path(path + (key,)),
                        f"duplicate key {key!r} (first defined at line {first_line})",
                        "keep one of them",
                    )
                )
                continue
            seen[key] = (key_line, key_col)
            self.source.keys[path + (key,)] = (key_line, key_col)
            result[key] = self.build(value_node, path + (key,))
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def _merge(self, node: Any, path: FieldPath) -> dict[str, Any]:
        nodes = node.value if node.id == "sequence" else [node]
        merged: dict[str, Any] = {}
        for item in nodes:
            if item.id != "mapping":
                self.problems.append(
                    Problem(self.source.file, *self._mark(item), format_path(path),
                            "a merge key '<<' needs a mapping or a list of mappings")
                )
                continue
            for key, value in self._mapping(item, path).items():
                merged.setdefault(key, value)
        return merged


def read_source(text: str, file: str) -> tuple[SpecSource, list[Problem]]:
    """Parse ``text`` (named ``file`` in messages) into a SpecSource and the problems found."""
    source = SpecSource(file=file, data=None, text=text)
    yaml = YAML(typ="safe", pure=True)
    try:
        documents = list(yaml.compose_all(text))
    except RecursionError:
        return source, [Problem(file, 1, 1, "", "the spec nests deeper than the YAML parser "
                                "can follow", "a spec is a few levels deep: check the "
                                "indentation and brackets")]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return source, [Problem(file, line, col, "", f"YAML syntax error: {what}")]
    except YAMLError as exc:  # unmarked errors (e.g. a bad character stream)
        return source, [Problem(file, 1, 1, "", f"YAML error: {exc}")]
    if not documents or documents[0] is None:
        return source, [Problem(file, 1, 1, "", "the spec is empty")]
    if len(documents) > 1:
        line = documents[1].start_mark.line + 1
        return source, [
            Problem(file, line, 1, "", "a spec is one YAML document; found a second one",
                    "remove the '---' separator and what follows")
        ]
    builder = _Builder(source, yaml)
    try:
        source.data = builder.build(documents[0], ())
    except _TooBig as exc:
        line, col = builder._mark(exc.node)
        source.data = None
        return source, [Problem(file, line, col, "", exc.message, exc.hint)]
    if not isinstance(source.data, dict):
        builder.problems.append(
            Problem(file, 1, 1, "", "a spec must be a mapping of keys (fairspec: 1, name: ..., ...)")
        )
    return source, builder.problems


#: A spec or a template past these sizes is refused unread: a spec is a few KB, a prompt
#: template a few hundred bytes (and /dev/zero never ends).
MAX_SPEC_BYTES = 1 << 20
MAX_TEMPLATE_BYTES = 256 << 10


def unfit_file(path: Path, limit: int, what: str) -> str | None:
    """Why ``path`` cannot be read as ``what`` ("spec", "template"): not a regular file (a
    folder, a device such as /dev/zero, a pipe), or larger than ``limit`` bytes; None when
    it can (a missing file is for the caller to say)."""
    try:
        found = path.stat()
    except OSError:
        return None
    if stat.S_ISDIR(found.st_mode):
        return f"cannot read {what} {path}: not a regular file (Is a directory)"
    if not stat.S_ISREG(found.st_mode):
        return f"cannot read {what} {path}: not a regular file (a device or a pipe)"
    if found.st_size > limit:
        return f"cannot read {what} {path}: {found.st_size:,} bytes, more than {limit:,}"
    return None


def read_source_file(path: Path) -> tuple[SpecSource, list[Problem]]:
    """Read a spec file from disk; an unreadable file is a problem, not an exception."""
    unfit = unfit_file(path, MAX_SPEC_BYTES, "spec")
    if unfit is not None:
        return SpecSource(str(path), None), [Problem(str(path), 1, 1, "", unfit)]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SpecSource(str(path), None), [Problem(str(path), 1, 1, "", "file not found")]
    except UnicodeDecodeError as exc:
        return SpecSource(str(path), None), [
            Problem(str(path), 1, 1, "", f"not UTF-8 text (byte {exc.start})")
        ]
    except OSError as exc:
        return SpecSource(str(path), None), [
            Problem(str(path), 1, 1, "", f"cannot read: {exc.strerror}")
        ]
    return read_source(text, str(path))
