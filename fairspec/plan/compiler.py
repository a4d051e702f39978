"""Compiles a checked spec into a Plan: pure, no network, no model load.

Each run (the spec and each variant or sweep point) becomes the seven stages
exam -> teach -> review -> build -> train -> evaluate -> report (each kind's identity and
settings from :mod:`fairspec.plan.stage_parts`, over the run's resolved
:class:`~fairspec.plan.stage_facts.RunFacts`); with ``rounds.count``
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
from fairspec.dsl.loader import LoadedSpec
from fairspec.dsl.rules import local_model_config
from fairspec.dsl.schema import Spec
from fairspec.errors import PlanError
from fairspec.hashing import fingerprint
from fairspec.plan.environment import Environment
from fairspec.plan.graph import Input, Plan, RunPlan, Stage
from fairspec.plan.hardware import resolve_engine
from fairspec.plan.kinds import STAGE_KINDS, round_kinds, round_of, stage_name
from fairspec.plan.stage_facts import RunFacts, card_facts, dataset_split, teacher_generation
from fairspec.plan.stage_parts import Parts
from fairspec.plan.stage_settings import checked_settings
from fairspec.resources import resolve_path

__all__ = ["CALL_STORE_NAME", "card_facts", "check_graph", "compile_plan", "compile_run",
           "dataset_split", "teacher_generation"]

CALL_STORE_NAME = "calls.sqlite"


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
    facts = RunFacts.of(spec, base_dir, env, run_name=run_name, train_seed=train_seed)
    parts = {kind.name: kind.parts(facts) for kind in round_kinds()}
    stages: list[Stage] = []
    previous: dict[str, Stage] = {}  # kind -> round k-1's stage
    for k in range(1, spec.rounds.count + 1):
        previous = _round(stages, k, spec.rounds, parts, previous)
    stages.append(_report(stages, facts.tracking, spec.rounds.count))
    check_graph(run_name, stages)
    return RunPlan(
        name=run_name, variant=variant, origin=origin, overrides=dict(overrides or {}),
        run_dir=run_dir, stages=tuple(stages), seed=train_seed, repeats=repeats,
        callers=tuple(t.name for _, t in spec.callers()),
        jury=tuple(t.name for t in spec.reviewers()) if spec.review.jury else (),
        settings=spec.model_dump(mode="json"),
    )


def _round(stages: list[Stage], k: int, rounds: Any, parts: dict[str, Parts],
           previous: dict[str, Stage]) -> dict[str, Stage]:
    """Round ``k``'s stages (one per kind of :func:`round_kinds`, in order), appended to
    ``stages``; what round k+1 reads from, by kind."""
    own: dict[str, Stage] = {}
    for kind in round_kinds():
        placed = kind.place(k, rounds, parts[kind.name])
        after = [own[name] for name in placed.after] + [previous[name] for name in placed.previous]
        own[kind.name] = _add(stages, kind.name, placed.identity, placed.settings, after,
                              round_no=k, previous=previous, reads_previous=placed.reads_previous,
                              implementation=placed.implementation)
    return own


def _add(stages: list[Stage], kind_name: str, identity: dict[str, Any], settings: dict[str, Any],
         after: list[Stage], *, round_no: int, previous: dict[str, Stage],
         reads_previous: tuple[tuple[str, str], ...] = (), implementation: str | None = None) -> Stage:
    """A stage of kind ``kind_name`` in round ``round_no``, appended to ``stages``: it reads
    its kind's inputs from the same round's stages and ``reads_previous`` from ``previous``;
    its fingerprint covers ``identity`` and the fingerprints of ``after``; its settings are
checked against its kind's settings type."""
    kind = STAGE_KINDS[kind_name]
    own = {s.kind: s.name for s in stages if round_of(s.name) == round_no}
    inputs = [Input(own[producer], artifact) for producer, artifact in kind.reads]
    inputs += [Input(previous[producer].name, artifact) for producer, artifact in reads_previous]
    stage = Stage(
        name=stage_name(kind_name, round_no), kind=kind.name, implementation=implementation,
        fingerprint=fingerprint(kind_name, identity, [s.fingerprint for s in after]),
        settings=checked_settings(kind_name, kind.settings,
                                  {**settings, **({"round": round_no} if round_no > 1 else {})}),
        identity=identity, after=tuple(s.name for s in after), inputs=tuple(inputs),
        outputs=kind.writes, amends=tuple(Input(own[producer], path) for producer, path in kind.amends),
    )
    stages.append(stage)
    return stage


def _report(stages: list[Stage], tracking: dict[str, Any], rounds: int) -> Stage:
    """The report stage: it reads every round's stats and follows every stage."""
    identity = {"run": "report", **({"tracking": tracking} if tracking["report_to"] else {})}
    return Stage(
        name="report", kind="report",
        fingerprint=fingerprint("report", identity, [s.fingerprint for s in stages]),
        settings=checked_settings("report", STAGE_KINDS["report"].settings,
                                  {"rounds": rounds, "tracking": tracking}),
        identity=identity,
        after=tuple(s.name for s in stages),
        inputs=tuple(Input(s.name, artifact) for s in stages
                     for producer, artifact in STAGE_KINDS["report"].reads if s.kind == producer),
        outputs=STAGE_KINDS["report"].writes)


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
        max_usd=spec.budget.max_usd,
    )
