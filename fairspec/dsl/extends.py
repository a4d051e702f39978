"""``extends:``: a spec written on top of a base spec (which may extend another, and so on).

The spec's keys deep-merge over its base's: mappings merge key by key, lists and
scalars replace what the base wrote, and ``key: !delete`` removes a key the base sets
(its default applies again). ``extends`` names one file, relative to the file that
writes it, or ``builtin:specs/<name>.yaml``.

The merged :class:`~fairspec.dsl.source.SpecSource` keeps, for every key and value, the
file and line that wrote it, so every problem is reported where it was written, with
the chain that pulled the file in. A relative path a base writes (templates, a local
dataset, model folder or replay file) keeps meaning what it meant in its own file: it
is rewritten relative to the spec's folder (``builtin:`` for a packaged base). A
packaged base's ``output_dir`` is not inherited: runs go beside the spec that is run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fairspec.dsl.source import DELETE, FieldPath, SpecFile, SpecSource, format_path, read_source
from fairspec.errors import Problem
from fairspec.hashing import sha256_file, sha256_text
from fairspec.resources import BUILTIN_PREFIX, is_builtin, resource_root

EXTENDS = "extends"

#: keys holding a path relative to the file that writes them ("*": each list item)
_PATH_KEYS: tuple[FieldPath, ...] = (
    ("task", "dataset", "path"),
    ("prompts", "exam"), ("prompts", "rationale"), ("prompts", "feedback"), ("prompts", "review"),
    ("training", "templates", "rationale"), ("training", "templates", "feedback"),
    ("teachers", "*", "replay_file"),
    ("teachers", "*", "recorded", "rationale", "path"),
    ("teachers", "*", "recorded", "feedback", "path"),
    ("teachers", "*", "recorded", "review", "path"),
    ("review", "jury", "*", "replay_file"),
    ("student", "exam", "recorded", "path"),
    ("output_dir",),
)
#: keys holding a model: a path only where it names a folder next to the writing file
_MODEL_KEYS: tuple[FieldPath, ...] = (("student", "model"), ("teachers", "*", "model"),
                                      ("review", "jury", "*", "model"))


def with_bases(source: SpecSource, folder: Path) -> tuple[SpecSource | None, list[Problem]]:
    """``source`` merged over the chain of bases it extends (a copy when it extends none),
    and the problems found; None when the chain cannot be read."""
    on_disk = Path(source.file).is_file()  # the hash of the file's bytes, as sha256sum prints it
    root = SpecFile(label=source.file, folder=str(folder),
                    sha256=sha256_file(Path(source.file)) if on_disk else sha256_text(source.text))
    files: list[tuple[SpecFile, SpecSource]] = [(root, source)]
    seen = {str(Path(source.file).resolve()) if Path(source.file).is_file() else source.file}
    while isinstance(files[-1][1].data, dict) and EXTENDS in files[-1][1].data:
        found = _read_base(files, seen)
        if isinstance(found, list):
            return None, found
        files.append(found)
    merged = _flatten(files)
    merged.chain = tuple(link for link, _ in files)
    problems = _delete_problems(files)
    _rebase_paths(merged, {link.label: link for link in merged.chain})
    return merged, problems


def chain_files(chain: tuple[SpecFile, ...]) -> list[dict[str, str]]:
    """The chain as the plan and the record list it: each file relative to the spec's
    folder (the spec by its name; a packaged base as ``builtin:...``) and its sha256."""
    if not chain:
        return []
    root = Path(chain[0].folder)
    out = [{"file": Path(chain[0].label).name, "sha256": chain[0].sha256}]
    for link in chain[1:]:
        shown = link.label if link.builtin else Path(os.path.relpath(
            os.path.abspath(link.label), os.path.abspath(root))).as_posix()
        out.append({"file": shown, "sha256": link.sha256})
    return out


def _read_base(files: list[tuple[SpecFile, SpecSource]],
               seen: set[str]) -> tuple[SpecFile, SpecSource] | list[Problem]:
    """The base the last file of the chain extends, read, or the problems that stop there."""
    link, child = files[-1]
    labels = [f.label for f, _ in files]
    ref = child.data[EXTENDS]
    where: FieldPath = (EXTENDS,)
    if not isinstance(ref, str) or not ref.strip():
        return [_in_base(child.problem(
            where, f"extends takes the path of one base spec, got {ref!r}",
            "extends: base.yaml (relative to this file) or extends: builtin:specs/gsm8k.yaml"),
            labels)]
    written = Path(ref).expanduser()
    builtin = is_builtin(ref) or (link.builtin and not written.is_absolute())
    if is_builtin(ref):
        path = resource_root() / ref[len(BUILTIN_PREFIX):]
    else:
        path = written if written.is_absolute() else Path(link.folder) / written
    label = _label(path, builtin)
    identity = str(path.resolve()) if path.is_file() else label
    if identity in seen:
        return [_in_base(child.problem(
            where, "extends makes a cycle: " + " -> ".join([*labels, label]),
            "a spec cannot extend itself, directly or through its bases"), labels)]
    if not path.is_file():
        known = sorted(p.name for p in (resource_root() / "specs").glob("*.yaml"))
        hint = ("builtin specs: " + ", ".join(f"builtin:specs/{n}" for n in known)) if builtin else None
        return [_in_base(child.problem(where, f"base spec not found: {ref} (looked for {path})", hint),
                         labels)]
    seen.add(identity)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [_in_base(child.problem(where, f"cannot read base spec {label}: {exc}"), labels)]
    base, problems = read_source(text, label)
    if not problems and not isinstance(base.data, dict):
        problems = [Problem(label, 1, 1, "", "a base spec must be a mapping of keys")]
    if problems:
        return [_in_base(p, [*labels, label]) for p in problems]
    return SpecFile(label=label, sha256=sha256_file(path), folder=str(path.parent),
                    builtin=builtin, extended_by=link.label), base


def _label(path: Path, builtin: bool) -> str:
    if builtin:
        relative = os.path.relpath(os.path.normpath(path), resource_root())
        return BUILTIN_PREFIX + Path(relative).as_posix()
    return os.path.normpath(path)


def _in_base(problem: Problem, labels: list[str]) -> Problem:
    """A problem in a base file, with the chain that pulled the file in."""
    if problem.file == labels[0] or problem.file not in labels or "(base spec:" in problem.message:
        return problem
    pulled = " (base spec: " + " extends ".join(labels[: labels.index(problem.file) + 1]) + ")"
    return Problem(problem.file, problem.line, problem.col, problem.path,
                   problem.message + pulled, problem.hint)


def _flatten(files: list[tuple[SpecFile, SpecSource]]) -> SpecSource:
    """The chain's data merged, deepest base first, with each path's file and position."""
    root_link, root = files[0]
    merged = SpecSource(file=root.file, data={}, text=root.text)
    for link, part in reversed(files):
        data = {k: v for k, v in part.data.items() if k != EXTENDS}
        _overlay(merged, merged.data, data, (), part, link.label)
    return merged


def _overlay(merged: SpecSource, into: dict[str, Any], data: dict[str, Any], path: FieldPath,
             part: SpecSource, label: str) -> None:
    for key, value in data.items():
        here = path + (key,)
        if value is DELETE:
            if key in into:
                del into[key]
                _drop(merged, here)
            continue  # a key no base sets: reported by _delete_problems
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _copy_position(merged, part, here, label, subtree=False)
            _overlay(merged, into[key], value, here, part, label)
            continue
        _drop(merged, here)
        into[key] = _without_deletes(value)
        _copy_position(merged, part, here, label, subtree=True)


def _without_deletes(value: Any) -> Any:
    """A value written over nothing: its ``!delete`` keys have nothing to remove."""
    if isinstance(value, dict):
        return {k: _without_deletes(v) for k, v in value.items() if v is not DELETE}
    if isinstance(value, list):
        return [_without_deletes(v) for v in value]
    return value


def _drop(merged: SpecSource, path: FieldPath) -> None:
    for table in (merged.values, merged.keys, merged.files):
        for known in [p for p in table if p[: len(path)] == path]:
            del table[known]


def _copy_position(merged: SpecSource, part: SpecSource, path: FieldPath, label: str, *,
                   subtree: bool) -> None:
    for own, table in ((part.values, merged.values), (part.keys, merged.keys)):
        for known, position in own.items():
            if known == path or (subtree and known[: len(path)] == path):
                table[known] = position
                merged.files[known] = label


def _delete_problems(files: list[tuple[SpecFile, SpecSource]]) -> list[Problem]:
    """``!delete`` with nothing to delete: a typo, a spec that extends nothing, a list item."""
    labels = [link.label for link, _ in files]
    problems = []
    for depth, (link, part) in enumerate(files):
        below = [p.data for _, p in files[depth + 1:]]
        for path, in_list in _delete_paths(part.data, (), False):
            if in_list:
                message = "!delete inside a list: a list replaces the base's list whole"
            elif not below:
                message = ("!delete removes a key that a base spec sets, and "
                           + ("this spec extends none" if depth == 0 else "this base extends none"))
            elif any(_has(data, path) for data in below):
                continue
            else:
                message = f"nothing to delete: no base spec sets {format_path(path)}"
            line, col = part.keys.get(path, part.values.get(path, (1, 1)))
            problems.append(_in_base(Problem(link.label, line, col, format_path(path), message,
                                             "remove the line, or check the key's spelling"),
                                     labels))
    return problems


def _delete_paths(data: Any, path: FieldPath, in_list: bool) -> list[tuple[FieldPath, bool]]:
    if data is DELETE:
        return [(path, in_list)]
    if isinstance(data, dict):
        return [found for k, v in data.items() for found in _delete_paths(v, path + (k,), in_list)]
    if isinstance(data, list):
        return [found for i, v in enumerate(data) for found in _delete_paths(v, path + (i,), True)]
    return []


def _has(data: Any, path: FieldPath) -> bool:
    for part in path:
        if not (isinstance(data, dict) and part in data):
            return False
        data = data[part]
    return data is not DELETE


def _rebase_paths(merged: SpecSource, links: dict[str, SpecFile]) -> None:
    """Rewrite the relative paths a base wrote so they resolve from the spec's folder
    (variants' ``set`` values that name such a key included)."""
    root = Path(merged.chain[0].folder)
    patterns = [(p, False) for p in _PATH_KEYS] + [(p, True) for p in _MODEL_KEYS]
    found = [(path, model, path == ("output_dir",))
             for pattern, model in patterns for path in _expand(merged.data, pattern, ())]
    variants = merged.data.get("variants")
    for i, variant in enumerate(variants if isinstance(variants, list) else []):
        overrides = variant.get("set") if isinstance(variant, dict) else None
        for dotted in overrides if isinstance(overrides, dict) else {}:
            for pattern, model in patterns:
                if "*" not in pattern and ".".join(map(str, pattern)) == dotted:
                    found.append((("variants", i, "set", dotted), model, pattern == ("output_dir",)))
    for path, model, output in found:
        link = links.get(merged.files.get(path, merged.file))
        if link is None or link is merged.chain[0]:
            continue
        parent, key = _parent(merged.data, path)
        value = _rebased(parent[key], link, root, model=model, output=output)
        if value is None:
            del parent[key]
        else:
            parent[key] = value


def _expand(data: Any, pattern: FieldPath, path: FieldPath) -> list[FieldPath]:
    if not pattern:
        return [path]
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        return [p for i, item in enumerate(data if isinstance(data, list) else [])
                for p in _expand(item, rest, path + (i,))]
    if isinstance(data, dict) and head in data:
        return _expand(data[head], rest, path + (head,))
    return []


def _parent(data: Any, path: FieldPath) -> tuple[Any, Any]:
    for part in path[:-1]:
        data = data[part]
    return data, path[-1]


def _rebased(value: Any, link: SpecFile, root: Path, *, model: bool, output: bool) -> Any:
    """``value`` as written in ``link``'s file, relative to the spec's folder ``root``
    (None: drop it, for a packaged base's output folder)."""
    if not isinstance(value, str) or not value or is_builtin(value):
        return value
    written = Path(value).expanduser()
    if written.is_absolute():
        return value
    target = Path(link.folder) / written
    if model and not target.is_dir():
        return value  # a hub id, not a folder beside the base
    if link.builtin:
        if output:
            return None
        inside = os.path.relpath(os.path.normpath(target), resource_root())
        return value if inside.startswith("..") else BUILTIN_PREFIX + Path(inside).as_posix()
    return Path(os.path.relpath(os.path.abspath(target), os.path.abspath(root))).as_posix()
