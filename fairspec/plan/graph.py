"""The Plan: what ``fairspec run`` will do, as frozen data (stages, runs, hardware mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

STAGE_NAMES = ("exam", "teach", "review", "build", "train", "evaluate", "report")


@dataclass(frozen=True)
class Stage:
    """One step of a run: its settings, what it reads and writes, and its fingerprint.

    ``identity`` is exactly what the fingerprint covers; ``settings`` also carries what
    does not change outputs (batch sizes, concurrency), which the executor needs.
    """

    name: str
    fingerprint: str
    settings: Mapping[str, Any]
    identity: Mapping[str, Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.fingerprint[:12]


@dataclass(frozen=True)
class RunPlan:
    """One run folder: the spec itself (variant None) or one of its variants/sweep points."""

    name: str
    variant: str | None
    origin: str  # "spec", "variant" or "sweep"
    overrides: Mapping[str, Any]
    run_dir: str
    stages: tuple[Stage, ...]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


@dataclass(frozen=True)
class Plan:
    """Every run a spec declares, sharing identical stages by fingerprint."""

    spec_file: str
    spec_name: str
    fairspec_version: str
    output_dir: str
    call_store: str
    environment: Mapping[str, Any]
    runs: tuple[RunPlan, ...]
    notes: tuple[str, ...] = field(default=())

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
        return asdict(self)
