"""Walks a Plan: runs each stage whose manifest does not match its fingerprint, in order.

A stage shared with a sibling run (same fingerprint, already done there) is copied,
not recomputed; teacher calls are shared through the one call store under
``output_dir``. Stages import lazily, so ``fairspec run --until exam`` never loads the
teacher SDKs and a plan without training never imports torch's trainer.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairspec.artifacts import is_done
from fairspec.dsl.loader import LoadedSpec
from fairspec.dsl.schema import Spec
from fairspec.plan.graph import STAGE_NAMES, Plan, RunPlan
from fairspec.run.record import write_record, write_run_info
from fairspec.teachers.budget import Budget

log = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    run: str
    stage: str
    status: str  # "ran", "skipped" (already done), "copied" (done in a sibling run)
    result: dict[str, Any] | None = None


@dataclass
class ExecutionReport:
    outcomes: list[StageOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def select_stages(*, only: str | None = None, until: str | None = None,
                  start: str | None = None) -> tuple[str, ...]:
    """The stage names ``--only``/``--until``/``--from`` leave, in pipeline order."""
    names = list(STAGE_NAMES)
    if only:
        return (only,)
    if start:
        names = names[names.index(start):]
    if until:
        names = names[: names.index(until) + 1]
    return tuple(names)


def _specs_by_run(loaded: LoadedSpec, plan: Plan) -> dict[str, Spec]:
    specs = {plan.runs[0].name: loaded.spec}
    specs.update({r.name: loaded.variants[r.variant].spec for r in plan.runs[1:] if r.variant})
    return specs


def execute(loaded: LoadedSpec, plan: Plan, *, runs: list[RunPlan] | None = None,
            stages: tuple[str, ...] = STAGE_NAMES, replay_file: Path | None = None,
            on_stage: Callable[[StageOutcome], None] | None = None,
            progress: Any = None, budget: Budget | None = None) -> ExecutionReport:
    """Run the selected stages of the selected runs (default: every run of the plan).

    ``budget`` (default: the spec's ``budget.max_usd``) is shared by every run, so
    variants count against the same limit.
    """
    from fairspec.report import write_report
    from fairspec.store import CallStore, load_replay

    specs = _specs_by_run(loaded, plan)
    if budget is None:
        budget = Budget(loaded.spec.budget.max_usd)
    report = ExecutionReport()
    done_at: dict[str, Path] = {}  # fingerprint -> a folder where that stage is complete
    for other in plan.runs:  # stages finished earlier by sibling runs are shared too
        for stage in other.stages:
            folder = Path(other.run_dir) / stage.name
            if stage.fingerprint not in done_at and is_done(folder, stage.fingerprint):
                done_at[stage.fingerprint] = folder
    replay = load_replay(replay_file) if replay_file else None
    output_dir = Path(plan.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with CallStore(Path(plan.call_store)) as store:
        for run in runs or list(plan.runs):
            write_run_info(specs[run.name], run, plan)
            for stage in run.stages:
                if stage.name not in stages:
                    continue
                folder = Path(run.run_dir) / stage.name
                if is_done(folder, stage.fingerprint):
                    outcome = StageOutcome(run.name, stage.name, "skipped")
                elif stage.fingerprint in done_at and done_at[stage.fingerprint] != folder \
                        and stage.name != "report":
                    if folder.exists():
                        shutil.rmtree(folder)
                    shutil.copytree(done_at[stage.fingerprint], folder)
                    outcome = StageOutcome(run.name, stage.name, "copied")
                else:
                    result = _run_stage(stage.name, specs[run.name], loaded.base_dir, run, folder,
                                        store, replay, output_dir, progress, budget)
                    outcome = StageOutcome(run.name, stage.name, "ran", result)
                done_at.setdefault(stage.fingerprint, folder)
                report.outcomes.append(outcome)
                if on_stage:
                    on_stage(outcome)
            changed = any(o.run == run.name and o.status != "skipped" for o in report.outcomes)
            if changed or not (Path(run.run_dir) / "record" / "spec.yaml").exists():
                write_record(specs[run.name], run, plan, loaded.base_dir, store)
    main = plan.runs[0]
    if len(plan.runs) > 1 and report.count("ran") + report.count("copied") \
            and is_done(Path(main.run_dir) / "report", main.stage("report").fingerprint):
        write_report(Path(main.run_dir))  # refresh the comparison of variants and sweep
    return report


def _run_stage(name: str, spec: Spec, base_dir: Path, run: RunPlan, folder: Path, store: Any,
               replay: Any, output_dir: Path, progress: Any, budget: Budget) -> dict[str, Any]:
    if name == "exam":
        from fairspec.stages.exam import run_exam

        return run_exam(spec, base_dir, run.stage("exam"), folder, progress=progress)
    if name == "teach":
        from fairspec.stages.teach import run_teach

        return run_teach(run, base_dir, folder, store, replay=replay, progress=progress, budget=budget)
    if name == "review":
        from fairspec.stages.review import run_review

        return run_review(run, base_dir, folder, store, replay=replay, progress=progress,
                          budget=budget)
    if name == "build":
        from fairspec.stages.build import run_build

        return run_build(run, base_dir, folder, seed=spec.seed)
    if name == "train":
        from fairspec.stages.train import run_train

        return run_train(run, base_dir, folder, progress=progress)
    if name == "evaluate":
        from fairspec.stages.evaluate import run_evaluate

        return run_evaluate(spec, run, base_dir, folder, output_dir, progress=progress)
    from fairspec.stages.report import run_report

    return run_report(run, folder)


def saved_summary(plan: Plan, runs: list[RunPlan]) -> str:
    """One line: which stages are complete and how many teacher calls the store holds."""
    from fairspec.store import CallStore

    done = [f"{run.name}: {sum(is_done(Path(run.run_dir) / s.name, s.fingerprint) for s in run.stages)}"
            f"/{len(run.stages)} stages complete" for run in runs]
    calls = 0
    if Path(plan.call_store).exists():
        with CallStore(Path(plan.call_store)) as store:
            calls = store.count()
    return "; ".join(done) + f"; {calls} teacher call(s) saved in {plan.call_store}"
