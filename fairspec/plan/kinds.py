"""The stage kinds' contracts: which artifacts each kind reads and writes.

This is the one table the compiler wires a run from: an instance of a kind reads
``reads`` (a producing kind and one of its declared outputs, bound to that kind's
instance in the same run) and writes ``writes``; its settings are of the kind's
``settings`` type (:mod:`fairspec.plan.stage_settings`), which the compiler checks them
against and the stage reads them through; its ``parts`` and ``place`` say how the compiler
makes it in each round (:mod:`fairspec.plan.stage_parts`). The implementations are
registered by the same names in :mod:`fairspec.stages`; a test checks the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fairspec.errors import PlanError
from fairspec.plan.graph import Output, RunPlan, Stage
from fairspec.plan.stage_facts import RunFacts
from fairspec.plan.stage_parts import (
    Parts,
    Placement,
    build_parts,
    evaluate_parts,
    exam_parts,
    place_build,
    place_evaluate,
    place_exam,
    place_review,
    place_teach,
    place_train,
    review_parts,
    teach_parts,
    train_parts,
)
from fairspec.plan.stage_settings import (
    BuildSettings,
    EvaluateSettings,
    ExamSettings,
    ReportSettings,
    ReviewSettings,
    Settings,
    TeacherSettings,
    TeachSettings,
    TrainSettings,
)


@dataclass(frozen=True)
class StageKind:
    name: str
    #: the type of its settings (a frozen dataclass the compiler builds them through)
    settings: type[Settings]
    #: its identity and settings from a run's facts, and its placement in round k (what it
    #: follows there and in round k-1); a kind without them is in no round (the report,
    #: which the compiler adds after the last round)
    parts: Callable[[RunFacts], Parts] | None
    place: Callable[[int, Any, Parts], Placement] | None
    reads: tuple[tuple[str, str], ...]
    writes: tuple[Output, ...]
    #: files inside what it reads that it rewrites, (producing kind, path in its folder):
    #: each lies inside one of ``reads``
    amends: tuple[tuple[str, str], ...] = ()
    #: its outputs that name the teacher calls it used (rows with a ``key``): a kind with
    #: any is a teacher stage (keys checked before it runs, its calls in the record)
    call_files: tuple[str, ...] = ()
    #: the module whose ``run(ctx)`` runs it (default ``fairspec.stages.<name>``), imported
    #: only when a run needs it
    module: str = ""

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", f"fairspec.stages.{self.name}")


def _out(*names: str) -> tuple[Output, ...]:
    """Outputs by name; a trailing ``?`` marks one the stage writes only in some cases."""
    return tuple(Output(n.rstrip("?"), required=not n.endswith("?")) for n in names)


STAGE_KINDS: dict[str, StageKind] = {kind.name: kind for kind in (
    StageKind("exam", ExamSettings, exam_parts, place_exam,
              reads=(), writes=_out("exam.jsonl", "mistakes.jsonl", "stats.json")),
    StageKind("teach", TeachSettings, teach_parts, place_teach,
              reads=(("exam", "mistakes.jsonl"),),
              writes=_out("rationales.jsonl", "feedback.jsonl", "stats.json", "batches.json?"),
              call_files=("rationales.jsonl", "feedback.jsonl")),
    StageKind("review", ReviewSettings, review_parts, place_review,
              reads=(("exam", "mistakes.jsonl"), ("teach", "rationales.jsonl")),
              writes=_out("reviews.jsonl", "accepted.jsonl", "stats.json", "batches.json?"),
              call_files=("reviews.jsonl",)),
    StageKind("build", BuildSettings, build_parts, place_build,
              reads=(("exam", "mistakes.jsonl"), ("teach", "feedback.jsonl"),
                     ("review", "accepted.jsonl")),
              writes=_out("dataset/", "preview.jsonl", "stats.json", "overlaps.jsonl?")),
    StageKind("train", TrainSettings, train_parts, place_train,
              reads=(("build", "dataset/"), ("build", "stats.json")),
              writes=_out("train_args.json", "accelerate_config.yaml?", "model/?",
                          "trainer_state.json?", "stats.json")),
    StageKind("evaluate", EvaluateSettings, evaluate_parts, place_evaluate,
              reads=(("train", "model/"),),
              writes=_out("predictions-base.jsonl?", "predictions-tuned.jsonl?", "base.jsonl?",
                          "metrics.json"),
              # the tuned model's card gets the accuracy before and after
              amends=(("train", "model/README.md"),)),
    StageKind("report", ReportSettings, None, None,
              reads=(("exam", "stats.json"), ("exam", "mistakes.jsonl"),
                     ("teach", "stats.json"), ("teach", "rationales.jsonl"),
                     ("teach", "feedback.jsonl"), ("review", "stats.json"),
                     ("review", "reviews.jsonl"), ("review", "accepted.jsonl"),
                     ("build", "stats.json"), ("train", "stats.json"),
                     ("evaluate", "metrics.json")),
              writes=_out("report.md", "report.html", "*.png?")),
)}

S = TypeVar("S", bound=Settings)


def settings_of(stage: Stage, cls: type[S]) -> S:
    """A compiled stage's settings as its kind's type, read by attribute; ``cls`` names the
    type the reader expects, so a stage of another kind is a :class:`PlanError` here."""
    typed = STAGE_KINDS[stage.kind].settings
    if not issubclass(typed, cls):
        raise PlanError(f"stage {stage.name} holds {typed.__name__}, not {cls.__name__}")
    return typed.from_mapping(stage.settings)


def stage_teachers(stage: Stage) -> tuple[TeacherSettings, ...]:
    """The teachers a teach or review stage calls, in its order (none for another kind, or
    for a review that is off)."""
    if stage.kind not in ("teach", "review"):
        return ()
    typed = settings_of(stage, TeachSettings if stage.kind == "teach" else ReviewSettings)
    return typed.teachers or ()


def run_teachers(run: RunPlan) -> list[TeacherSettings]:
    """Every teacher the run's teach and review stages call, stage by stage."""
    return [teacher for stage in run.stages for teacher in stage_teachers(stage)]


def round_kinds() -> list[StageKind]:
    """The kinds of each round, in pipeline order: those the compiler places in a round."""
    return [kind for kind in STAGE_KINDS.values() if kind.parts is not None and kind.place is not None]


#: The stage kinds in pipeline order (a run's rounds repeat all but the report).
STAGE_NAMES: tuple[str, ...] = tuple(STAGE_KINDS)
#: The kinds that call teachers, and the outputs that name their calls.
CALL_FILES: dict[str, tuple[str, ...]] = {k.name: k.call_files for k in STAGE_KINDS.values()
                                          if k.call_files}

def stage_name(kind: str, round_no: int = 1) -> str:
    """The stage's name and folder in its run: round 1's are the kinds' names (``exam``),
    a later round's sit in the round's folder (``round-2/exam``)."""
    return kind if round_no == 1 else f"round-{round_no}/{kind}"


def round_of(name: str) -> int:
    """The round a stage name belongs to (``round-2/exam`` -> 2, ``exam`` -> 1)."""
    head, _, rest = name.partition("/")
    return int(head.removeprefix("round-")) if rest and head.startswith("round-") else 1
