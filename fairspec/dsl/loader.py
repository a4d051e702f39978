"""Loads a spec file: YAML -> checked Spec (+ its variants), or a SpecError listing every problem.

Order of checks: YAML syntax, tags and duplicate keys; literal secrets; the schema
(unknown keys, types, values); cross-field rules; template files and variables; then
every variant and sweep point, re-checked as the spec it produces. Everything found is
reported at once, each at its FILE:LINE:COL.
"""

from __future__ import annotations

import copy
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fairspec.dsl.extends import with_bases
from fairspec.dsl.introspect import clean_loc, keys_at, type_at
from fairspec.dsl.rules import check_rules, spec_notes
from fairspec.dsl.schema import Spec
from fairspec.dsl.source import (
    MAX_TEMPLATE_BYTES,
    FieldPath,
    SpecSource,
    format_path,
    read_source,
    read_source_file,
    unfit_file,
)
from fairspec.dsl.variants import apply_overrides, key_path, sweep_points
from fairspec.errors import Problem, SpecError
from fairspec.resources import builtin_escapes, is_builtin, resolve_path
from fairspec.secrets import find_key_like, iter_strings, redact
from fairspec.tasks.kinds import default_prompt, default_training_template
from fairspec.templates import TEMPLATE_ROLES, check_template, role_variables

_PATTERN_HINTS = {
    "name": "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
    "api_key_env": "the NAME of an environment variable, e.g. OPENAI_API_KEY (never the key)",
}


@dataclass(frozen=True)
class VariantSpec:
    """One ablation run of a spec: its name, where it came from, the keys it changes."""

    name: str
    origin: str  # "variant" or "sweep"
    overrides: dict[str, Any]
    spec: Spec


@dataclass(frozen=True)
class LoadedSpec:
    """A checked spec, the file it came from, and its expanded variants."""

    spec: Spec
    file: Path
    base_dir: Path  # relative paths in the spec resolve against this folder
    source: SpecSource
    variants: dict[str, VariantSpec] = field(default_factory=dict)
    #: what validate prints about a sound spec (``rules.spec_notes``), at its keys
    notes: list[Problem] = field(default_factory=list)

    def spec_for(self, variant: str | None) -> Spec:
        """The spec a run executes: the spec itself (None) or one variant's or sweep point's."""
        return self.spec if variant is None else self.variants[variant].spec

    def template_path(self, role: str, spec: Spec | None = None) -> str:
        """The template reference for ``role`` (the spec's, or the builtin default)."""
        return template_ref(spec or self.spec, role)


def template_ref(spec: Spec, role: str) -> str:
    """The template reference a spec uses for a role, builtin default included."""
    section, _, key = role.rpartition(".")
    if section == "prompts":
        return getattr(spec.prompts, key) or default_prompt(key, spec.task.kind)
    return getattr(spec.training.templates, key) or default_training_template(key, spec.task.kind)


def role_key_path(role: str) -> FieldPath:
    return tuple(role.split("."))


def _pydantic_problems(exc: ValidationError) -> list[tuple[FieldPath, str, str | None, bool]]:
    """(path, message, hint, at_key) for each pydantic error, in words a user reads."""
    found = []
    for error in exc.errors(include_url=False):
        path = clean_loc(error["loc"])
        kind, last = error["type"], (path[-1] if path else "")
        shown = redact(repr(error.get("input")))[:80]
        at_key, hint = False, None
        if kind == "extra_forbidden":
            at_key = True
            message = f"unknown key '{last}'"
            close = difflib.get_close_matches(str(last), keys_at(path[:-1]), n=1, cutoff=0.6)
            if close:
                hint = f"did you mean '{close[0]}'?"
            elif last in ("api_key", "key", "token", "secret"):
                hint = "keys come only from environment variables: api_key_env: NAME"
            else:
                hint = "valid keys: " + ", ".join(keys_at(path[:-1]))
        elif kind == "missing":
            message, path = f"required key '{last}' is missing", path[:-1]
        elif kind == "literal_error":
            message = f"{shown} is not allowed"
            hint = f"allowed: {error['ctx']['expected']}"
        elif kind == "string_pattern_mismatch":
            message = f"{shown} is not a valid {last}"
            hint = _PATTERN_HINTS.get(str(last), f"must match {error['ctx']['pattern']}")
        elif kind in ("model_type", "dict_type"):
            message = f"expected a mapping of keys, got {shown}"
        else:
            message = f"{error['msg'][0].lower()}{error['msg'][1:]} (got {shown})"
        found.append((path, message, hint, at_key))
    return found


