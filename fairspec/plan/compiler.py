"""Compiles a checked spec into a Plan: pure, no network, no model load.

Each run (the spec and each variant or sweep point) becomes the seven stages
exam -> teach -> review -> build -> train -> evaluate -> report; with ``rounds.count``
k > 1, rounds 2..k's six stages (``round-k/exam``, ...) come before the report. A stage's fingerprint
covers only what decides its outputs plus its inputs' fingerprints, so identical
stages of different variants share one fingerprint and run once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fairspec import __version__
from fairspec.dsl.extends import chain_files
from fairspec.dsl.loader import LoadedSpec, template_ref
from fairspec.dsl.rules import default_extractor, local_model_config
from fairspec.dsl.schema import Spec, Teacher
from fairspec.errors import PlanError
from fairspec.hashing import fingerprint, sha256_file, sha256_text
from fairspec.plan.environment import Environment
from fairspec.plan.graph import Input, Plan, RunPlan, Stage
from fairspec.plan.hardware import (
    TrainingLayout,
    accelerate_config,
    exam_replicas,
    resolve_device,
    resolve_dtype,
    resolve_engine,
    vllm_settings,
)
from fairspec.plan.kinds import ROUND_READS, STAGE_KINDS, stage_name
from fairspec.plan.recorded_inputs import exam_recorded, teacher_recorded
from fairspec.providers.families import family_for, shaped
from fairspec.providers.registry import provider_kind
from fairspec.resources import BUILTIN_MODELS, builtin_model_alias, resolve_path
from fairspec.tasks.contamination import SHARED_LIMIT
from fairspec.tasks.data import DATA_SUFFIXES
from fairspec.templates import TEMPLATE_ROLES

CALL_STORE_NAME = "calls.sqlite"


def _template(spec: Spec, base_dir: Path, role: str) -> dict[str, str]:
    ref = template_ref(spec, role)
    source = resolve_path(ref, base_dir).read_text(encoding="utf-8")
    return {"ref": ref, "sha256": sha256_text(source)}


def dataset_split(spec: Spec, base_dir: Path, split: str) -> dict[str, Any]:
    """A split's identity: hub id/config/revision, or the local file and its content hash."""
    ds = spec.task.dataset
    if ds.hf is not None:
        return {"hf": ds.hf, "config": ds.config, "revision": ds.revision, "split": split}
    local = resolve_path(ds.path or "", base_dir)
    if local.is_dir():
        local = next(local / f"{split}{s}" for s in DATA_SUFFIXES if (local / f"{split}{s}").is_file())
    return {"path": ds.path, "file": local.name, "split": split, "sha256": sha256_file(local)}


def card_facts(spec: Spec, base_dir: Path, run_name: str) -> dict[str, Any]:
    """What the model and dataset cards say of the run: names only, never a local path."""
    ds, model = spec.task.dataset, spec.student.model
    alias = builtin_model_alias(model)
    if alias is not None:
        hub = BUILTIN_MODELS[alias].hub_id if alias in BUILTIN_MODELS else None
    else:
        hub = None if local_model_config(model, base_dir) is not None else model
    return {
        "spec": spec.name, "run": run_name, "task": spec.task.kind,
        "base_model_hub": hub, "base_model_name": (hub or alias or model.rstrip("/")).split("/")[-1],
        "dataset_hf": ds.hf, "dataset_config": ds.config,
        "dataset_name": None if ds.hf else Path((ds.path or "").removeprefix("builtin:")).stem,
        "train_split": ds.train_split, "test_split": ds.test_split,
        "decoding": spec.evaluation.decoding,
    }


