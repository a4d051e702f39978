"""Applies a variant's or a sweep point's dotted-key changes to a spec's raw data."""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from typing import Any

from fairspec.dsl.introspect import keys_at, type_at
from fairspec.dsl.source import FieldPath

#: Keys that identify or organise the experiment itself; a variant cannot change them.
FIXED_KEYS = ("fairspec", "name", "description", "variants", "sweep", "output_dir")


@dataclass(frozen=True)
class OverrideFinding:
    """A problem with one override: ``key`` is the dotted key as written; ``at_value``: the
    problem is in its value (reported where the value starts, not at the key)."""

    key: str
    message: str
    hint: str | None = None
    at_value: bool = False


def key_path(dotted: str) -> FieldPath:
    return tuple(dotted.split("."))


def check_override_key(dotted: str) -> OverrideFinding | None:
    """Whether ``dotted`` names a key of the spec that a variant may set."""
    parts = key_path(dotted)
    if not all(parts):
        return OverrideFinding(dotted, f"'{dotted}' is not a dotted key path",
                               "e.g. review.enabled")
    if parts[0] in FIXED_KEYS:
        return OverrideFinding(dotted, f"a variant cannot change '{parts[0]}'")
    if parts[0] == "teachers" and len(parts) > 1:
        return OverrideFinding(dotted, "teachers are chosen by name, not changed key by key",
                               "teachers: [gpt, gemini], or define another teacher")
    if type_at(parts) is None:
        import difflib

        parent = parts[:-1]
        valid = keys_at(parent) if type_at(parent) is not None else keys_at(())
        close = difflib.get_close_matches(parts[-1], valid, n=1)
        hint = f"did you mean '{'.'.join(parent + (close[0],))}'?" if close else None
        return OverrideFinding(dotted, f"'{dotted}' is not a key of the spec", hint)
    return None


def apply_overrides(
    raw: dict[str, Any], overrides: dict[str, Any]
) -> tuple[dict[str, Any], list[OverrideFinding]]:
    """A deep copy of ``raw`` with ``overrides`` applied, and the problems found."""
    data = copy.deepcopy(raw)
    findings: list[OverrideFinding] = []
    for dotted, value in overrides.items():
        finding = check_override_key(str(dotted))
        if finding:
            findings.append(finding)
            continue
        parts = key_path(str(dotted))
        if parts == ("teachers",):
            chosen, finding = _choose_teachers(data.get("teachers"), value, str(dotted))
            if finding:
                findings.append(finding)
            else:
                data["teachers"] = chosen
            continue
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = copy.deepcopy(value)
    return data, findings


def _choose_teachers(
    teachers: Any, value: Any, dotted: str
) -> tuple[list[Any], OverrideFinding | None]:
    if not isinstance(value, list) or not value:
        return [], OverrideFinding(dotted, "teachers needs a non-empty list of teacher names",
                                   at_value=True)
    if all(isinstance(item, dict) for item in value):
        return copy.deepcopy(value), None  # a whole new committee
    known = {t.get("name"): t for t in teachers or [] if isinstance(t, dict)}
    chosen = []
    for name in value:
        if name not in known:
            return [], OverrideFinding(dotted, f"unknown teacher '{name}'",
                                       "known: " + ", ".join(map(str, known)), at_value=True)
        chosen.append(copy.deepcopy(known[name]))
    if len(set(map(str, value))) != len(value):
        return [], OverrideFinding(dotted, "a teacher is named twice", at_value=True)
    return chosen, None


def _value_label(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "null"


def sweep_points(sweep: dict[str, list[Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The grid of a sweep as (name, overrides): ``training.alpha: [0, 1]`` -> alpha-0, alpha-1."""
    if not sweep:
        return []
    keys = list(sweep)
    short = [k.split(".")[-1] for k in keys]
    labels = short if len(set(short)) == len(short) else [k.replace(".", "-") for k in keys]
    points = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        name = ".".join(f"{label}-{_value_label(v)}" for label, v in zip(labels, values, strict=True))
        points.append((name, dict(zip(keys, values, strict=True))))
    return points


def shown(value: Any) -> str:
    """A variant's value as a table shows it: a declaration in a list (a juror) by its name."""
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "[" + ", ".join(str(v.get("name", "?")) if isinstance(v, dict) else str(v)
                               for v in value) + "]"
    return str(value)