def _template_problems(spec: Spec, base_dir: Path) -> list[tuple[FieldPath, str, str | None]]:
    found = []
    for role in TEMPLATE_ROLES:
        ref = template_ref(spec, role)
        path = role_key_path(role)
        file = resolve_path(ref, base_dir)
        unfit = unfit_file(file, MAX_TEMPLATE_BYTES, "template")
        if unfit is not None:
            found.append((path, unfit, None))
            continue
        try:
            source = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            found.append((path, f"template file not found: {file}", None))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            found.append((path, f"cannot read template {file}: {exc}", None))
            continue
        for issue in check_template(source, role_variables(role, spec.task.fields)):
            where = f"{ref}:{issue.line}" if issue.line else ref
            found.append((path, f"template {where} {issue.message}", issue.hint))
    return found


def _without(data: Any, path: FieldPath) -> bool:
    """Delete ``path`` from nested data in place; False if it is not there."""
    node = data
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict) and path and path[-1] in node:
        del node[path[-1]]
        return True
    return False


def _repaired(data: Any, errors: list[tuple[FieldPath, str, str | None, bool]]) -> Spec | None:
    """The spec with every bad key removed (so defaults apply), or None if that cannot work.

    This lets the cross-field rules and template checks run, and report, even when
    the schema found problems elsewhere: every problem is reported at once.
    """
    data = copy.deepcopy(data)
    for _ in range(4):
        changed = False
        for path, message, *_ in errors:
            if message.startswith("required key"):
                changed |= _fill(data, path + (message.split("'")[1],))
            else:
                changed |= _without(data, path)
        if not changed:
            return None
        try:
            return Spec.model_validate(data)
        except ValidationError as exc:
            errors = _pydantic_problems(exc)
    return None


def _fill(data: Any, path: FieldPath) -> bool:
    """Put a placeholder of the right type at a required ``path`` (a Literal's first value)."""
    tp = type_at(path)
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    placeholder: Any = None
    if typing.get_origin(tp) is typing.Literal:
        placeholder = typing.get_args(tp)[0]
    elif tp is str:
        placeholder = "placeholder"
    node = data
    for part in path[:-1]:
        if not isinstance(node, dict | list):
            return False
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if placeholder is None or not isinstance(node, dict):
        return False
    node[path[-1]] = placeholder
    return True


def _check(data: Any, base_dir: Path) -> tuple[Spec | None, list[tuple[FieldPath, str, str | None, bool]]]:
    """Schema, rules and templates for one spec's raw data (spec is None when invalid)."""
    try:
        spec = Spec.model_validate(data)
        found: list[tuple[FieldPath, str, str | None, bool]] = []
    except ValidationError as exc:
        found = _pydantic_problems(exc)
        spec = None
    checked = spec or _repaired(data, found)
    if checked is not None:
        bad = [path for path, *_ in found]

        def fresh(path: FieldPath) -> bool:  # not about (a part of) a key already reported
            return not any(b[: len(path)] == path or path[: len(b)] == b for b in bad)

        found += [(f.path, f.message, f.hint, False) for f in check_rules(checked, base_dir)
                  if fresh(f.path)]
        found += [(p, m, h, False) for p, m, h in _template_problems(checked, base_dir)
                  if fresh(p)]
    return spec, found


def _secret_problems(source: SpecSource) -> list[Problem]:
    """Key-like text anywhere in the spec, and ``builtin:`` paths outside the package's
    resources (``builtin:../../etc/passwd`` would be read, sent to a teacher, recorded)."""
    problems = []
    for path, text, is_key in iter_strings(source.data):
        if not is_key and is_builtin(text) and builtin_escapes(text):
            problems.append(source.problem(
                path, f"{text} lies outside fairspec's packaged resources",
                "builtin: names a packaged file (builtin:prompts/math/exam.j2); use a path "
                "relative to the spec for your own files"))
            continue
        label = find_key_like(text)
        if label:
            problems.append(source.problem(
                path, f"looks like a literal secret ({label}); a spec never holds keys",
                "put the key in an environment variable and name it with api_key_env",
                key=is_key,
            ))
    return problems