def teacher_generation(spec: Spec, teacher: Teacher) -> dict[str, Any]:
    """The shared generation settings with the teacher's overrides applied, in the shape
    its model's family receives (``providers.families.shaped``: a parameter its API never
    takes, an unset reasoning key or an empty ``extra_body`` is left out, so neither is in
    a call's key), with the spec's ``seed`` where the API takes one (OpenAI, Gemini, an
    OpenAI-compatible host) and for a local model."""
    settings = spec.generation.model_dump()
    if teacher.generation is not None:
        settings.update(teacher.generation.model_dump(exclude_none=True))
    family = family_for(teacher.provider, teacher.model)
    if family.seed if family is not None else provider_kind(teacher.provider).local:
        # each call sends a seed derived from this one and its key (teachers.caller)
        settings["seed"] = spec.seed
    return shaped(family, settings)


def _teacher_identity(spec: Spec, teacher: Teacher, base_dir: Path) -> dict[str, Any]:
    """A teacher as its calls' keys see it; a recorded teacher's generation settings also
    hold its files' provenance, so every recorded call names where it came from."""
    generation = teacher_generation(spec, teacher)
    recorded = teacher_recorded(spec, teacher, base_dir)
    if recorded is not None:
        generation["recorded"] = recorded[0]
    return {
        "name": teacher.name,
        "provider": teacher.provider,
        "model": teacher.model,
        "base_url": (teacher.base_url or "").rstrip("/") or None,
        "generation": generation,
    }


def _teacher_settings(spec: Spec, teacher: Teacher, env: Environment, base_dir: Path) -> dict[str, Any]:
    """What the teach stage needs per teacher; keys are only ever named, never held. A local
    (hf) teacher runs where the student does: its ``device`` and ``dtype``; a recorded one
    opens the files of ``recorded``."""
    recorded = teacher_recorded(spec, teacher, base_dir)
    local: dict[str, Any] = {"recorded": recorded[1]} if recorded is not None else {}
    if provider_kind(teacher.provider).local:
        hw = spec.student.hardware
        local = {"device": resolve_device(hw, env), "dtype": resolve_dtype(hw, env)}
    return {
        **_teacher_identity(spec, teacher, base_dir),
        **local,
        "api_key_env": teacher.api_key_env,
        "vertex": teacher.vertex.model_dump() if teacher.vertex else None,
        "replay_file": teacher.replay_file,
        "concurrency": teacher.concurrency,
        "rpm": teacher.rpm,
        "tpm": teacher.tpm,
        "timeout_s": teacher.timeout_s,
        "max_retries": teacher.max_retries,
        # what its calls are paid at (batch prices in batch mode), and the online price
        "price": _dump(teacher.paid_price()),
        "online_price": _dump(teacher.price),
        "batch": teacher.batch,
    }


def _dump(price: Any) -> dict[str, float] | None:
    return price.model_dump(exclude_none=True) if price is not None else None


def _reviewer(teacher: dict[str, Any], review: Any) -> dict[str, Any]:
    """A teacher as a reviewer: with ``scoring: logprobs`` its calls also ask for the score
    distribution (``score_logprobs`` enters their generation settings, and so their keys)."""
    if review.scoring != "logprobs":
        return teacher
    return {**teacher, "generation": {**teacher["generation"],
                                      "score_logprobs": list(review.score_range)}}


def _answer(spec: Spec) -> dict[str, Any]:
    answer = spec.task.answer
    return {
        "task_kind": spec.task.kind,
        "extractor": answer.extractor or default_extractor(spec.task.kind),
        "pattern": answer.pattern,
        "tolerance": answer.tolerance,
    }


