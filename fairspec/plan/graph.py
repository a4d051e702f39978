"""The Plan as frozen data: runs of stage instances, each declaring what it reads and writes.

A stage instance names its kind (the registered implementation that runs it), the
stages its fingerprint follows (``after``), the artifacts it reads (``inputs``: a
producing stage of the same run and one of that stage's declared outputs) and the
artifacts it writes (``outputs``). The executor hands a stage exactly these through
its context; nothing else connects two stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from typing import Any


@dataclass(frozen=True)
class Output:
    """One artifact a stage writes: a file, a folder (``name/``) or a glob (``*.png``).

    ``required``: the stage always writes it; an optional one is written only in some
    cases (no model when nothing was trained), and a reader must allow its absence.
    """

    name: str
    required: bool = True

    def matches(self, entry: str) -> bool:
        """Whether the folder entry ``entry`` (a folder with a trailing ``/``) is this artifact."""
        return fnmatch(entry, self.name)


@dataclass(frozen=True)
class Input:
    """An artifact a stage reads: ``artifact`` as declared by the stage ``stage``."""

    stage: str
    artifact: str

    def __str__(self) -> str:
        return f"{self.stage}/{self.artifact}"


@dataclass(frozen=True)
class Stage:
    """One stage instance of a run: its kind, settings, graph edges and fingerprint.

    ``identity`` is exactly what the fingerprint covers, with the fingerprints of the
    stages in ``after``; ``settings`` also carries what does not change outputs (batch
    sizes, concurrency, devices), which the stage needs to run.
    """

    name: str
    kind: str
    fingerprint: str
    settings: Mapping[str, Any]
    identity: Mapping[str, Any]
    after: tuple[str, ...]
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    #: which registered implementation of ``kind`` runs it (None: the kind's own;
    #: ``recorded``: its outputs come from recorded files)
    implementation: str | None = None
    #: files inside its inputs the stage rewrites (the evaluate stage completes the tuned
    #: model's card with the accuracy it measured)
    amends: tuple[Input, ...] = ()

    @property
    def short(self) -> str:
        return self.fingerprint[:12]

    def output(self, name: str) -> Output | None:
        """The declared output ``name`` is (by name, or matching a declared glob)."""
        return next((o for o in self.outputs if o.name == name or o.matches(name)), None)


@dataclass(frozen=True)
class RunPlan:
    """One run folder: the spec itself (variant None) or one of its variants/sweep points,
    or (``repeats``) one of those again with another of the spec's ``seeds``."""

    name: str
    variant: str | None
    origin: str  # "spec", "variant" or "sweep"
    overrides: Mapping[str, Any]
    run_dir: str
    stages: tuple[Stage, ...]
    #: with the spec's ``seeds``: the seed of this run's training and evaluation
    seed: int | None = None
    #: with ``seeds``: the run (first seed) this one repeats with another seed, else None
    repeats: str | None = None
    #: every model the run calls, in the order the spec declares them (its teachers, then its
    #: jurors), and the members of its ``review.jury`` in theirs (none without a jury): the
    #: orders the estimate lists them in. The stages hold their settings (by name), so
    #: ``plan.json`` leaves these out
    callers: tuple[str, ...] = ()
    jury: tuple[str, ...] = ()
    #: the run's resolved spec as plain data, every default written out: what ``run.json``
    #: records for the report (which compares runs by it) and the record's spec.yaml
    settings: Mapping[str, Any] = field(default_factory=dict)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


@dataclass(frozen=True)
class Plan:
    """Every run a spec declares, sharing identical stages by fingerprint.

    ``base_dir`` is the spec's folder: the relative paths in stage settings (templates,
    local datasets and models) are relative to it.
    """

    spec_file: str
    spec_name: str
    fairspec_version: str
    base_dir: str
    output_dir: str
    call_store: str
    environment: Mapping[str, Any]
    runs: tuple[RunPlan, ...]
    notes: tuple[str, ...] = field(default=())
    #: the spec and the bases it extends, nearest first: {"file", "sha256"}, each file
    #: relative to the spec's folder (``builtin:`` for a packaged one)
    spec_files: tuple[Mapping[str, str], ...] = field(default=())
    #: the spec's ``budget.max_usd``: the default limit of teacher spend for every run
    max_usd: float | None = None

    def run(self, name: str) -> RunPlan:
        for run in self.runs:
            if run.name == name or run.variant == name:
                return run
        raise KeyError(name)

    def shared_stages(self) -> dict[str, list[str]]:
        """fingerprint -> the runs whose stage has it (a shared stage runs once)."""
        owners: dict[str, list[str]] = {}
        for run in self.runs:
            for stage in run.stages:
                owners.setdefault(stage.fingerprint, []).append(run.name)
        return owners

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["max_usd"]
        for run in data["runs"]:
            del run["callers"], run["jury"], run["settings"]
            for stage in run["stages"]:
                stage["inputs"] = [f"{i['stage']}/{i['artifact']}" for i in stage["inputs"]]
                stage["outputs"] = [{"name": o["name"], "required": o["required"]}
                                    for o in stage["outputs"]]
                stage["amends"] = [f"{i['stage']}/{i['artifact']}" for i in stage["amends"]]
        return data