def validate_source(source: SpecSource, base_dir: Path) -> LoadedSpec:
    """Check parsed spec data; raise SpecError with every problem, or return the LoadedSpec."""
    problems = _secret_problems(source)
    if any("lies outside fairspec's packaged resources" in p.message for p in problems):
        raise SpecError(problems)  # no file of it is opened, not even to check it
    secret_paths = {p.path for p in problems}
    spec, found = _check(source.data, base_dir)
    for path, message, hint, at_key in found:
        if format_path(path) not in secret_paths:
            problems.append(source.problem(path, message, hint, key=at_key))
    variants: dict[str, VariantSpec] = {}
    if isinstance(source.data, dict):
        base_messages = {(format_path(p), m) for p, m, _, _ in found}
        variants = _expand_variants(source, base_dir, spec is not None, base_messages, problems)
    if problems or spec is None:
        raise SpecError(list(dict.fromkeys(problems)))  # sweep points can repeat one problem
    notes = [source.problem(f.path, f.message, f.hint) for f in spec_notes(spec)]
    return LoadedSpec(spec=spec, file=Path(source.file), base_dir=base_dir, source=source,
                      variants=variants, notes=notes)


def _raw_variants(source: SpecSource) -> list[tuple[str, str, FieldPath, dict[str, Any]]]:
    """(name, origin, position path, overrides) for each declared variant and sweep point."""
    data = source.data
    out = []
    variants = data.get("variants")
    for i, variant in enumerate(variants if isinstance(variants, list) else []):
        if isinstance(variant, dict) and isinstance(variant.get("set"), dict):
            out.append((str(variant.get("name")), "variant", ("variants", i, "set"), variant["set"]))
    sweep = data.get("sweep")
    if isinstance(sweep, dict) and all(isinstance(v, list) and v for v in sweep.values()):
        for name, overrides in sweep_points(sweep):
            out.append((name, "sweep", ("sweep",), overrides))
    return out


def _expand_variants(
    source: SpecSource,
    base_dir: Path,
    base_valid: bool,
    base_messages: set[tuple[str, str]],
    problems: list[Problem],
) -> dict[str, VariantSpec]:
    expanded: dict[str, VariantSpec] = {}
    seen: dict[str, FieldPath] = {}
    for name, origin, where, overrides in _raw_variants(source):
        def key_where(dotted: str, where: FieldPath = where, origin: str = origin) -> FieldPath:
            return where + (dotted,) if origin == "variant" else ("sweep", dotted)

        if name in seen:
            problems.append(source.problem(
                where[:-1] + ("name",) if origin == "variant" else where,
                f"variant name '{name}' is used twice", "names must be unique"))
            continue
        seen[name] = where
        data, findings = apply_overrides(source.data, overrides)
        for finding in findings:
            problems.append(source.problem(key_where(finding.key), finding.message, finding.hint,
                                           key=not finding.at_value))
        if findings:
            continue
        # a variant is checked even when the base spec has problems: its own (the keys it
        # sets) are reported beside the base's, not hidden until the base is fixed
        spec, found = _check(data, base_dir)
        for path, message, hint, _ in found:
            if (format_path(path), message) in base_messages:
                continue
            culprit = next(
                (k for k in overrides if key_path(str(k))[: len(path)] == path[: len(key_path(str(k)))]),
                None,
            )
            if culprit is None and not base_valid:
                continue  # a consequence of the base's own problems
            at = key_where(culprit) if culprit is not None else where
            label = f"in {origin} '{name}'" + (f", {format_path(path)}" if path else "")
            problems.append(source.problem(at, f"{label}: {message}", hint))
        if spec is not None and not found:
            expanded[name] = VariantSpec(name=name, origin=origin, overrides=dict(overrides),
                                         spec=spec)
    return expanded


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and check a spec file (and the bases it extends). Raises SpecError listing every
    problem found."""
    source, problems = read_source_file(Path(path))
    return _load(source, problems, Path(path).parent)


def load_spec_text(text: str, *, file: str = "<spec>", base_dir: Path | None = None) -> LoadedSpec:
    """Check a spec given as text (paths resolve against ``base_dir``, default the cwd)."""
    source, problems = read_source(text, file)
    return _load(source, problems, base_dir or Path.cwd())


def _load(source: SpecSource, problems: list[Problem], base_dir: Path) -> LoadedSpec:
    if problems:
        raise SpecError(problems)
    merged, problems = with_bases(source, base_dir)
    if merged is None:
        raise SpecError(problems)
    try:
        loaded = validate_source(merged, base_dir)
    except SpecError as exc:
        raise SpecError(problems + exc.problems) from None
    if problems:
        raise SpecError(problems)
    return loaded
