"""What a stage is handed: its compiled stage, its folder, its declared inputs, shared services.

A stage opens an input only through ``ctx.input(stage, artifact)`` and names an output
only through ``ctx.output(artifact)``; both must be declared by the plan
(:mod:`fairspec.plan.kinds`), else :class:`~fairspec.errors.StageContractError`.
``ctx.finish`` writes the manifest last, listing exactly the declared outputs the folder
holds; an undeclared entry left in the folder is an error when ``strict`` (tests set
``FAIRSPEC_STRICT_ARTIFACTS=1``), a warning otherwise. Scratch that no other stage
reads (checkpoints, partial answers) goes under ``ctx.work_dir``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fairspec.artifacts import MANIFEST, OWNER_FILE, prepare_stage_folder, write_manifest
from fairspec.errors import StageContractError
from fairspec.plan.graph import Input, RunPlan, Stage
from fairspec.plan.kinds import round_of
from fairspec.plan.stage_settings import Settings, TemplateRef
from fairspec.resources import resolve_path

if TYPE_CHECKING:  # types only: a stage imports what it uses when it runs
    from fairspec.plan.hardware import Rendezvous
    from fairspec.progress import CountProgress, TeacherProgress
    from fairspec.store import CallStore
    from fairspec.store.replay import Replay
    from fairspec.teachers.budget import Budget

log = logging.getLogger(__name__)

S = TypeVar("S", bound=Settings)

WORK_DIR = "work"
STRICT_ENV = "FAIRSPEC_STRICT_ARTIFACTS"


@dataclass
class Services:
    """What every stage of an execution shares: the call store, the budget, a replay file,
    the progress display, the spec's folder, the output folder's shared cache, and which
    training node this is (a :class:`~fairspec.plan.hardware.Rendezvous`; None: node 0
    at the default address)."""

    base_dir: Path
    cache_dir: Path
    store: CallStore | None = None
    budget: Budget | None = None
    replay: Replay | None = None
    progress: TeacherProgress | CountProgress | None = None
    rendezvous: Rendezvous | None = None


class StageContext:
    def __init__(self, stage: Stage, run: RunPlan, services: Services, *,
                 strict: bool | None = None) -> None:
        self.stage = stage
        self.run = run
        self.services = services
        self.folder = Path(run.run_dir) / stage.name
        self.strict = os.environ.get(STRICT_ENV) == "1" if strict is None else strict
        self.started = time.time()
        self._typed: Settings | None = None

    # --- what the plan compiled -------------------------------------------------------
    def settings_as(self, kind: type[S]) -> S:
        """The compiled settings as their kind's type (read once); ``kind`` names the type
        the stage expects, so a stage run with another kind's settings fails here."""
        if self._typed is None:
            self._typed = kind.from_mapping(self.stage.settings)
        if not isinstance(self._typed, kind):
            raise StageContractError(f"stage {self.stage.name} holds {type(self._typed).__name__}, "
                                     f"not {kind.__name__}")
        return self._typed

    @property
    def fingerprint(self) -> str:
        return self.stage.fingerprint

    @property
    def label(self) -> str:
        """How progress lines name the stage: its kind, with its round past the first."""
        round_no = round_of(self.stage.name)
        return self.stage.kind if round_no == 1 else f"round {round_no} {self.stage.kind}"

    def fingerprint_of(self, stage: str) -> str:
        return self.run.stage(stage).fingerprint

    # --- files ------------------------------------------------------------------------
    def prepare(self) -> bool:
        """Make the folder this fingerprint's; True when earlier partial work is kept."""
        return prepare_stage_folder(self.folder, self.fingerprint)

    def declared_input(self, stage: str, artifact: str) -> Input | None:
        """The declared input ``artifact`` of the stage named ``stage``, or else of the one
        stage of kind ``stage`` this stage reads it from (round 2's teach reads
        ``exam/mistakes.jsonl`` from ``round-2/exam``); None when none is declared."""
        named = [i for i in self.stage.inputs if i.artifact == artifact]
        exact = [i for i in named if i.stage == stage]
        by_kind = [i for i in named if self.run.stage(i.stage).kind == stage]
        if len(by_kind) > 1 and not exact:
            raise StageContractError(
                f"stage {self.stage.name} reads {artifact} from several {stage} stages "
                f"({', '.join(i.stage for i in by_kind)}): name the stage")
        return (exact or by_kind or [None])[0]

    def input(self, stage: str, artifact: str) -> Path:
        """The path of a declared input (it may not exist when its output is optional)."""
        wanted = self.declared_input(stage, artifact)
        if wanted is None:
            raise StageContractError(
                f"stage {self.stage.name} reads {stage}/{artifact}, which its plan does not "
                f"declare (declared: {', '.join(map(str, self.stage.inputs)) or 'none'})")
        return Path(self.run.run_dir) / wanted.stage / artifact.rstrip("/")

    def amend(self, stage: str, path: str) -> Path:
        """A file inside an input that this stage declares it rewrites (``amends``)."""
        found = [i for i in self.stage.amends if i.artifact == path
                 and (i.stage == stage or self.run.stage(i.stage).kind == stage)]
        if not found:
            raise StageContractError(
                f"stage {self.stage.name} rewrites {stage}/{path}, which its plan does not "
                f"declare (declared: {', '.join(map(str, self.stage.amends)) or 'none'})")
        return Path(self.run.run_dir) / found[0].stage / path

    def output(self, artifact: str) -> Path:
        """The path of a declared output of this stage."""
        if self.stage.output(artifact) is None:
            raise StageContractError(
                f"stage {self.stage.name} writes {artifact}, which its plan does not declare "
                f"(declared: {', '.join(o.name for o in self.stage.outputs)})")
        return self.folder / artifact.rstrip("/")

    @property
    def work_dir(self) -> Path:
        """Scratch of this stage (kept across a crash, read by no other stage)."""
        path = self.folder / WORK_DIR
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolve(self, ref: str) -> Path:
        """A file the spec names (``builtin:...`` or relative to the spec's folder)."""
        return resolve_path(ref, self.services.base_dir)

    def read_template(self, template: TemplateRef) -> str:
        """The source of a compiled template reference."""
        return self.resolve(template.ref).read_text(encoding="utf-8")

    def cache(self, *parts: str) -> Path:
        """A file in the output folder's cache, shared by every run of the spec."""
        path = self.services.cache_dir.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _entries(self) -> list[str]:
        skip = {MANIFEST, OWNER_FILE, WORK_DIR}
        return sorted(p.name + ("/" if p.is_dir() else "") for p in self.folder.iterdir()
                      if p.name not in skip and not p.name.startswith("."))

    def finish(self, counts: dict[str, Any], extra_inputs: dict[str, str] | None = None
               ) -> dict[str, Any]:
        """Check the folder against the declared outputs and write the manifest (last)."""
        entries, outputs = self._entries(), self.stage.outputs
        written = [e for o in outputs for e in entries if o.matches(e)]  # in declaration order
        undeclared = [e for e in entries if e not in written]
        missing = [o.name for o in outputs if o.required and not any(o.matches(e) for e in entries)]
        problems = ([f"undeclared {', '.join(undeclared)}"] if undeclared else []) + \
            ([f"missing required {', '.join(missing)}"] if missing else [])
        if problems:
            message = f"stage {self.stage.name} of {self.run.name}: {'; '.join(problems)}"
            if self.strict or missing:
                raise StageContractError(message)
            log.warning(message)
        inputs = {str(i): self.fingerprint_of(i.stage) for i in self.stage.inputs}
        inputs.update(extra_inputs or {})
        return write_manifest(self.folder, stage=self.stage.name, fingerprint=self.fingerprint,
                              inputs=inputs, outputs=written, counts=counts,
                              started=self.started)
