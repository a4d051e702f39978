"""What a run's stages are compiled from, resolved once per run (:class:`RunFacts`), and the
identities the stages share: a template's, a dataset split's, a teacher's, the answer
checker's, the cards' facts. Pure: reads only the spec's local files (to hash them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairspec.dsl.loader import template_ref
from fairspec.dsl.rules import default_extractor, local_model_config
from fairspec.dsl.schema import Spec, Teacher
from fairspec.hashing import sha256_file, sha256_text
from fairspec.plan.environment import Environment
from fairspec.plan.hardware import resolve_device, resolve_dtype, resolve_engine
from fairspec.plan.recorded_inputs import teacher_recorded
from fairspec.providers.families import family_for, shaped
from fairspec.providers.registry import provider_kind
from fairspec.resources import BUILTIN_MODELS, builtin_model_alias, resolve_path
from fairspec.tasks.data import split_file
from fairspec.templates import TEMPLATE_ROLES


@dataclass(frozen=True)
class RunFacts:
    """One run's resolved facts, shared by its stage kinds' settings (:mod:`stage_parts`).

    ``exam_engine`` is the first exam's engine (``recorded`` when its answers come from a
    file); ``engine`` the one the student itself answers with (later rounds' exams, the
    evaluation). ``train_seed`` seeds the training and the evaluation (one of ``seeds``, or
    ``seed``); the stages before them keep ``spec.seed``."""

    spec: Spec
    base_dir: Path
    env: Environment
    run_name: str
    train_seed: int
    templates: dict[str, dict[str, str]]
    device: str
    dtype: str
    exam_engine: str
    engine: str
    engine_reason: str
    fields: dict[str, str]
    sampling: dict[str, Any]
    card: dict[str, Any]
    tracking: dict[str, Any]

    @classmethod
    def of(cls, spec: Spec, base_dir: Path, env: Environment, *, run_name: str,
           train_seed: int | None) -> RunFacts:
        hw, exam = spec.student.hardware, spec.student.exam
        exam_engine, reason = resolve_engine(spec, env)
        engine = resolve_engine(spec, env, recorded=False)[0] if exam_engine == "recorded" else exam_engine
        return cls(
            spec=spec, base_dir=base_dir, env=env, run_name=run_name,
            train_seed=spec.seed if train_seed is None else train_seed,
            templates={role: _template(spec, base_dir, role) for role in TEMPLATE_ROLES},
            device=resolve_device(hw, env), dtype=resolve_dtype(hw, env),
            exam_engine=exam_engine, engine=engine, engine_reason=reason,
            fields=dict(spec.task.fields),
            sampling={"temperature": exam.temperature, "top_p": exam.top_p, "top_k": exam.top_k,
                      "max_new_tokens": exam.max_new_tokens, "do_sample": exam.do_sample},
            card=card_facts(spec, base_dir, run_name),
            # where the Trainer's losses and fairspec's metrics are tracked: not in a
            # fingerprint (adding a tracker retrains nothing)
            tracking={"report_to": list(spec.training.report_to), "experiment": spec.name,
                      "run": run_name},
        )

    def answer(self) -> dict[str, Any]:
        """How an answer is read and checked (the task's extractor)."""
        return answer_identity(self.spec)

    def split(self, split: str) -> dict[str, Any]:
        return dataset_split(self.spec, self.base_dir, split)

    def teacher_identity(self, teacher: Teacher) -> dict[str, Any]:
        return teacher_identity(self.spec, teacher, self.base_dir)

    def teacher_settings(self, teacher: Teacher) -> dict[str, Any]:
        return teacher_settings(self.spec, teacher, self.env, self.base_dir)


def _template(spec: Spec, base_dir: Path, role: str) -> dict[str, str]:
    ref = template_ref(spec, role)
    source = resolve_path(ref, base_dir).read_text(encoding="utf-8")
    return {"ref": ref, "sha256": sha256_text(source)}


def dataset_split(spec: Spec, base_dir: Path, split: str) -> dict[str, Any]:
    """A split's identity: hub id/config/revision, or the local file and its content hash."""
    ds = spec.task.dataset
    if ds.hf is not None:
        return {"hf": ds.hf, "config": ds.config, "revision": ds.revision, "split": split}
    local = split_file(resolve_path(ds.path or "", base_dir), split)
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


def teacher_identity(spec: Spec, teacher: Teacher, base_dir: Path) -> dict[str, Any]:
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


def teacher_settings(spec: Spec, teacher: Teacher, env: Environment, base_dir: Path) -> dict[str, Any]:
    """What the teach stage needs per teacher; keys are only ever named, never held. A local
    (hf) teacher runs where the student does: its ``device`` and ``dtype``; a recorded one
    opens the files of ``recorded``."""
    recorded = teacher_recorded(spec, teacher, base_dir)
    local: dict[str, Any] = {"recorded": recorded[1]} if recorded is not None else {}
    if provider_kind(teacher.provider).local:
        hw = spec.student.hardware
        local = {"device": resolve_device(hw, env), "dtype": resolve_dtype(hw, env)}
    return {
        **teacher_identity(spec, teacher, base_dir),
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


def as_reviewer(teacher: dict[str, Any], review: Any) -> dict[str, Any]:
    """A teacher as a reviewer: with ``scoring: logprobs`` its calls also ask for the score
    distribution (``score_logprobs`` enters their generation settings, and so their keys)."""
    if review.scoring != "logprobs":
        return teacher
    return {**teacher, "generation": {**teacher["generation"],
                                      "score_logprobs": list(review.score_range)}}


def answer_identity(spec: Spec) -> dict[str, Any]:
    answer = spec.task.answer
    return {
        "task_kind": spec.task.kind,
        "extractor": answer.extractor or default_extractor(spec.task.kind),
        "pattern": answer.pattern,
        "tolerance": answer.tolerance,
    }
