"""Walks the spec schema by field path: which keys exist where, and what a path points to."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel

from fairspec.dsl.schema import Spec
from fairspec.dsl.source import FieldPath

_MISSING = object()
#: pydantic names union members in error locations: 'list[str]', "literal['x']", 'int', ...
_UNION_TAG = re.compile(r"^(?:[a-z_-]+\[.*\]|str|int|float|bool|none|list|dict|tuple)$")


def _members(tp: Any) -> list[Any]:
    """The concrete types behind Annotated[...], X | None and Union[...]."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(tp) for m in _members(arg)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def descend(tp: Any, part: str | int) -> Any:
    """The type found one step down from ``tp`` at ``part``, or _MISSING."""
    for member in _members(tp):
        origin = typing.get_origin(member)
        if _is_model(member) and isinstance(part, str) and part in member.model_fields:
            return member.model_fields[part].annotation
        if origin in (list, tuple) and isinstance(part, int):
            args = typing.get_args(member)
            return args[0] if origin is list or len(args) != 2 else args[part % 2]
        if origin is dict and isinstance(part, str):
            return typing.get_args(member)[1]
    return _MISSING


def type_at(path: FieldPath, root: Any = Spec) -> Any:
    """The annotation at ``path`` (None if the path does not exist in the schema)."""
    tp = root
    for part in path:
        tp = descend(tp, part)
        if tp is _MISSING:
            return None
    return tp


def keys_at(path: FieldPath, root: Any = Spec) -> list[str]:
    """The valid keys of the section at ``path`` (empty if it is not a section)."""
    tp = type_at(path, root)
    if tp is None:
        return []
    return [key for member in _members(tp) if _is_model(member) for key in member.model_fields]


def clean_loc(loc: tuple[Any, ...], root: Any = Spec) -> FieldPath:
    """Drop pydantic's union-member tags (``'list[str]'``, ``"literal['x']"``) from an error loc."""
    tp, path = root, []
    for part in loc:
        nxt = descend(tp, part) if tp is not _MISSING else _MISSING
        if nxt is _MISSING and isinstance(part, str) and _UNION_TAG.match(part):
            if not any(typing.get_origin(m) is dict for m in _members(tp)):
                continue  # a union tag, not a key the user wrote
        path.append(part)
        tp = nxt
    return tuple(path)
