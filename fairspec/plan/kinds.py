"""The stage kinds' contracts: which artifacts each kind reads and writes.

This is the one table the compiler wires a run from: an instance of a kind reads
``reads`` (a producing kind and one of its declared outputs, bound to that kind's
instance in the same run) and writes ``writes``. The implementations are registered
by the same names in :mod:`fairspec.stages`; a test checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from fairspec.plan.graph import Output


@dataclass(frozen=True)
class StageKind:
    name: str
    does: str
    reads: tuple[tuple[str, str], ...]
    writes: tuple[Output, ...]


def _out(*names: str) -> tuple[Output, ...]:
    """Outputs by name; a trailing ``?`` marks one the stage writes only in some cases."""
    return tuple(Output(n.rstrip("?"), required=not n.endswith("?")) for n in names)


STAGE_KINDS: dict[str, StageKind] = {kind.name: kind for kind in (
    StageKind("exam", "the student answers the train split (eq. 1); its wrong answers are D_mistake",
              reads=(), writes=_out("exam.jsonl", "mistakes.jsonl", "stats.json")),
    StageKind("teach", "each teacher writes a rationale and feedback per mistake (eq. 2-3)",
              reads=(("exam", "mistakes.jsonl"),),
              writes=_out("rationales.jsonl", "feedback.jsonl", "stats.json")),
    StageKind("review", "the other teachers score each rationale; the policy keeps it or not (eq. 4)",
              reads=(("exam", "mistakes.jsonl"), ("teach", "rationales.jsonl")),
              writes=_out("reviews.jsonl", "accepted.jsonl", "stats.json")),
    StageKind("build", "the instruction-tuning set from accepted rationales and feedback (4.3)",
              reads=(("exam", "mistakes.jsonl"), ("teach", "feedback.jsonl"),
                     ("review", "accepted.jsonl")),
              writes=_out("dataset/", "preview.jsonl", "stats.json")),
    StageKind("train", "joint tuning, L = alpha L_fb + (1 - alpha) L_rt (eq. 5-7)",
              reads=(("build", "dataset/"), ("build", "stats.json")),
              writes=_out("train_args.json", "accelerate_config.yaml?", "model/?",
                          "trainer_state.json?", "stats.json")),
    StageKind("evaluate", "zero-shot accuracy of the base and the tuned student on the test split",
              reads=(("train", "model/"),),
              writes=_out("predictions-base.jsonl?", "predictions-tuned.jsonl?", "base.jsonl?",
                          "metrics.json")),
    StageKind("report", "tables and plots of the run (and its variants, for the main run)",
              reads=(("exam", "stats.json"), ("teach", "stats.json"), ("review", "stats.json"),
                     ("review", "reviews.jsonl"), ("build", "stats.json"), ("train", "stats.json"),
                     ("evaluate", "metrics.json")),
              writes=_out("report.md", "report.html", "*.png?")),
)}
