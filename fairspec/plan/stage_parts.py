"""Each stage kind's identity (what decides its outputs: its fingerprint's content) and
settings (what it reads when it runs), built from a run's :class:`RunFacts` (``*_parts``),
and its placement in each round (``place_*``: what depends on the round, such as a later
exam's ``covers``, ``accumulate``, ``start_from``, and the stages it follows); each kind's
entry in :data:`fairspec.plan.kinds.STAGE_KINDS` names its two. The compiler only chains
the fingerprints.

What stays out of an identity stays out on purpose, and each function says why: settings
that change how fast or where a stage runs (batch sizes, devices, vLLM's memory, concurrency,
trackers, checkpoints), never what it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fairspec.hashing import fingerprint
from fairspec.plan.hardware import TrainingLayout, accelerate_config, exam_replicas, vllm_settings
from fairspec.plan.recorded_inputs import exam_recorded
from fairspec.plan.stage_facts import RunFacts, as_reviewer
from fairspec.tasks.contamination import SHARED_LIMIT

#: What a stage of round k >= 2 reads from round k-1 besides its kind's own inputs: the
#: student round k-1 tuned (its model, or where its training started when it trained
#: nothing), the questions round k-1's exam got wrong, the examples built so far.
ROUND_READS: dict[str, tuple[tuple[str, str], ...]] = {
    "student": (("train", "model/"), ("train", "train_args.json")),
    "mistakes": (("exam", "mistakes.jsonl"),),
    "examples": (("build", "dataset/"),),
}


@dataclass(frozen=True)
class Parts:
    """A stage's ``identity`` and its ``settings`` (which hold the identity's keys too)."""

    identity: dict[str, Any]
    settings: dict[str, Any]
    implementation: str | None = None
    #: the first round's variant where it differs (a recorded exam), else None
    first: Parts | None = None


def _engine_settings(facts: RunFacts, engine: str) -> dict[str, Any]:
    hw = facts.spec.student.hardware
    return {"vllm": vllm_settings(facts.spec, facts.env) if engine == "vllm" else None,
            "replicas": exam_replicas(hw, engine)}


def exam_parts(facts: RunFacts) -> Parts:
    """The exam of rounds >= 2 (the student answering), with the first round's in ``first``:
    the same unless its answers are recorded (then its engine is ``recorded``, its identity
    names the files and its settings say how to read them)."""
    spec = facts.spec
    exam = spec.student.exam
    identity = {
        "model": spec.student.model, "engine": facts.exam_engine, "dtype": facts.dtype,
        "sampling": facts.sampling, "chat_template": exam.chat_template, "seed": spec.seed,
        "dataset": facts.split(spec.task.dataset.train_split),
        "limit": spec.task.dataset.limit.train, "fields": facts.fields, "answer": facts.answer(),
        "template": facts.templates["prompts.exam"],
    }
    settings = {"engine_reason": facts.engine_reason, "device": facts.device,
                "batch_size": exam.batch_size, **_engine_settings(facts, facts.exam_engine)}
    first_identity = dict(identity)
    recorded = exam_recorded(spec, facts.base_dir)
    if recorded is not None:  # the answers come from a file: what that file is
        first_identity["recorded"] = recorded[0]
    first = Parts(first_identity, {**first_identity, **settings,
                                   **({"recorded": recorded[1]} if recorded is not None else {})},
                  implementation="recorded" if recorded is not None else None)
    # later rounds' exams are the student's own (a recorded first exam's engine resolved again)
    later_identity = {**identity, "engine": facts.engine}
    later_settings = {**settings, **_engine_settings(facts, facts.engine)}
    return Parts(later_identity, later_settings, first=first)


def teach_parts(facts: RunFacts) -> Parts:
    """The committee (in name order in the identity; in spec order in the settings, which
    also hold how each is reached, paced and priced: never part of a call's key)."""
    spec = facts.spec
    identity = {
        "teachers": [facts.teacher_identity(t) for t in sorted(spec.teachers, key=lambda t: t.name)],
        "fields": facts.fields, "answer": facts.answer(),
        "templates": {r: facts.templates[f"prompts.{r}"] for r in ("rationale", "feedback")},
    }
    return Parts(identity, {**identity,
                            "teachers": [facts.teacher_settings(t) for t in spec.teachers]})


def review_parts(facts: RunFacts) -> Parts:
    """The review rule and its reviewers (``review.jury``, or the teachers). Scoring, early
    exit and the gold check enter the identity only when they are not the defaults, so runs
    that keep the defaults keep their fingerprints."""
    spec, review = facts.spec, facts.spec.review
    reviewers = sorted(spec.reviewers(), key=lambda t: t.name)
    identity: dict[str, Any] = {"enabled": review.enabled}
    scoring = {"method": review.scoring, "fallback": review.scoring_fallback}
    if review.enabled:
        identity.update(
            policy=review.model_dump(exclude={"enabled", "scoring", "scoring_fallback",
                                              "early_exit", "gold_check", "jury"}),
            reviewers=[as_reviewer(facts.teacher_identity(t), review) for t in reviewers],
            template=facts.templates["prompts.review"], fields=facts.fields)
        if review.scoring != "text":  # with logprobs the calls also ask for the distribution
            identity["scoring"] = scoring
        if not review.early_exit:  # more reviews asked
            identity["early_exit"] = False
    if review.gold_check == "require":  # drops rationales; report and off only record
        identity["gold_check"] = "require"
    # the answer settings enter through the teach stage's fingerprint, which this one follows
    settings = {**identity, "early_exit": review.early_exit, "gold_check": review.gold_check,
                "answer": facts.answer()}
    if review.enabled:  # the committee that reviews, in the fingerprint's (name) order
        settings["teachers"] = [as_reviewer(facts.teacher_settings(t), review) for t in reviewers]
        settings["scoring"] = scoring
    return Parts(identity, settings)


def build_parts(facts: RunFacts) -> Parts:
    """The training set's recipe. ``task.decontaminate`` reads the evaluation split as the
    evaluate stage does; only ``drop`` changes the set, so only ``drop`` is identity."""
    spec = facts.spec
    identity = {
        "selection": spec.training.selection, "seed": spec.seed, "fields": facts.fields,
        "templates": {r: facts.templates[f"training.templates.{r}"] for r in ("rationale", "feedback")},
    }
    decontaminate: dict[str, Any] = {"mode": spec.task.decontaminate}
    if spec.task.decontaminate != "off":
        decontaminate.update(n=spec.task.decontaminate_ngram, shared_limit=SHARED_LIMIT,
                             dataset=facts.split(spec.evaluation.split),
                             limit=spec.task.dataset.limit.test, fields=facts.fields,
                             answer=facts.answer())
    if spec.task.decontaminate == "drop":
        identity["decontaminate"] = {key: decontaminate[key] for key in (
            "mode", "n", "shared_limit", "dataset", "limit")}
    return Parts(identity, {**identity, "card": facts.card, "decontaminate": decontaminate})


def train_parts(facts: RunFacts) -> Parts:
    """The training's hyperparameters. Out of the identity: where and how it is laid out
    (device, strategy, the batch layout), trackers, checkpointing and the attention kernel
    (the same math up to numerics); ``precision`` only for half-precision training."""
    spec, training = facts.spec, facts.spec.training
    hw = spec.student.hardware
    layout = TrainingLayout.of(spec, facts.env)
    identity = {
        "model": spec.student.model, "dtype": facts.dtype, "seed": facts.train_seed,
        "world_size": layout.world_size,
        **training.model_dump(exclude={"templates", "selection", "report_to", "precision",
                                       "save_steps", "keep_checkpoints", "attn_implementation"}),
        **({"precision": training.precision} if facts.dtype != "fp32" else {}),
    }
    settings = {"tracking": facts.tracking, "card": facts.card, "device": facts.device,
                "strategy": hw.strategy, "gpus": hw.gpus, "layout": layout.to_dict(),
                "accelerate_config": accelerate_config(spec, facts.env),
                "precision": training.precision, "save_steps": training.save_steps,
                "keep_checkpoints": training.keep_checkpoints,
                "attn_implementation": training.attn_implementation}
    return Parts(identity, {**identity, **settings})


def evaluate_parts(facts: RunFacts) -> Parts:
    """The evaluation of the base and the tuned student on the test split. The base's
    answers are the same for every variant (and, decoded greedily, every seed): cached under
    ``base_fingerprint`` (sample s > 0 beside sample 0); ``samples`` enters the identity
    only past 1."""
    spec, evaluation = facts.spec, facts.spec.evaluation
    base = {
        "model": spec.student.model, "engine": facts.engine, "dtype": facts.dtype,
        "sampling": dict(facts.sampling, do_sample=evaluation.decoding == "sample"),
        "seed": facts.train_seed, "chat_template": spec.training.chat_template,
        "dataset": facts.split(evaluation.split), "limit": spec.task.dataset.limit.test,
        "fields": facts.fields, "answer": facts.answer(),
        "template": facts.templates["training.templates.rationale"],
    }
    identity = {**base, "base": evaluation.base}
    if evaluation.samples != 1:
        identity["samples"] = evaluation.samples
    # greedy answers do not depend on the seed: runs that differ only in it (seeds: [..])
    # share the base's cached answers
    cached_as = base if evaluation.decoding == "sample" else {k: v for k, v in base.items() if k != "seed"}
    settings = {**identity, "device": facts.device, "batch_size": spec.student.exam.batch_size,
                **_engine_settings(facts, facts.engine),
                "base_fingerprint": fingerprint("evaluate-base", cached_as), "card": facts.card,
                "samples": evaluation.samples}
    return Parts(identity, settings)


@dataclass(frozen=True)
class Placement:
    """A stage in round k: its identity and settings there, the kinds of the same round
    (``after``) and of round k-1 (``previous``) its fingerprint follows, in that order, and
    what it reads from round k-1 besides its kind's own inputs."""

    identity: dict[str, Any]
    settings: dict[str, Any]
    after: tuple[str, ...] = ()
    previous: tuple[str, ...] = ()
    reads_previous: tuple[tuple[str, str], ...] = ()
    implementation: str | None = None


def place_exam(k: int, rounds: Any, parts: Parts) -> Placement:
    """Round 1's exam is the base student's (or recorded); round k's is round k-1's student's,
    on every question or on round k-1's mistakes (``rounds.exam``)."""
    if k == 1:
        first = parts.first or parts
        return Placement(first.identity, first.settings, implementation=first.implementation)
    again = rounds.exam == "mistakes"
    identity = {**parts.identity, "covers": rounds.exam}
    return Placement(identity, {**identity, **parts.settings},
                     previous=("train", *(("exam",) if again else ())),
                     reads_previous=ROUND_READS["student"] + (ROUND_READS["mistakes"] if again else ()))


def place_teach(k: int, rounds: Any, parts: Parts) -> Placement:
    """``rounds.fresh_rationales``: a new, paid rationale for a question asked before."""
    identity = dict(parts.identity)
    if rounds.fresh_rationales and k > 1:
        identity["rationale_sample"] = k - 1
    return Placement(identity, {**parts.settings, **identity,
                                "teachers": parts.settings["teachers"]}, after=("exam",))


def place_review(k: int, rounds: Any, parts: Parts) -> Placement:
    return Placement(parts.identity, parts.settings, after=("teach",))


def place_build(k: int, rounds: Any, parts: Parts) -> Placement:
    """``rounds.data: accumulate``: round k builds on round k-1's examples."""
    accumulate = k > 1 and rounds.data == "accumulate"
    extra = {"accumulate": True} if accumulate else {}
    return Placement({**parts.identity, **extra}, {**parts.settings, **extra}, after=("review",),
                     previous=("build",) if accumulate else (),
                     reads_previous=ROUND_READS["examples"] if accumulate else ())


def place_train(k: int, rounds: Any, parts: Parts) -> Placement:
    """``rounds.start_from: previous``: round k trains on from round k-1's student."""
    from_previous = k > 1 and rounds.start_from == "previous"
    extra = {"start_from": "previous"} if from_previous else {}
    return Placement({**parts.identity, **extra}, {**parts.settings, **extra}, after=("build",),
                     previous=("train",) if from_previous else (),
                     reads_previous=ROUND_READS["student"] if from_previous else ())


def place_evaluate(k: int, rounds: Any, parts: Parts) -> Placement:
    return Placement(parts.identity, parts.settings, after=("train",))
