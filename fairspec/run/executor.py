"""Walks a Plan: runs each stage whose manifest does not match its fingerprint, in order.

A stage shared with a sibling run (same fingerprint, already done there) is copied,
not recomputed; teacher calls are shared through the one call store under
``output_dir``. Each stage runs through its registered kind, given one StageContext
(:mod:`fairspec.stages`); stage modules are imported when they run, so ``fairspec run
--until exam`` never loads the teacher SDKs and a plan without training never imports
torch's trainer.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairspec.artifacts import is_done, output_damage, set_aside
from fairspec.dsl.loader import LoadedSpec
from fairspec.errors import FairspecError, StoreDamaged
from fairspec.plan.graph import Plan, RunPlan
from fairspec.plan.hardware import Rendezvous
from fairspec.plan.kinds import CALL_FILES, STAGE_NAMES, round_of, settings_of, stage_teachers
from fairspec.plan.stage_settings import TrainSettings
from fairspec.report import write_report
from fairspec.run.lock import hold_output
from fairspec.run.record import stage_call_keys, write_record, write_run_info
from fairspec.stages import Services, StageContext, stage_runner
from fairspec.store import CallStore, load_replay
from fairspec.store.batches import BatchLedger
from fairspec.teachers.budget import Budget

log = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    run: str
    stage: str
    status: str  # "ran", "skipped" (already done), "copied" (done in a sibling run),
    #              "joined" (this node trained with node 0: join_training), "waiting" (a
    #              stage it reads is not complete and not selected: the run stops there)
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


def execute(loaded: LoadedSpec, plan: Plan, *, runs: list[RunPlan] | None = None,
            stages: tuple[str, ...] = STAGE_NAMES, replay_file: Path | None = None,
            on_stage: Callable[[StageOutcome], None] | None = None,
            progress: Any = None, budget: Budget | None = None,
            rendezvous: Rendezvous | None = None) -> ExecutionReport:
    """Run the selected stages of the selected runs (default: every run of the plan), from
    the plan alone (``loaded``, the spec the plan was compiled from, is no longer read).

    ``budget`` (default: the plan's ``max_usd``, the spec's ``budget.max_usd``) is shared by
    every run, so variants count against the same limit. On a training node other than 0
    (``rendezvous.node_rank > 0``) only the multi-node train stages run: see
    :func:`join_training`.
    """
    if rendezvous is not None and rendezvous.node_rank > 0:
        return join_training(plan, runs=runs, stages=stages, rendezvous=rendezvous,
                             on_stage=on_stage, progress=progress)
    if budget is None:
        budget = Budget(plan.max_usd)
    report = ExecutionReport()
    done_at: dict[str, Path] = {}  # fingerprint -> a folder where that stage is complete
    for other in plan.runs:  # stages finished earlier by sibling runs are shared too
        for stage in other.stages:
            folder = Path(other.run_dir) / stage.name
            if stage.fingerprint not in done_at and is_done(folder, stage.fingerprint) \
                    and output_damage(folder, ignore=amended(other, stage)) is None:
                done_at[stage.fingerprint] = folder
    runners = load_runners(runs or list(plan.runs), stages)
    replay = load_replay(replay_file) if replay_file else None
    output_dir = Path(plan.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with hold_output(output_dir), CallStore(Path(plan.call_store)) as store:
        services = Services(base_dir=Path(plan.base_dir), cache_dir=output_dir / "cache",
                            store=store, budget=budget, replay=replay, progress=progress,
                            rendezvous=rendezvous)
        for run in runs or list(plan.runs):
            write_run_info(run, plan)
            for stage in run.stages:
                if stage.kind not in stages:
                    continue
                folder = Path(run.run_dir) / stage.name
                redo_if_damaged(run, stage, folder)
                missing = [] if is_done(folder, stage.fingerprint) else unfinished_inputs(run, stage)
                if missing:  # e.g. --until teach reached round 2's exam, which needs round 1's training
                    outcome = StageOutcome(run.name, stage.name, "waiting",
                                           {"needs": missing})
                    report.outcomes.append(outcome)
                    if on_stage:
                        on_stage(outcome)
                    break
                if is_done(folder, stage.fingerprint):
                    count_done_calls(budget, store, stage, folder)
                    outcome = StageOutcome(run.name, stage.name, "skipped")
                elif stage.fingerprint in done_at and done_at[stage.fingerprint] != folder \
                        and stage.kind != "report":
                    if folder.exists():
                        set_aside(folder)  # a finished stage of other settings is kept
                    shutil.copytree(done_at[stage.fingerprint], folder)
                    count_done_calls(budget, store, stage, folder)
                    outcome = StageOutcome(run.name, stage.name, "copied")
                else:
                    runner = runners[(stage.kind, stage.implementation)]
                    result = runner(StageContext(stage, run, services))
                    outcome = StageOutcome(run.name, stage.name, "ran", result)
                done_at.setdefault(stage.fingerprint, folder)
                report.outcomes.append(outcome)
                if on_stage:
                    on_stage(outcome)
            changed = any(o.run == run.name and o.status != "skipped" for o in report.outcomes)
            if changed or not (Path(run.run_dir) / "record" / "spec.yaml").exists():
                write_record(run, plan, store)
    main = plan.runs[0]
    if len(plan.runs) > 1 and report.count("ran") + report.count("copied") \
            and is_done(Path(main.run_dir) / "report", main.stage("report").fingerprint):
        write_report(Path(main.run_dir))  # refresh the comparison of variants and sweep
    return report


def load_runners(runs: list[RunPlan], stages: tuple[str, ...]) -> dict[tuple[str, str | None], Any]:
    """Every selected stage's ``run`` function, imported before the first stage runs: a run
    then uses the code it started with to the end, even when fairspec is upgraded on disk
    while it trains (a module imported hours later would be the new version's, beside the
    old ones already loaded)."""
    return {(stage.kind, stage.implementation): stage_runner(stage.kind, stage.implementation)
            for run in runs for stage in run.stages if stage.kind in stages}


def unfinished_inputs(run: RunPlan, stage: Any) -> list[str]:
    """The stages ``stage`` reads from that are not complete in ``run``'s folder and cannot
    stand in for complete: an earlier round's (its student must be the finished one), or
    one whose declared artifact is missing. (An artifact placed by hand, like mistakes
    written for ``--only teach``, is read as it is.)"""
    own_round = round_of(stage.name)
    waiting = []
    for wanted in stage.inputs:
        producer = run.stage(wanted.stage)
        if wanted.stage in waiting or is_done(Path(run.run_dir) / producer.name, producer.fingerprint):
            continue
        present = (Path(run.run_dir) / producer.name / wanted.artifact.rstrip("/")).exists()
        if round_of(producer.name) != own_round or not present:
            waiting.append(wanted.stage)
    return waiting


def amended(run: RunPlan, stage: Any) -> frozenset[str]:
    """The files of ``stage``'s folder that later stages of ``run`` rewrite (the tuned
    model's card, which evaluate amends): not damage when they change."""
    return frozenset(a.artifact for s in run.stages for a in s.amends if a.stage == stage.name)


