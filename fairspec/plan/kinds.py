"""The stage kinds' contracts: which artifacts each kind reads and writes.

This is the one table the compiler wires a run from: an instance of a kind reads
``reads`` (a producing kind and one of its declared outputs, bound to that kind's
instance in the same run) and writes ``writes``; its settings are of the kind's
``settings`` type (:mod:`fairspec.plan.stage_settings`), which the compiler checks them
against and the stage reads them through. The implementations are registered by the
same names in :mod:`fairspec.stages`; a test checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from fairspec.plan.graph import Output
from fairspec.plan.stage_settings import (
    BuildSettings,
    EvaluateSettings,
    ExamSettings,
    ReportSettings,
    ReviewSettings,
    Settings,
    TeachSettings,
    TrainSettings,
)


@dataclass(frozen=True)
class StageKind:
    name: str
    #: the type of its settings (a frozen dataclass the compiler builds them through)
    settings: type[Settings]
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
    StageKind("exam", ExamSettings, reads=(), writes=_out("exam.jsonl", "mistakes.jsonl", "stats.json")),
    StageKind("teach", TeachSettings, reads=(("exam", "mistakes.jsonl"),),
              writes=_out("rationales.jsonl", "feedback.jsonl", "stats.json", "batches.json?"),
              call_files=("rationales.jsonl", "feedback.jsonl")),
    StageKind("review", ReviewSettings, reads=(("exam", "mistakes.jsonl"), ("teach", "rationales.jsonl")),
              writes=_out("reviews.jsonl", "accepted.jsonl", "stats.json", "batches.json?"),
              call_files=("reviews.jsonl",)),
    StageKind("build", BuildSettings, reads=(("exam", "mistakes.jsonl"), ("teach", "feedback.jsonl"),
                              ("review", "accepted.jsonl")),
              writes=_out("dataset/", "preview.jsonl", "stats.json", "overlaps.jsonl?")),
    StageKind("train", TrainSettings, reads=(("build", "dataset/"), ("build", "stats.json")),
              writes=_out("train_args.json", "accelerate_config.yaml?", "model/?",
                          "trainer_state.json?", "stats.json")),
    StageKind("evaluate", EvaluateSettings, reads=(("train", "model/"),),
              writes=_out("predictions-base.jsonl?", "predictions-tuned.jsonl?", "base.jsonl?",
                          "metrics.json"),
              # the tuned model's card gets the accuracy before and after
              amends=(("train", "model/README.md"),)),
    StageKind("report", ReportSettings, reads=(("exam", "stats.json"), ("exam", "mistakes.jsonl"),
                               ("teach", "stats.json"), ("teach", "rationales.jsonl"),
                               ("teach", "feedback.jsonl"), ("review", "stats.json"),
                               ("review", "reviews.jsonl"), ("review", "accepted.jsonl"),
                               ("build", "stats.json"), ("train", "stats.json"),
                               ("evaluate", "metrics.json")),
              writes=_out("report.md", "report.html", "*.png?")),
)}

#: The stage kinds in pipeline order (a run's rounds repeat all but the report).
STAGE_NAMES: tuple[str, ...] = tuple(STAGE_KINDS)
#: The kinds that call teachers, and the outputs that name their calls.
CALL_FILES: dict[str, tuple[str, ...]] = {k.name: k.call_files for k in STAGE_KINDS.values()
                                          if k.call_files}

#: What a stage of round k >= 2 reads from round k-1 besides its kind's own inputs: the
#: student round k-1 tuned (its model, or where its training started when it trained
#: nothing), the questions round k-1's exam got wrong, the examples built so far.
ROUND_READS: dict[str, tuple[tuple[str, str], ...]] = {
    "student": (("train", "model/"), ("train", "train_args.json")),
    "mistakes": (("exam", "mistakes.jsonl"),),
    "examples": (("build", "dataset/"),),
}


def stage_name(kind: str, round_no: int = 1) -> str:
    """The stage's name and folder in its run: round 1's are the kinds' names (``exam``),
    a later round's sit in the round's folder (``round-2/exam``)."""
    return kind if round_no == 1 else f"round-{round_no}/{kind}"


def round_of(name: str) -> int:
    """The round a stage name belongs to (``round-2/exam`` -> 2, ``exam`` -> 1)."""
    head, _, rest = name.partition("/")
    return int(head.removeprefix("round-")) if rest and head.startswith("round-") else 1