def compile_run(
    spec: Spec,
    base_dir: Path,
    env: Environment,
    *,
    run_name: str,
    run_dir: str,
    variant: str | None = None,
    origin: str = "spec",
    overrides: dict[str, Any] | None = None,
    train_seed: int | None = None,
    repeats: str | None = None,
) -> RunPlan:
    """The stages of one run: exam, teach, review, build, train, evaluate for each of the
    spec's rounds (round k >= 2 reading round k-1's outputs), then the report.
    ``train_seed`` (one of the spec's ``seeds``) seeds the training and the evaluation in
    place of ``seed``; the stages before them keep ``seed`` and so are shared."""
    seed_of_training = spec.seed if train_seed is None else train_seed
    templates = {role: _template(spec, base_dir, role) for role in TEMPLATE_ROLES}
    hw = spec.student.hardware
    device, dtype = resolve_device(hw, env), resolve_dtype(hw, env)
    engine, engine_why = resolve_engine(spec, env)
    exam_cfg = spec.student.exam
    fields = dict(spec.task.fields)
    limit = spec.task.dataset.limit
    sampling = {
        "temperature": exam_cfg.temperature,
        "top_p": exam_cfg.top_p,
        "top_k": exam_cfg.top_k,
        "max_new_tokens": exam_cfg.max_new_tokens,
        "do_sample": exam_cfg.do_sample,
    }
    stages: list[Stage] = []

    def add(name: str, identity: dict, settings: dict, after: list[Stage],
            implementation: str | None = None, *, round_no: int = 1,
            previous: dict[str, Stage] | None = None,
            reads_previous: tuple[tuple[str, str], ...] = ()) -> Stage:
        """A stage instance of kind ``name`` in round ``round_no``: it reads its kind's
        inputs from the same round's stages and ``reads_previous`` from ``previous``."""
        kind = STAGE_KINDS[name]
        own = {s.kind: s.name for s in stages if s.settings.get("round", 1) == round_no}
        inputs = [Input(own[producer], artifact) for producer, artifact in kind.reads]
        inputs += [Input(previous[producer].name, artifact) for producer, artifact in reads_previous]
        amends = tuple(Input(own[producer], path) for producer, path in kind.amends)
        stage = Stage(
            name=stage_name(name, round_no),
            kind=kind.name,
            implementation=implementation,
            fingerprint=fingerprint(name, identity, [s.fingerprint for s in after]),
            settings={**settings, **({"round": round_no} if round_no > 1 else {})},
            identity=identity,
            after=tuple(s.name for s in after),
            inputs=tuple(inputs),
            outputs=kind.writes,
            amends=amends,
        )
        stages.append(stage)
        return stage

    exam_identity = {
        "model": spec.student.model,
        "engine": engine,
        "dtype": dtype,
        "sampling": sampling,
        "chat_template": exam_cfg.chat_template,
        "seed": spec.seed,
        "dataset": dataset_split(spec, base_dir, spec.task.dataset.train_split),
        "limit": limit.train,
        "fields": fields,
        "answer": _answer(spec),
        "template": templates["prompts.exam"],
    }
    exam_settings = {"engine_reason": engine_why, "device": device,
                     "batch_size": exam_cfg.batch_size,
                     "vllm": vllm_settings(spec, env) if engine == "vllm" else None,
                     "replicas": exam_replicas(hw, engine)}
    recorded_exam = exam_recorded(spec, base_dir)
    first_exam_identity, first_exam_settings = dict(exam_identity), dict(exam_settings)
    if recorded_exam is not None:  # the answers come from a file: what that file is
        first_exam_identity["recorded"] = recorded_exam[0]
    if engine == "recorded":  # later rounds' exams and the evaluation run the student itself
        engine, _ = resolve_engine(spec, env, recorded=False)
        exam_identity["engine"] = engine
        exam_settings["vllm"] = vllm_settings(spec, env) if engine == "vllm" else None
        exam_settings["replicas"] = exam_replicas(hw, engine)
    teachers = sorted(spec.teachers, key=lambda t: t.name)
    teach_identity = {
        "teachers": [_teacher_identity(spec, t, base_dir) for t in teachers],
        "fields": fields,
        "answer": _answer(spec),
        "templates": {r: templates[f"prompts.{r}"] for r in ("rationale", "feedback")},
    }
    teach_settings = {**teach_identity,
                      "teachers": [_teacher_settings(spec, t, env, base_dir) for t in spec.teachers]}
    review_cfg = spec.review
    reviewers = sorted(spec.reviewers(), key=lambda t: t.name)  # review.jury, or the teachers
    review_identity: dict[str, Any] = {"enabled": review_cfg.enabled}
    scoring = {"method": review_cfg.scoring, "fallback": review_cfg.scoring_fallback}
    if review_cfg.enabled:
        review_identity.update(
            # scoring enters only when it is not the paper's (text): text runs keep their
            # fingerprints; with logprobs the reviewers' calls also ask for the distribution
            policy=review_cfg.model_dump(exclude={"enabled", "scoring", "scoring_fallback",
                                                  "early_exit", "gold_check", "jury"}),
            reviewers=[_reviewer(_teacher_identity(spec, t, base_dir), review_cfg) for t in reviewers],
            template=templates["prompts.review"],
            fields=fields,
        )
        if review_cfg.scoring != "text":
            review_identity["scoring"] = scoring
        if not review_cfg.early_exit:  # more reviews asked; the default keeps its fingerprints
            review_identity["early_exit"] = False
    if review_cfg.gold_check == "require":  # drops rationales; report and off only record
        review_identity["gold_check"] = "require"
    review_settings = dict(review_identity)
    # the answer settings enter through the teach stage's fingerprint, which this one follows
    review_settings.update(early_exit=review_cfg.early_exit, gold_check=review_cfg.gold_check,
                           answer=_answer(spec))
    if review_cfg.enabled:  # the committee that reviews, in the fingerprint's (name) order
        review_settings["teachers"] = [_reviewer(_teacher_settings(spec, t, env, base_dir), review_cfg)
                                       for t in reviewers]
        review_settings["scoring"] = scoring
    training = spec.training
    build_identity = {
        "selection": training.selection,
        "seed": spec.seed,
        "fields": fields,
        "templates": {r: templates[f"training.templates.{r}"] for r in ("rationale", "feedback")},
    }
    # task.decontaminate: the build stage reads the evaluation split as the evaluate stage
    # does; only drop changes the training set, so only drop enters the fingerprint
    decontaminate: dict[str, Any] = {"mode": spec.task.decontaminate}
    if spec.task.decontaminate != "off":
        decontaminate.update(n=spec.task.decontaminate_ngram, shared_limit=SHARED_LIMIT,
                             dataset=dataset_split(spec, base_dir, spec.evaluation.split),
                             limit=limit.test, fields=fields, answer=_answer(spec))
    if spec.task.decontaminate == "drop":
        build_identity["decontaminate"] = {key: decontaminate[key] for key in (
            "mode", "n", "shared_limit", "dataset", "limit")}
    layout = TrainingLayout.of(spec, env)
    train_identity = {
        "model": spec.student.model,
        "dtype": dtype,
        "seed": seed_of_training,
        "world_size": layout.world_size,
        **training.model_dump(exclude={"templates", "selection", "report_to", "precision",
                                       "save_steps", "keep_checkpoints", "attn_implementation"}),
        # half-precision training's meaning (fp32 master weights or half weights); an fp32
        # run's fingerprint stays as it was
        **({"precision": training.precision} if dtype != "fp32" else {}),
    }
    # where the Trainer's losses and fairspec's metrics are tracked: not in a fingerprint
    # (adding a tracker retrains nothing; the report stage logs a finished run's metrics)
    tracking = {"report_to": list(training.report_to), "experiment": spec.name, "run": run_name}
    card = card_facts(spec, base_dir, run_name)
    train_settings = {"tracking": tracking, "card": card, "device": device,
                      "strategy": hw.strategy, "gpus": hw.gpus,
                      "layout": layout.to_dict(), "accelerate_config": accelerate_config(spec, env),
                      # when to checkpoint and what to keep change no result: not fingerprinted
                      "precision": training.precision, "save_steps": training.save_steps,
                      "keep_checkpoints": training.keep_checkpoints,
                      # the same math up to numerics, like the batch layout: not fingerprinted
                      "attn_implementation": training.attn_implementation}
    evaluation = spec.evaluation
    eval_sampling = dict(sampling, do_sample=evaluation.decoding == "sample")
    base_identity = {
        "model": spec.student.model,
        "engine": engine,
        "dtype": dtype,
        "sampling": eval_sampling,
        "seed": seed_of_training,
        "chat_template": training.chat_template,
        "dataset": dataset_split(spec, base_dir, evaluation.split),
        "limit": limit.test,
        "fields": fields,
        "answer": _answer(spec),
        "template": templates["training.templates.rationale"],
    }
    evaluate_identity = {**base_identity, "base": evaluation.base}
    if evaluation.samples != 1:  # one sample keeps its fingerprints
        evaluate_identity["samples"] = evaluation.samples
    evaluate_settings = {
        **evaluate_identity, "device": device, "batch_size": exam_cfg.batch_size,
        "vllm": vllm_settings(spec, env) if engine == "vllm" else None,
        "replicas": exam_replicas(hw, engine),
        # the untuned student's accuracy is the same for every variant: cached under this key
        # sample s > 0 of the base is cached beside sample 0 (any run's samples share it)
        "base_fingerprint": fingerprint("evaluate-base", base_identity), "card": card,
        "samples": evaluation.samples}

    rounds = spec.rounds
    previous: dict[str, Stage] = {}  # kind -> round k-1's stage
    for k in range(1, rounds.count + 1):
        if k == 1:
            exam = add("exam", first_exam_identity,
                       {**first_exam_identity, **first_exam_settings,
                        **({"recorded": recorded_exam[1]} if recorded_exam is not None else {})},
                       [], implementation="recorded" if recorded_exam is not None else None)
        else:  # round k-1's student retakes the exam (all of it, or what it got wrong)
            reads = ROUND_READS["student"] + (ROUND_READS["mistakes"] if rounds.exam == "mistakes"
                                              else ())
            identity = {**exam_identity, "covers": rounds.exam}
            exam = add("exam", identity, {**identity, **exam_settings}, [
                previous["train"], *([previous["exam"]] if rounds.exam == "mistakes" else [])],
                round_no=k, previous=previous, reads_previous=reads)
        identity = dict(teach_identity)
        if rounds.fresh_rationales and k > 1:  # a new, paid rationale for a question asked before
            identity["rationale_sample"] = k - 1
        teach = add("teach", identity, {**teach_settings, **identity, "teachers":
                                        teach_settings["teachers"]}, [exam], round_no=k)
        review = add("review", review_identity, review_settings, [teach], round_no=k)
        accumulate = k > 1 and rounds.data == "accumulate"
        identity = {**build_identity, **({"accumulate": True} if accumulate else {})}
        build = add("build", identity, {**identity, "card": card, "decontaminate": decontaminate},
                    [review, *([previous["build"]] if accumulate else [])], round_no=k,
                    previous=previous, reads_previous=ROUND_READS["examples"] if accumulate else ())
        from_previous = k > 1 and rounds.start_from == "previous"
        identity = {**train_identity, **({"start_from": "previous"} if from_previous else {})}
        train = add("train", identity, {**identity, **train_settings},
                    [build, *([previous["train"]] if from_previous else [])], round_no=k,
                    previous=previous, reads_previous=ROUND_READS["student"] if from_previous else ())
        evaluate = add("evaluate", evaluate_identity, evaluate_settings, [train], round_no=k)
        previous = {"exam": exam, "teach": teach, "review": review, "build": build,
                    "train": train, "evaluate": evaluate}
    report_inputs = tuple(Input(s.name, artifact) for s in stages
                          for producer, artifact in STAGE_KINDS["report"].reads
                          if s.kind == producer)
    report_identity = {"run": "report", **({"tracking": tracking} if tracking["report_to"] else {})}
    report = Stage(name="report", kind="report", fingerprint=fingerprint(
        "report", report_identity, [s.fingerprint for s in stages]),
        settings={"rounds": rounds.count, "tracking": tracking}, identity=report_identity,
        after=tuple(s.name for s in stages), inputs=report_inputs,
        outputs=STAGE_KINDS["report"].writes)
    stages.append(report)
    check_graph(run_name, stages)
    return RunPlan(
        name=run_name, variant=variant, origin=origin, overrides=dict(overrides or {}),
        run_dir=run_dir, stages=tuple(stages), seed=train_seed, repeats=repeats,
    )


