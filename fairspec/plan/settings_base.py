"""The machinery of the stage kinds' settings types (fairspec/plan/stage_settings.py): a
frozen dataclass per block of a stage's compiled settings, read from the plan's mapping
(strict) and written back to exactly that mapping, and the compiler's round-trip check.

:meth:`Settings.to_mapping` is exactly the mapping the plan holds (``plan --json``): the same
keys, in the same order, so the plan and its fingerprints do not change with the types.
:meth:`Settings.from_mapping` is strict: a key the type does not know, or a missing key it
needs, is a :class:`~fairspec.errors.PlanError`; a key a plan compiled by an earlier fairspec
lacks takes the value that plan meant (the field's default, or :meth:`Settings._upgrade`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

from fairspec.errors import PlanError

S = TypeVar("S", bound="Settings")


def part(load: Callable[[Any], Any], dump: Callable[[Any], Any], **kw: Any) -> Any:
    """A field held as a typed value: ``load`` makes it from the plan's value, ``dump`` back."""
    metadata = {"load": load, "dump": dump, **kw.pop("metadata", {})}
    return field(metadata=metadata, **kw)


def nested(cls: type[Settings], **kw: Any) -> Any:
    """A field that is a block of its own (None stays None)."""
    return part(lambda v: None if v is None else cls.from_mapping(v),
                 lambda v: None if v is None else v.to_mapping(), **kw)


def each(cls: type[Settings], **kw: Any) -> Any:
    """A field that is a list of blocks (a tuple here)."""
    return part(lambda v: None if v is None else tuple(cls.from_mapping(x) for x in v),
                 lambda v: None if v is None else [x.to_mapping() for x in v], **kw)


def by_key(cls: type[Settings], **kw: Any) -> Any:
    """A field that maps names to blocks."""
    return part(lambda v: {k: cls.from_mapping(x) for k, x in v.items()},
                 lambda v: {k: x.to_mapping() for k, x in v.items()}, **kw)


def omitted(when: Any, **kw: Any) -> Any:
    """A field the plan leaves out while it holds ``when`` (its default)."""
    metadata = {"omit": when, **kw.pop("metadata", {})}
    return field(default=kw.pop("default", when), metadata=metadata, **kw)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """A block of a stage's compiled settings (see the module docstring)."""

    @classmethod
    def from_mapping(cls: type[S], data: Mapping[str, Any]) -> S:
        if not isinstance(data, Mapping):
            raise PlanError(f"{cls.__name__}: expected a mapping of settings, got {data!r}")
        known = {f.name: f for f in fields(cls)}
        unknown = [key for key in data if key not in known]
        values = {}
        for key, value in data.items():
            if key in known:
                try:
                    values[key] = known[key].metadata.get("load", _same)(value)
                except PlanError as exc:  # say where in the block
                    raise PlanError(f"{cls.__name__}.{key}: {exc}") from None
        values = cls._upgrade(values)
        missing = [f.name for f in fields(cls) if f.name not in values
                   and f.default is MISSING and f.default_factory is MISSING]
        if unknown or missing:
            said = ([f"unknown key {', '.join(map(repr, unknown))}"] if unknown else []) + \
                ([f"missing key {', '.join(map(repr, missing))}"] if missing else [])
            raise PlanError(f"{cls.__name__}: {'; '.join(said)}")
        return cls(**values)

    @classmethod
    def _upgrade(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The values of a plan compiled before some key existed, as that plan meant them."""
        return values

    def _order(self) -> list[str]:
        """The plan's keys in its order (the compiler's, which can depend on values)."""
        return [f.name for f in fields(self)]

    def to_mapping(self) -> dict[str, Any]:
        """The settings as the plan holds them."""
        known = {f.name: f for f in fields(self)}
        out: dict[str, Any] = {}
        for key in self._order():
            meta, value = known[key].metadata, getattr(self, key)
            if "omit" in meta and value == meta["omit"]:
                continue
            out[key] = meta.get("dump", _same)(value)
        return out


def _same(value: Any) -> Any:
    return value


def moved(order: list[str], key: str, after: str) -> list[str]:
    """``order`` with ``key`` right after ``after``."""
    rest = [k for k in order if k != key]
    return rest[: rest.index(after) + 1] + [key] + rest[rest.index(after) + 1:]


def checked_settings(kind: str, cls: type[Settings], compiled: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's compiled settings through its kind's type: the same mapping, or a
    :class:`PlanError` (a bug: the compiler and the type disagree)."""
    try:
        mapping = cls.from_mapping(compiled).to_mapping()
    except PlanError as exc:
        raise PlanError(f"the {kind} stage's settings do not fit its type (a bug in how the kind "
                        f"compiles, or in its settings type): {exc}") from None
    if json.dumps(mapping, default=str) != json.dumps(compiled, default=str) or mapping != compiled:
        differ = [key for key in dict.fromkeys([*compiled, *mapping])
                  if json.dumps(compiled.get(key), default=str) != json.dumps(mapping.get(key), default=str)]
        raise PlanError(f"the {kind} stage's settings and {cls.__name__} disagree (a bug): keys "
                        f"compiled {list(compiled)}, typed {list(mapping)}; values differ: {differ}")
    return mapping
