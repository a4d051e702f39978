"""``fairspec diff A B``: what differs between two specs or run records, key by key.

A side is a spec file (its bases merged, every default written out; ``variant`` picks
one of its variants) or a run record (``runs/<run>/record/``, the run folder above it,
or the record's ``spec.yaml``). Values that name files are compared by what they hold:
a template by its text, a local dataset by its split files, a replay file and recorded
answers by their bytes, a model folder and the output folder by where they are. So a
record (which carries copies of the templates and data) equals the spec it was made
from except for what the run resolved: the exam engine and dtype, the answer extractor.

Where either side is a record, ``output_dir`` (a record reruns into its own folder)
and ``variants``/``sweep`` (a record is one run) are not compared, and a spec facing a
record is compared as the variant the record ran. Two records are also compared by
their datasets' fingerprints, package versions (Python included) and each stage's
fingerprint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fairspec.dsl import LoadedSpec, Spec, load_spec, template_ref
from fairspec.errors import DiffError, FairspecError
from fairspec.hashing import sha256_file, sha256_text
from fairspec.providers.registry import provider_kind
from fairspec.resources import is_builtin, resolve_path
from fairspec.store.recorded_answers import ROLES
from fairspec.tasks.data import split_file
from fairspec.templates import TEMPLATE_ROLES

RECORD_FILES = ("spec.yaml", "stages.json")
SECTIONS = ("spec", "datasets", "packages", "stages")


@dataclass(frozen=True)
class Side:
    """One thing compared: a spec (as one of its runs) or a run record."""

    path: Path
    kind: str                  # "spec" or "record"
    spec: Spec
    base_dir: Path
    run: str | None = None     # a record's run name
    variant: str | None = None
    record: dict[str, Any] | None = None  # a record's datasets, environment and stages
    label: str = ""            # as the user named it

    def describe(self) -> dict[str, Any]:
        return {"path": self.label or str(self.path), "kind": self.kind, "run": self.run,
                "variant": self.variant}


@dataclass(frozen=True)
class Difference:
    section: str   # spec, datasets, packages or stages
    key: str
    a: Any
    b: Any

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "key": self.key, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class _Named:
    """A value naming a file: shown as written, compared by what it names."""

    shown: Any
    identity: str


def record_folder(path: Path) -> Path | None:
    """The record folder ``path`` is, holds (a run folder), or sits in (its spec.yaml)."""
    for folder in (path, path / "record") if path.is_dir() else (path.parent,):
        if all((folder / name).is_file() for name in RECORD_FILES):
            if path.is_dir() or path.name == "spec.yaml":
                return folder
    return None


def side_path(ref: str | Path) -> Path:
    """A side as the user names it: a path, or ``builtin:specs/<name>.yaml``."""
    path = resolve_path(str(ref), Path.cwd()) if is_builtin(str(ref)) else Path(ref)
    if not path.exists():
        raise DiffError(f"{ref}: no such spec file or run record")
    return path


def open_pair(a: str | Path, b: str | Path, variant: str | None = None) -> tuple[Side, Side]:
    """Both sides; a spec facing a record is opened as the record's variant."""
    paths = (side_path(a), side_path(b))
    records = [record_folder(path) for path in paths]
    opened: list[Side | None] = [_open_record(path, folder) if folder else None
                                 for path, folder in zip(paths, records, strict=True)]
    for i in (0, 1):
        facing = opened[1 - i] if records[1 - i] else None
        if opened[i] is None:
            wanted = variant if facing is None else (facing.variant if variant is None else variant)
            opened[i] = _open_spec(paths[i], wanted, facing)
    left, right = opened
    assert left is not None and right is not None
    return replace(left, label=str(a)), replace(right, label=str(b))


def _open_record(path: Path, folder: Path) -> Side:
    def read(name: str) -> Any:
        file = folder / name
        try:
            return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
        except (OSError, ValueError) as exc:
            raise DiffError(f"{file}: not a readable record file ({exc})") from None

    stages = read("stages.json") or {}
    loaded = load_spec(folder / "spec.yaml")
    return Side(path, "record", loaded.spec, folder, run=stages.get("run"),
                variant=stages.get("variant"),
                record={"datasets": read("datasets.json"), "environment": read("environment.json"),
                        "stages": stages.get("stages")})


def _open_spec(path: Path, variant: str | None, facing: Side | None) -> Side:
    if path.is_dir():
        raise DiffError(f"{path}: not a spec file or a run record (a record folder holds "
                        + " and ".join(RECORD_FILES) + ")")
    loaded: LoadedSpec = load_spec(path)
    if variant is not None and variant not in loaded.variants:
        whose = f"the record {facing.path} ran variant '{variant}'; " if facing else ""
        raise DiffError(f"{whose}{path} has no variant '{variant}'; it has: "
                        + (", ".join(loaded.variants) or "none"))
    return Side(path, "spec", loaded.spec_for(variant), loaded.base_dir, variant=variant)