def check_graph(run_name: str, stages: list[Stage]) -> None:
    """Every input names an earlier stage that the reader's fingerprint follows (directly or
    through others) and an output that stage declares, and every file a stage rewrites lies
    inside one of its inputs: a graph that fails this is a bug."""
    by_name = {s.name: s for s in stages}
    followed: dict[str, set[str]] = {}
    for stage in stages:
        followed[stage.name] = set(stage.after).union(*(followed[a] for a in stage.after))
        for wanted in stage.inputs:
            producer = by_name.get(wanted.stage)
            if producer is None or wanted.stage not in followed[stage.name]:
                raise PlanError(f"run {run_name}: stage {stage.name} reads {wanted}, but its "
                                f"fingerprint does not follow a stage {wanted.stage}")
            if producer.output(wanted.artifact) is None:
                raise PlanError(f"run {run_name}: stage {stage.name} reads {wanted}, which "
                                f"{wanted.stage} does not declare")
        for amended in stage.amends:  # a rewritten file lies inside a declared input
            if not any(i.stage == amended.stage and i.artifact.endswith("/")
                       and amended.artifact.startswith(i.artifact) for i in stage.inputs):
                raise PlanError(f"run {run_name}: stage {stage.name} rewrites {amended}, which is "
                                "inside none of its inputs")