def redo_if_damaged(run: RunPlan, stage: Any, folder: Path) -> None:
    """A finished stage whose outputs changed since its manifest recorded them (a file
    deleted, truncated, rewritten) is done again from scratch (a teacher stage from the call
    store, at no cost), with a line saying why; it is never trusted as it is."""
    if stage.kind == "report" or not is_done(folder, stage.fingerprint):
        return  # the report is rewritten by every run and by `fairspec report`: no damage
    damage = output_damage(folder, ignore=amended(run, stage))
    if damage is None:
        return
    log.warning("%s %s: %s since the stage finished: it is done again%s", run.name, stage.name,
                damage, " (its teacher calls from the store, at no cost)"
                if stage.kind in CALL_FILES else "")
    shutil.rmtree(folder)


def count_done_calls(budget: Budget | None, store: CallStore, stage: Any, folder: Path) -> None:
    """A finished teacher stage skipped by this run still used its calls: they count
    against the budget (once per call), as the calls a running stage reuses do. They must
    all be in the store (a record replays from it): a store that lacks some was emptied,
    replaced or damaged, and the run stops (StoreDamaged) rather than go on without them."""
    if stage.kind not in CALL_FILES:
        return
    keys = list(dict.fromkeys(stage_call_keys(stage.kind, folder)))
    found = store.get_many(keys, include_errors=True)
    if len(found) < len(keys):
        raise StoreDamaged(
            f"{store.path} lacks {len(keys) - len(found)} of the {len(keys)} teacher calls "
            f"{folder} used: the store was emptied, replaced or damaged since, and a record of "
            "the run could not replay them. Put the store back (a backup), or delete "
            f"{folder} to ask those calls again (paid again)")
    if budget is None:
        return
    from fairspec.teachers.budget import call_usd

    prices = {t.name: t.price for t in stage_teachers(stage)}
    for key, record in ((k, r) for k, r in found.items() if r.completed):
        budget.count_reused(key, call_usd(prices.get(record.teacher), record.input_tokens or 0,
                                          record.output_tokens or 0,
                                          record.cached_input_tokens or 0))


