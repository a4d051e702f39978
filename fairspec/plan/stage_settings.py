"""Each stage kind's settings as a frozen dataclass: what the compiler puts into a stage and
the stage reads, by attribute.

The machinery (strict reading, writing back, the compiler's check) is in
:mod:`fairspec.plan.settings_base`. A type's ``to_mapping`` is exactly the mapping the plan
holds (``plan --json``): the same keys, in the same order, so the plan and its fingerprints do not change
with the types; the compiler checks every stage's settings by a round trip through their
kind's type (:func:`checked_settings`). :meth:`~StageSettings.from_mapping` is strict: a key
the type does not know, or a missing key it needs, is a :class:`~fairspec.errors.PlanError`;
a key a plan compiled by an earlier fairspec lacks takes the value that plan meant (the
field's default, or :meth:`~StageSettings._upgrade`).

Blocks that only a lower layer reads (a teacher's generation settings, vLLM's arguments,
the accelerate config, the cards' facts) stay mappings: they are data handed on whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fairspec.plan.hardware import TrainingLayout, exam_engine_warning
from fairspec.plan.settings_base import (
    Settings,
    by_key,
    checked_settings,
    each,
    moved,
    nested,
    omitted,
    part,
)

#: The defaults of how reviews are scored (a plan compiled before ``review.scoring``).
TEXT_SCORING = "text"


# --- blocks several kinds share ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DatasetRef(Settings):
    """A split's identity: on the hub (``hf``, ``config``, ``revision``) or a local file
    (``path``, ``file``, ``sha256``)."""

    split: str
    hf: str | None = None
    config: str | None = None
    revision: str | None = None
    path: str | None = None
    file: str | None = None
    sha256: str | None = None

    def _order(self) -> list[str]:
        if self.hf is not None:
            return ["hf", "config", "revision", "split"]
        return ["path", "file", "split", "sha256"]


@dataclass(frozen=True, kw_only=True)
class AnswerSettings(Settings):
    """How an answer is read and checked (the task's extractor)."""

    task_kind: str
    extractor: str
    pattern: str | None
    tolerance: float


@dataclass(frozen=True, kw_only=True)
class SamplingSettings(Settings):
    """How the student decodes."""

    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    do_sample: bool


@dataclass(frozen=True, kw_only=True)
class TemplateRef(Settings):
    """A template the stage renders: its reference and the hash of its text."""

    ref: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class StageSettings(Settings):
    """A stage kind's settings: a stage of round k >= 2 also holds its ``round``."""

    round: int = omitted(1)

    def _order(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "round"] + ["round"]


# --- the student answering: exam and evaluate -------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RecordedExam(Settings):
    """What a recorded exam opens: the file and how its rows and columns are read."""

    path: str
    answer: str
    prediction: str | None
    only_mistakes: bool
    match: str
    question_column: str | None
    index_column: str | None


@dataclass(frozen=True, kw_only=True)
class Replicas(Settings):
    """How many engines answer side by side, and the GPUs of each."""

    replicas: int
    per_replica: int

    @classmethod
    def of_vllm(cls, vllm: Mapping[str, Any] | None) -> Replicas:
        """The layout a plan compiled before hf replicas meant: vLLM's (else one engine)."""
        vllm = vllm or {}
        return cls(replicas=vllm.get("data_parallel_size", 1),
                   per_replica=vllm.get("tensor_parallel_size", 1))


@dataclass(frozen=True, kw_only=True)
class AnsweringSettings(StageSettings):
    """What the exam and the evaluation share: the student, its engine, the split."""

    model: str
    engine: str
    dtype: str
    sampling: SamplingSettings = nested(SamplingSettings)
    chat_template: bool
    seed: int
    dataset: DatasetRef = nested(DatasetRef)
    limit: int | None
    fields: Mapping[str, str]
    answer: AnswerSettings = nested(AnswerSettings)
    template: TemplateRef = nested(TemplateRef)
    device: str
    batch_size: int
    vllm: Mapping[str, Any] | None
    #: a plan compiled before hf replicas has none (:meth:`engines` reads vLLM's layout)
    replicas: Replicas | None = nested(Replicas, default=None, metadata={"omit": None})

    def engines(self) -> Replicas:
        """How many engines answer side by side, and on how many GPUs each."""
        return self.replicas if self.replicas is not None else Replicas.of_vllm(self.vllm)


_ANSWERING_HEAD = ["model", "engine", "dtype", "sampling", "chat_template", "seed", "dataset",
                   "limit", "fields", "answer", "template"]
_ENGINE = ["device", "batch_size", "vllm", "replicas"]


@dataclass(frozen=True, kw_only=True)
class ExamSettings(AnsweringSettings):
    """The exam: the student answering the train split (round 1's may be recorded)."""

    recorded: RecordedExam | None = nested(RecordedExam, default=None, metadata={"omit": None})
    #: round k >= 2: the questions it covers (all, or round k-1's mistakes)
    covers: str | None = omitted(None)
    engine_reason: str

    def engine_warning(self) -> str | None:
        """The loud line for an ``engine: auto`` that fell back to hf on GPUs (None otherwise)."""
        return exam_engine_warning(self.engine, self.engine_reason, self.engines().replicas)

    def _order(self) -> list[str]:
        return [*_ANSWERING_HEAD, "recorded", "covers", "engine_reason", *_ENGINE, "round"]


@dataclass(frozen=True, kw_only=True)
class EvaluateSettings(AnsweringSettings):
    """The evaluation of the base and the tuned student on the test split."""

    base: bool
    #: answers a question this many times; a plan compiled before samples: once
    samples: int = 1
    base_fingerprint: str
    #: the cards' facts; a plan compiled before the cards has none
    card: Mapping[str, Any] | None = omitted(None)

    def _order(self) -> list[str]:
        head = moved(_ANSWERING_HEAD, "chat_template", "seed")
        order = [*head, "base", *_ENGINE, "base_fingerprint", "card", "samples", "round"]
        return moved(order, "samples", "base") if self.samples != 1 else order


# --- the teacher stages -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TeacherSettings(Settings):
    """A teacher as a teacher stage reaches it: its identity (``name`` .. ``generation``,
    which its calls' keys hold), where it runs or what it reads, and how it is paced and
    priced. Keys are only ever named (``api_key_env``), never held."""

    name: str
    provider: str
    model: str
    base_url: str | None
    generation: Mapping[str, Any]
    recorded: Mapping[str, Any] | None = omitted(None)
    device: str | None = omitted(None)
    dtype: str | None = omitted(None)
    api_key_env: str | None
    vertex: Mapping[str, Any] | None
    replay_file: str | None
    concurrency: int
    rpm: int | None
    tpm: int | None
    timeout_s: float
    max_retries: int = 8
    price: Mapping[str, float] | None = None
    online_price: Mapping[str, float] | None = None
    batch: bool = False


@dataclass(frozen=True, kw_only=True)
class TeachSettings(StageSettings):
    """The teach stage: the committee, in the spec's order, and the prompts it is asked."""

    teachers: tuple[TeacherSettings, ...] = each(TeacherSettings)
    fields: Mapping[str, str]
    answer: AnswerSettings = nested(AnswerSettings)
    templates: Mapping[str, TemplateRef] = by_key(TemplateRef)
    #: a later round's rationales with ``rounds.fresh_rationales``: their sample index
    rationale_sample: int = omitted(0)


@dataclass(frozen=True, kw_only=True)
class PolicySettings(Settings):
    """The review rule (``review.*`` but the keys that say how reviews are asked)."""

    score_range: tuple[int, int]
    threshold: float
    accept: str
    aggregate: str
    exclude_self: bool
    min_valid_scores: int


@dataclass(frozen=True, kw_only=True)
class ReviewScoring(Settings):
    """How a review's score is read: from its text, or from log-probabilities (``method``)
    with the text or nothing where none came back (``fallback``). The defaults are how a
    plan compiled before ``review.scoring`` scored."""

    method: str = TEXT_SCORING
    fallback: str = TEXT_SCORING

    @classmethod
    def of(cls, block: Mapping[str, Any] | None) -> ReviewScoring:
        """The scoring a block says (None: one from before the key, the defaults)."""
        return cls() if block is None else cls.from_mapping(block)

    @property
    def logprobs(self) -> bool:
        return self.method == "logprobs"


@dataclass(frozen=True, kw_only=True)
class ReviewSettings(StageSettings):
    """The review stage: on or off, the rule, the reviewers (in name order) and the prompt.
    A plan compiled before the gold check has no ``answer`` (the check is off)."""

    enabled: bool
    policy: PolicySettings | None = nested(PolicySettings, default=None, metadata={"omit": None})
    reviewers: list[Mapping[str, Any]] | None = omitted(None)
    template: TemplateRef | None = nested(TemplateRef, default=None, metadata={"omit": None})
    fields: Mapping[str, str] | None = omitted(None)
    early_exit: bool = True
    gold_check: str = "off"
    answer: AnswerSettings | None = nested(AnswerSettings, default=None, metadata={"omit": None})
    teachers: tuple[TeacherSettings, ...] | None = each(TeacherSettings, default=None,
                                                        metadata={"omit": None})
    scoring: ReviewScoring | None = nested(ReviewScoring, default=None, metadata={"omit": None})

    @classmethod
    def _upgrade(cls, values: dict[str, Any]) -> dict[str, Any]:
        if values.get("enabled") and values.get("scoring") is None:
            values["scoring"] = ReviewScoring()
        return values

    @property
    def checks_gold(self) -> str:
        """The gold check this review runs (off without the answer settings)."""
        return self.gold_check if self.answer is not None else "off"

    def _order(self) -> list[str]:
        # the compiler's: the keys of the identity first (some only when not the defaults)
        order = ["enabled"]
        if self.enabled:
            order += ["policy", "reviewers", "template", "fields"]
            if self.scoring is not None and self.scoring.method != TEXT_SCORING:
                order.append("scoring")
            if not self.early_exit:
                order.append("early_exit")
        if self.gold_check == "require":
            order.append("gold_check")
        order += [k for k in ("early_exit", "gold_check", "answer", "teachers", "scoring", "round")
                  if k not in order]
        return order


# --- build, train, report -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DecontaminateSettings(Settings):
    """``task.decontaminate``: off, or the evaluation split it checks against and how."""

    mode: str
    n: int | None = None
    shared_limit: int | None = None
    dataset: DatasetRef | None = nested(DatasetRef, default=None)
    limit: int | None = None
    fields: Mapping[str, str] | None = None
    answer: AnswerSettings | None = nested(AnswerSettings, default=None)

    def _order(self) -> list[str]:
        return ["mode"] if self.mode == "off" else super()._order()


@dataclass(frozen=True, kw_only=True)
class BuildSettings(StageSettings):
    """The build stage: the training set's recipe."""

    selection: str
    seed: int
    fields: Mapping[str, str]
    templates: Mapping[str, TemplateRef] = by_key(TemplateRef)
    #: the cards' facts; a plan compiled before the cards has none
    card: Mapping[str, Any] | None = omitted(None)
    #: a plan compiled before ``task.decontaminate``: off
    decontaminate: DecontaminateSettings = nested(
        DecontaminateSettings, default=DecontaminateSettings(mode="off"))
    #: round k >= 2 with ``rounds.data: accumulate``
    accumulate: bool = omitted(False)

    def _order(self) -> list[str]:
        order = super()._order()
        return moved(order, "decontaminate", "templates") if self.decontaminate.mode == "drop" \
            else order


@dataclass(frozen=True, kw_only=True)
class Tracking(Settings):
    """Where the Trainer's losses and fairspec's metrics are tracked."""

    report_to: list[str]
    experiment: str
    run: str


#: The training's hyperparameters (``training.*``), in the plan's order.
TRAINING_KEYS = ("alpha", "epochs", "batch_size", "learning_rate", "warmup_ratio", "max_seq_length",
                 "optimizer", "gradient_accumulation_steps", "max_grad_norm", "weight_decay", "lora",
                 "gradient_checkpointing", "chat_template")


@dataclass(frozen=True, kw_only=True)
class TrainSettings(StageSettings):
    """The train stage: the hyperparameters, and where and how it runs. The keys a plan
    compiled before them lacks take the defaults of that time."""

    model: str
    dtype: str
    seed: int
    world_size: int
    alpha: float
    epochs: float
    batch_size: int
    learning_rate: float
    warmup_ratio: float
    max_seq_length: int
    optimizer: str
    gradient_accumulation_steps: int
    max_grad_norm: float | None
    weight_decay: float
    lora: Mapping[str, Any] | None
    gradient_checkpointing: bool
    chat_template: bool
    precision: str = "mixed"
    tracking: Tracking | None = nested(Tracking, default=None, metadata={"omit": None})
    card: Mapping[str, Any] | None = omitted(None)
    device: str
    strategy: str
    gpus: int | None
    layout: TrainingLayout = part(TrainingLayout.from_settings, TrainingLayout.to_dict)
    accelerate_config: Mapping[str, Any] | None
    save_steps: int | None = None
    keep_checkpoints: str = "none"
    attn_implementation: str = "auto"
    #: round k >= 2 with ``rounds.start_from: previous``
    start_from: str | None = omitted(None)

    def hyperparameters(self) -> dict[str, Any]:
        """``training.*`` as the plan holds them."""
        return {key: getattr(self, key) for key in TRAINING_KEYS}

    def _order(self) -> list[str]:
        order = super()._order()
        # fingerprinted (so among the identity's keys) for half precision only
        return moved(order, "precision", "chat_template") if self.dtype != "fp32" \
            else moved(order, "precision", "accelerate_config")


@dataclass(frozen=True, kw_only=True)
class ReportSettings(Settings):
    """The report stage: how many rounds the run has, and its trackers."""

    rounds: int = 1
    tracking: Tracking | None = nested(Tracking, default=None, metadata={"omit": None})


__all__ = ["AnswerSettings", "AnsweringSettings", "BuildSettings", "DatasetRef",
           "DecontaminateSettings", "EvaluateSettings", "ExamSettings", "PolicySettings",
           "RecordedExam", "Replicas", "ReportSettings", "ReviewScoring", "ReviewSettings",
           "SamplingSettings", "Settings", "StageSettings", "TeachSettings", "TeacherSettings",
           "TemplateRef", "Tracking", "TrainSettings", "checked_settings"]