def compile_plan(loaded: LoadedSpec, env: Environment | None = None) -> Plan:
    """The Plan of a loaded spec and all its variants (no I/O beyond reading its local files)."""
    env = env or Environment()
    spec = loaded.spec
    output_dir = resolve_path(spec.output_dir, loaded.base_dir)
    out = os.path.normpath(str(output_dir))
    seeds = list(spec.seeds or [None])
    runs = [compile_run(spec, loaded.base_dir, env, run_name=spec.name,
                        run_dir=os.path.join(out, spec.name), train_seed=seeds[0])]
    for name, variant in loaded.variants.items():
        run_name = f"{spec.name}.{name}"
        runs.append(compile_run(
            variant.spec, loaded.base_dir, env, run_name=run_name,
            run_dir=os.path.join(out, run_name), variant=name, origin=variant.origin,
            overrides=variant.overrides, train_seed=seeds[0],
        ))
    # seeds: every run again per further seed, after them all (so the plan's first runs are
    # one per setting): its training and evaluation seeded apart, its earlier stages shared
    for first in list(runs):
        for seed in seeds[1:]:
            run_name = f"{first.name}.seed-{seed}"
            runs.append(compile_run(
                loaded.spec_for(first.variant), loaded.base_dir, env, run_name=run_name,
                run_dir=os.path.join(out, run_name), variant=first.variant, origin=first.origin,
                overrides=first.overrides, train_seed=seed, repeats=first.name,
            ))
    notes = []
    engine, why = resolve_engine(spec, env)
    if engine == "vllm" and not env.vllm:
        notes.append("the exam asks for vllm, which is not installed here: pip install vllm")
    hw = spec.student.hardware
    if engine == "vllm" and hw.tensor_parallel > 1 \
            and local_model_config(spec.student.model, loaded.base_dir) is None:
        notes.append(f"could not check that tensor_parallel {hw.tensor_parallel} divides the "
                     f"attention heads of {spec.student.model}: its config.json is not on this "
                     "machine (vLLM checks it when it loads)")
    return Plan(
        spec_file=str(loaded.file),
        spec_name=spec.name,
        fairspec_version=__version__,
        base_dir=str(loaded.base_dir),
        output_dir=out,
        call_store=os.path.join(out, CALL_STORE_NAME),
        environment=env.to_dict(),
        runs=tuple(runs),
        notes=tuple(notes),
        spec_files=tuple(chain_files(loaded.source.chain)),
    )