def join_training(plan: Plan, *, runs: list[RunPlan] | None, stages: tuple[str, ...],
                  rendezvous: Rendezvous, on_stage: Callable[[StageOutcome], None] | None = None,
                  progress: Any = None) -> ExecutionReport:
    """Node ``rendezvous.node_rank`` (> 0) of a multi-node training: for each selected run
    whose training spans several nodes, wait for node 0 to reach it (the output folder is
    shared) and run this node's processes; no other stage runs here, no teacher is called."""
    from fairspec.stages.train import join

    if rendezvous.node_rank >= max((settings_of(s, TrainSettings).layout.nodes for r in plan.runs
                                    for s in r.stages if s.kind == "train"), default=1):
        raise FairspecError(f"node rank {rendezvous.node_rank} is not below the spec's "
                            "student.hardware.nodes; ranks count from 0")
    report = ExecutionReport()
    services = Services(base_dir=Path(plan.base_dir), cache_dir=Path(plan.output_dir) / "cache",
                        progress=progress, rendezvous=rendezvous)
    for run in runs or list(plan.runs):
        for stage in run.stages:
            if stage.kind != "train" or "train" not in stages \
                    or settings_of(stage, TrainSettings).layout.nodes < 2:
                continue
            result = join(StageContext(stage, run, services), rendezvous)
            outcome = StageOutcome(run.name, stage.name, "joined" if result["joined"] else "skipped",
                                   result)
            report.outcomes.append(outcome)
            if on_stage:
                on_stage(outcome)
    return report


def saved_summary(plan: Plan, runs: list[RunPlan]) -> str:
    """One line: which stages are complete and how many teacher calls the store holds."""
    done = [f"{run.name}: {sum(is_done(Path(run.run_dir) / s.name, s.fingerprint) for s in run.stages)}"
            f"/{len(run.stages)} stages complete" for run in runs]
    calls, waiting = 0, ""
    if Path(plan.call_store).exists():
        with CallStore(Path(plan.call_store)) as store:
            calls = store.count()
            waiting = open_batches_line(store)
    return "; ".join(done) + f"; {calls} teacher call(s) saved in {plan.call_store}" + waiting


def open_batches_line(store: CallStore) -> str:
    """What is still running at the providers in batch mode (empty when nothing is)."""
    if not store.query("SELECT name FROM sqlite_master WHERE name = 'batches'"):
        return ""
    rows = BatchLedger(store).batches(open_only=True)
    if not rows:
        return ""
    ids = ", ".join(f"{r.teacher}: {r.remote_id or r.id}" for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return (f"; {len(rows)} batch(es) still running at the provider ({ids}{more}), "
            f"{sum(r.requests - r.answered - r.failed for r in rows)} request(s) in them: "
            "the next run collects their results and sends none of them again")


def run_stage(run: RunPlan, name: str, *, base_dir: Path, cache_dir: Path | None = None,
              store: Any = None, budget: Any = None, replay: Any = None,
              progress: Any = None) -> dict[str, Any]:
    """Run one stage of ``run`` now, whatever its manifest says (its inputs must exist):
    for tests, notebooks and debugging. ``execute`` is the way to run a plan."""
    services = Services(base_dir=Path(base_dir),
                        cache_dir=Path(cache_dir) if cache_dir else Path(run.run_dir).parent / "cache",
                        store=store, budget=budget, replay=replay, progress=progress)
    stage = run.stage(name)
    return stage_runner(stage.kind, stage.implementation)(StageContext(stage, run, services))