def compare(a: Side, b: Side) -> list[Difference]:
    """Every difference, by section (spec, datasets, packages, stages) and key."""
    runs = a.kind == "spec" and b.kind == "spec"  # variants, sweep and output_dir compared
    found = _differences("spec", settings(a, runs=runs), settings(b, runs=runs))
    if a.record is not None and b.record is not None:
        for section, read in (("datasets", _datasets), ("packages", _packages), ("stages", _stages)):
            found += _differences(section, read(a.record), read(b.record))
    return found


def settings(side: Side, *, runs: bool = True) -> dict[str, Any]:
    """The side's resolved spec as ``dotted.key -> value``, file-naming values as _Named."""
    spec, base = side.spec, side.base_dir
    data = spec.model_dump(mode="json")
    if not runs:
        for key in ("output_dir", "variants", "sweep"):
            data.pop(key, None)
    else:  # where the runs go, wherever each spec is
        data["output_dir"] = _Named(data["output_dir"],
                                    f"folder:{resolve_path(data['output_dir'], base).resolve()}")
    for role in TEMPLATE_ROLES:
        *parents, last = role.split(".")
        into = data
        for key in parents:
            into = into[key]
        into[last] = _file(template_ref(spec, role), base)
    dataset = data["task"]["dataset"]
    if dataset.get("path"):
        dataset["path"] = _dataset(dataset["path"], base, (dataset["train_split"], dataset["test_split"]))
    data["student"]["model"] = _model(data["student"]["model"], base)
    recorded = [data["student"]["exam"].get("recorded")]
    jurors = [m for m in data["review"].get("jury") or () if isinstance(m, dict)]
    for teacher in data["teachers"] + jurors:
        if provider_kind(teacher["provider"]).model_is_path:
            teacher["model"] = _model(teacher["model"], base)
        if teacher.get("replay_file"):
            teacher["replay_file"] = _file(teacher["replay_file"], base)
        answers = teacher.get("recorded") or {}
        recorded += [answers.get(role) for role in ROLES]
    for source in recorded:
        if source and source.get("path"):
            source["path"] = _file(source["path"], base)
    return _flatten(data, "")


def _file(ref: str, base: Path) -> _Named:
    path = resolve_path(ref, base)
    return _Named(ref, "sha256:" + sha256_file(path) if path.is_file() else f"missing:{path}")


def _dataset(ref: str, base: Path, splits: tuple[str, ...]) -> _Named:
    """A local dataset by the bytes of the split files a run reads from it."""
    path = resolve_path(ref, base)
    try:
        files = [split_file(path, split) for split in dict.fromkeys(splits)]
    except FairspecError:
        return _Named(ref, f"missing:{path}")
    return _Named(ref, sha256_text(" ".join(f"{f.name}:{sha256_file(f)}" for f in files)))


def _model(ref: str, base: Path) -> Any:
    if is_builtin(ref):
        return ref
    folder = resolve_path(ref, base)
    return _Named(ref, f"folder:{folder.resolve()}") if folder.is_dir() else ref


def _flatten(data: Any, prefix: str) -> dict[str, Any]:
    """Nested data as dotted keys; a list of named items keyed by name (``teachers[gpt]``)."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and data and all(isinstance(i, dict) and "name" in i for i in data) \
            and len({str(i["name"]) for i in data}) == len(data):
        out = {}
        for item in data:
            out.update(_flatten({k: v for k, v in item.items() if k != "name"},
                                f"{prefix}[{item['name']}]"))
        return out
    return {prefix: data}


def _datasets(record: dict[str, Any]) -> dict[str, Any]:
    datasets = record.get("datasets") or {}
    return {f"{split}.fingerprint": (info or {}).get("fingerprint") for split, info in datasets.items()}


def _packages(record: dict[str, Any]) -> dict[str, Any]:
    environment = record.get("environment") or {}
    return {"python": environment.get("python"), **(environment.get("packages") or {})}


def _stages(record: dict[str, Any]) -> dict[str, Any]:
    return {name: (info or {}).get("fingerprint") for name, info in (record.get("stages") or {}).items()}


def _differences(section: str, a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    def identity(value: Any) -> Any:
        return value.identity if isinstance(value, _Named) else value

    def shown(value: Any) -> Any:
        return value.shown if isinstance(value, _Named) else value

    missing = object()
    found = []
    for key in [*a, *(k for k in b if k not in a)]:
        left, right = a.get(key, missing), b.get(key, missing)
        if left is missing or right is missing or identity(left) != identity(right):
            found.append(Difference(section, key, None if left is missing else shown(left),
                                    None if right is missing else shown(right)))
    return found


def render(a: Side, b: Side, differences: list[Difference]) -> list[str]:
    """The text ``fairspec diff`` prints."""
    def side(label: str, s: Side) -> str:
        what = f"record of run {s.run}" if s.kind == "record" else "spec"
        if s.kind == "spec" and s.variant:
            what += f", variant {s.variant}"
        return f"{label}: {s.label or s.path} ({what})"

    lines = [side("A", a), side("B", b)]
    for section in SECTIONS:
        rows = [d for d in differences if d.section == section]
        if rows:
            lines.append(f"{section}:")
            lines += [f"  {d.key}: {_show(d.a)} -> {_show(d.b)}" for d in rows]
    lines.append(f"{len(differences)} difference(s)" if differences else "no differences")
    return lines


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
