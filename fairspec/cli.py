"""The ``fairspec`` command line: validate, plan, run, report, diff, schema, init."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from fairspec import __version__
from fairspec.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    BudgetReached,
    FairspecError,
    PreflightError,
    SpecError,
)
from fairspec.resources import resource_root
from fairspec.terminal import printable

TASKS = ("gsm8k", "svamp", "strategyqa", "logiqa")
STAGES = ("exam", "teach", "review", "build", "train", "evaluate", "report")

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(error: FairspecError) -> NoReturn:
    """The one error handler: the error's lines (and the notes added to it on its way up,
    such as what a stopped run saved), then its exit status."""
    for line in [*error.lines(), *getattr(error, "__notes__", ())]:
        _err.print(printable(line), markup=False, highlight=False)  # a server's text may hold escapes
    sys.exit(error.exit_status)


class _Commands(click.Group):
    """fairspec's commands, with the one error boundary: any FairspecError a command raises
    is printed by :func:`_fail` and exits with its status; never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FairspecError as exc:
            _fail(exc)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fairspec")
def cli() -> None:
    """FAIR experiments (Fault-Aware DIstillation via peer-Review) from one YAML spec."""


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check-env", is_flag=True,
              help="Also fail when a teacher's api_key_env variable is not set here.")
def validate(specs: tuple[Path, ...], check_env: bool) -> None:
    """Check SPECS and report every problem as FILE:LINE:COL: field: message."""
    from fairspec.dsl import load_spec

    problems: list = []
    for path in specs:
        try:
            loaded = load_spec(path)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        memory = _memory_problems(loaded)
        if memory:
            problems.extend(memory)
            continue
        missing = _missing_env(loaded)
        for problem in missing:
            (problems.append(problem) if check_env
             else _err.print(f"warning: {problem.format()}", markup=False))
        for note in loaded.notes:
            _err.print(f"note: {note.format()}", markup=False)
        if not (check_env and missing):
            spec = loaded.spec
            _out.print(f"{path}: ok ({spec.name}: {spec.task.kind}, {len(spec.teachers)} "
                       f"teacher(s), {len(loaded.variants)} variant(s))", markup=False)
    if problems:
        raise SpecError(problems)


def _memory_problems(loaded) -> list:
    """A GPU spec (or variant) whose training or exam cannot fit its GPUs, at its
    student.hardware (or student.exam) line with the changes that would fit."""
    from fairspec.plan import detect_environment
    from fairspec.plan.environment import Environment
    from fairspec.plan.memory import cpu_memory_warnings, memory_problems

    specs = [(None, loaded.spec), *((name, v.spec) for name, v in loaded.variants.items())]
    auto = any(spec.student.hardware.device == "auto" for _, spec in specs)
    env = detect_environment() if auto else Environment()
    for path, message, hint in cpu_memory_warnings(loaded.spec, loaded.base_dir, env):
        problem = loaded.source.problem(path, message, hint)  # a CPU run is never refused
        _err.print(f"warning: {problem.format()}", markup=False)
    found, seen = [], set()
    for variant, spec in specs:
        if spec.student.hardware.device == "cpu":
            continue
        for path, message, hint in memory_problems(spec, loaded.base_dir, env):
            if (path, message) in seen:
                continue
            seen.add((path, message))
            said = message if variant is None else f"variant {variant}: {message}"
            found.append(loaded.source.problem(path, said, hint))
    return found


def _missing_env(loaded) -> list:
    found = []
    for path, teacher in loaded.spec.callers():
        if teacher.api_key_env and not os.environ.get(teacher.api_key_env):
            found.append(loaded.source.problem(
                (*path, "api_key_env"), f"environment variable {teacher.api_key_env} is not set",
                f"export {teacher.api_key_env}=... before fairspec run"))
    return found


def rendezvous_options(command):
    """--node-rank/--master-addr/--master-port (else NODE_RANK, MASTER_ADDR, MASTER_PORT)."""
    command = click.option("--master-port", type=click.IntRange(1, 65535), default=None,
                           help="Port node 0 listens on for training (env MASTER_PORT; 29500).")(command)
    command = click.option("--master-addr", default=None,
                           help="Address of node 0 for training (env MASTER_ADDR; 127.0.0.1).")(command)
    return click.option("--node-rank", type=click.IntRange(min=0), default=None,
                        help="This machine's rank in a multi-node training (env NODE_RANK; 0).")(command)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (stable keys).")
@click.option("--mistake-rate", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Share of train questions the student gets wrong, when no exam has run yet.")
@click.option("--mistakes", type=click.IntRange(min=0), default=None,
              help="Use this mistake count instead of the measured or estimated one.")
@click.option("--variant", default=None, help="Show only this variant's run.")
@click.option("--master-addr", default=None,
              help="Address of node 0, for the multi-node commands (env MASTER_ADDR; 127.0.0.1).")
@click.option("--master-port", type=click.IntRange(1, 65535), default=None,
              help="Port of node 0, for the multi-node commands (env MASTER_PORT; 29500).")
def plan(spec: Path, as_json: bool, mistake_rate: float, mistakes: int | None,
         variant: str | None, master_addr: str | None, master_port: int | None) -> None:
    """Show what `fairspec run SPEC` will do: stages, fingerprints, hardware, calls and cost."""
    from fairspec.dsl import load_spec
    from fairspec.plan import compile_plan, detect_environment
    from fairspec.plan.estimate import estimate_run
    from fairspec.plan.hardware import Rendezvous
    from fairspec.plan.memory import memory_plan
    from fairspec.plan.new_calls import unique_calls_per_mistake
    from fairspec.plan.render import plan_json, print_plan
    from fairspec.plan.round_estimate import estimate_rounds

    rendezvous = Rendezvous.from_env(0, master_addr, master_port)
    loaded = load_spec(spec)
    env = detect_environment()
    full = compile_plan(loaded, env)
    specs = {run.name: loaded.spec_for(run.variant) for run in full.runs}
    memory = {run.name: memory_plan(specs[run.name], loaded.base_dir, env) for run in full.runs}
    if variant is not None:
        if variant not in loaded.variants:
            raise FairspecError(f"no variant '{variant}' in {spec}; it has: "
                                + (", ".join(loaded.variants) or "none"))
        from dataclasses import replace

        full = replace(full, runs=(full.run(variant),))
    estimates = {
        run.name: estimate_run(run, loaded.base_dir, mistake_rate=mistake_rate, mistakes=mistakes)
        for run in full.runs
    }
    fresh = unique_calls_per_mistake(full)
    rounds = {run.name: estimate_rounds(run, estimates[run.name]) for run in full.runs}
    from fairspec.run.preflight import finished_elsewise

    again = finished_elsewise(full.runs, STAGES)  # finished work a run would do again
    if as_json:
        document = plan_json(full, estimates, fresh, full.max_usd, rendezvous,
                             rounds, memory)
        click.echo(json.dumps({**document, "runs_again": again}, indent=2, ensure_ascii=False))
    else:
        print_plan(_out, full, estimates, fresh, full.max_usd, rendezvous,
                   rounds, memory)
        for line in again:
            _err.print(f"warning: {line}", markup=False)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--variant", "variants", multiple=True,
              help="Run only this variant (repeatable); 'main' is the spec itself. Default: all runs.")
@click.option("--until", type=click.Choice(STAGES), default=None,
              help="Stop after this stage (with rounds: in every round whose inputs are complete).")
@click.option("--from", "start", type=click.Choice(STAGES), default=None, help="Start at this stage.")
@click.option("--only", type=click.Choice(STAGES), default=None, help="Run just this stage.")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Answer every teacher call from this exported call file (no key needed).")
@click.option("--max-cost", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Stop before teacher spend passes this many USD (overrides budget.max_usd).")
@click.option("-v", "--verbose", is_flag=True, help="Log what each stage does.")
@click.option("--debug", is_flag=True,
              help="Log everything, HTTP clients included; keys and key-like text are masked.")
@rendezvous_options
def run(spec: Path, variants: tuple[str, ...], until: str | None, start: str | None,
        only: str | None, replay: Path | None, max_cost: float | None, verbose: bool,
        debug: bool, node_rank: int | None, master_addr: str | None,
        master_port: int | None) -> None:
    """Run SPEC: exam, teach, review, build, train, evaluate, report; resumable, never paying twice.

    Training on several nodes: run the same command on every node with its --node-rank
    (node 0 runs every stage; the others only join the training), as `fairspec plan` shows.
    """

    from fairspec.dsl import load_spec
    from fairspec.plan import compile_plan, detect_environment
    from fairspec.run.executor import execute, saved_summary, select_stages
    from fairspec.teachers.budget import Budget

    scrubber = _setup_logging(verbose=verbose, debug=debug)
    if not debug:  # --debug brings the libraries' bars and logs back
        _quiet_libraries()
    plan_, chosen, budget = None, [], None
    try:
        loaded = load_spec(spec)
        scrubber.add(os.environ.get(t.api_key_env or "") for _, t in loaded.spec.callers())
        env = detect_environment()
        plan_ = compile_plan(loaded, env)
        from fairspec.plan.kinds import run_teachers
        from fairspec.teachers.committee import key_values

        # the keys of every teacher and juror of every run (a variant's own jurors too,
        # with their kind's default variable): never in a log line
        scrubber.add(value for run_ in plan_.runs for teacher in run_teachers(run_)
                     for value in key_values(teacher))
        chosen = list(plan_.runs)
        if variants:
            unknown = [v for v in variants if v != "main" and v not in loaded.variants]
            if unknown:
                raise FairspecError(f"no variant {', '.join(unknown)} in {spec}; it has: "
                                    + (", ".join(loaded.variants) or "none"))
            chosen = [r for r in plan_.runs if (r.variant or "main") in variants]
        stages = select_stages(only=only, until=until, start=start)

        budget = Budget(max_cost if max_cost is not None else plan_.max_usd)
        specs = {run.name: loaded.spec_for(run.variant) for run in plan_.runs}

        def show(outcome) -> None:
            if outcome.status == "waiting":
                _out.print(f"{outcome.run} {outcome.stage}: not run, it reads "
                           f"{', '.join(outcome.result['needs'])}, which the stages chosen "
                           "did not complete", markup=False)
                return
            verb = {"ran": "done", "skipped": "already done", "copied": "shared, copied",
                    "joined": "trained with node 0"}[outcome.status]
            _out.print(f"{outcome.run} {outcome.stage}: {verb}", markup=False)
            if outcome.stage == "exam" and "teach" in stages and replay is None:
                _print_teacher_estimate(loaded.base_dir, plan_.run(outcome.run), budget)

        from fairspec.plan.hardware import Rendezvous
        from fairspec.progress_view import RichStageProgress
        from fairspec.run.preflight import check, memory, run_warnings

        rendezvous = Rendezvous.from_env(node_rank, master_addr, master_port)
        if rendezvous.node_rank == 0:  # a joining node only trains: node 0 checked the rest
            problems = check(plan_, chosen, stages, replay=replay is not None,
                             budget_usd=budget.limit_usd)
            problems += memory(chosen, stages, specs, loaded.base_dir, env)
            for warning in run_warnings(chosen, stages):  # said loudly, before anything runs
                _err.print(f"warning: {warning}", markup=False)
            if problems:
                raise PreflightError(problems)
        outcomes = execute(loaded, plan_, runs=chosen, stages=stages, replay_file=replay, on_stage=show,
                           progress=RichStageProgress(_out, budget), budget=budget,
                           rendezvous=rendezvous)
    except KeyboardInterrupt:
        saved = saved_summary(plan_, chosen) if plan_ is not None else "nothing was started"
        how = "terminated (SIGTERM)" if _TERMINATED else "interrupted"
        _err.print(f"{how}: {saved}; run the same command again to resume.", markup=False)
        sys.exit(EXIT_TERMINATED if _TERMINATED else EXIT_INTERRUPTED)
    except BudgetReached as exc:  # what is saved, and what the calls cost once those on their way landed
        exc.add_note(saved_summary(plan_, chosen))
        exc.add_note(f"Teacher spend: ${budget.spent_usd:.4f} (${budget.paid_now_usd:.4f} paid now)"
                     + (f" of ${budget.limit_usd:.2f}" if budget.limit_usd is not None else ""))
        raise
    spent = "" if not budget.spent_usd else (f" Teacher spend: ${budget.spent_usd:.4f} "
                                             f"(${budget.paid_now_usd:.4f} paid now).")
    joined = f" {outcomes.count('joined')} joined node 0's training." if outcomes.count("joined") else ""
    _out.print(f"{outcomes.count('ran')} stage(s) run, {outcomes.count('skipped')} already done, "
               f"{outcomes.count('copied')} shared.{joined}{spent}", markup=False)
    for run_ in chosen:
        page = Path(run_.run_dir) / "report" / "report.html"
        if page.exists():
            _out.print(f"report: {page} (and report.md beside it)", markup=False)


#: Environment that turns off the libraries' own progress bars (tqdm: GGUF conversion,
#: "Loading weights", "Writing model shards"; datasets: "Map", "Saving the dataset"; hub
#: downloads); fairspec's progress lines replace them. Read when a bar is made, and
#: inherited by a training subprocess. A user's own setting wins.
QUIET_LIBRARIES = {"TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def _quiet_libraries() -> None:
    for name, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)


def _setup_logging(*, verbose: bool, debug: bool):
    """Log to stderr through a filter that masks key-like text (and, once the spec is read,
    the values of its key variables: ``filter.add``)."""
    import logging

    from fairspec.secrets import RedactingFilter

    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        for noisy in ("httpx", "httpcore", "openai", "google_genai", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    scrubber = RedactingFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(scrubber)
    return scrubber


def _print_teacher_estimate(base_dir: Path, run_plan, budget) -> None:
    """Before teacher stages start: the plan's call and cost estimate on the measured mistakes."""
    from fairspec.plan.estimate import estimate_run

    estimate = estimate_run(run_plan, base_dir)
    if estimate.mistakes is None:
        return
    usd = "unknown (a teacher has no price)" if estimate.usd is None else f"~${estimate.usd:,.4f}"
    limit = "" if budget.limit_usd is None else f", budget ${budget.limit_usd:,.2f}"
    _out.print(f"{run_plan.name}: {estimate.mistakes} mistakes -> up to {estimate.calls:,} teacher calls, "
               f"{usd}{limit}", markup=False)
    if budget.limit_usd is not None and estimate.usd is not None and estimate.usd > budget.limit_usd:
        _out.print("  the estimate passes the budget: the run will stop before it does, "
                   "resumable with a higher limit", markup=False)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def report(run_dir: Path) -> None:
    """Write RUN_DIR/report/report.md and report.html (tables and plots) from a run folder."""
    from fairspec.report import write_report

    written = write_report(run_dir)
    for path in written:
        _out.print(f"wrote {path}", markup=False)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--to", "to", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder for the dataset and its card.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "hf"]), default="jsonl",
              show_default=True,
              help="jsonl or parquet (read with datasets.load_dataset(DIR)); hf: a save_to_disk "
                   "folder (datasets.load_from_disk).")
def export(run_dir: Path, to: Path, fmt: str) -> None:
    """Export RUN_DIR's distillation set: per mistake the question, gold, the student's wrong
    answer, each teacher's rationale, scores and feedback, and what was accepted."""
    from fairspec.report.export import export_run

    done = export_run(run_dir, to, fmt)
    _out.print(f"wrote {done['samples']} samples ({done['accepted']} with an accepted rationale) "
               f"to {done['folder']} ({fmt}, with its dataset card README.md)", markup=False)
    if done["overlapping_examples"]:
        _out.print(f"{done['overlapping_examples']} of their training examples hold a test "
                   "question (task.decontaminate): see the test_overlap column", markup=False)


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--variant", default=None,
              help="Compare this variant of each spec (a spec facing a record is compared "
                   "as the variant the record ran).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def diff(a: str, b: str, variant: str | None, as_json: bool) -> None:
    """Compare two specs or run records key by key (every default written out).

    A and B are spec files (builtin:specs/<name>.yaml too) or run records
    (runs/<run>/record, or the run folder). Two
    records are also compared by datasets' fingerprints, package versions and stages'
    fingerprints. Exit status: 0 equal, 1 different, 2 error.
    """
    from fairspec.run.diff import compare, open_pair, render

    left, right = open_pair(a, b, variant)
    differences = compare(left, right)
    if as_json:
        click.echo(json.dumps({"schema_version": 1, "equal": not differences, "a": left.describe(),
                               "b": right.describe(),
                               "differences": [d.to_dict() for d in differences]},
                              indent=2, ensure_ascii=False))
    else:
        for line in render(left, right, differences):
            _out.print(line, markup=False)
    sys.exit(1 if differences else 0)


@cli.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editor completion through yaml-language-server)."""
    from fairspec.dsl.schema import Spec

    document = Spec.model_json_schema()
    document["properties"] = {"extends": {
        "type": "string", "title": "Extends",
        "description": "a base spec this one is written on (relative to this file, or "
                       "builtin:specs/<name>.yaml): mappings merge, lists and scalars replace, "
                       "'key: !delete' removes a key the base sets"}, **document["properties"]}
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": "fairspec spec (v1)", **document}
    click.echo(json.dumps(document, indent=2))


@cli.command()
@click.option("--task", type=click.Choice(TASKS), required=True, help="The paper benchmark.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the spec (default: <task>.yaml here).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--extends", "extend", is_flag=True,
              help="Write a short spec that extends the builtin paper spec (only your changes "
                   "in it) instead of a full copy.")
def init(task: str, output: Path | None, force: bool, extend: bool) -> None:
    """Write a starter spec reproducing the paper's setup for TASK."""
    from fairspec.dsl import load_spec

    target = output or Path(f"{task}.yaml")
    if target.exists() and not force:
        raise FairspecError(f"{target} exists; pass --force to overwrite it")
    if extend:
        text = _child_spec(task)
    else:
        text = (resource_root() / "specs" / f"{task}.yaml").read_text(encoding="utf-8")
        text = (text.replace("../prompts/", "builtin:prompts/")
                    .replace("../templates/", "builtin:templates/")
                    .replace("output_dir: ../runs", "output_dir: runs"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    load_spec(target)  # a packaging bug if it fails, said as any spec error
    _out.print(f"wrote {target}: edit it, then run `fairspec validate {target}` and "
               f"`fairspec plan {target}`", markup=False)


def _child_spec(task: str) -> str:
    """A spec on top of the builtin paper spec for ``task``: the base's keys apply unless
    written here."""
    return f"""\
# Built on fairspec's paper spec for {task}: every key of builtin:specs/{task}.yaml applies
# unless written below. Mappings merge key by key, lists (teachers, variants) and scalars
# replace the base's, and `key: !delete` removes a key the base sets (its default applies).
# `fairspec diff builtin:specs/{task}.yaml THIS_FILE` lists what this spec changes.
extends: builtin:specs/{task}.yaml
name: {task}-mine
description: my FAIR run on {task}, on top of the paper's setup

# For example, another student on one GPU, and a stricter review:
# student:
#   model: Qwen/Qwen2.5-1.5B-Instruct
#   hardware: {{gpus: 1, strategy: none}}
# review:
#   threshold: 4.5

output_dir: runs
"""


#: Set when the run was asked to stop by SIGTERM (a scheduler, ``kill``), not by Ctrl-C.
_TERMINATED: list[int] = []


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM stops a run as Ctrl-C does (what finished is saved, the training processes
    stop, the same message), with exit status 143."""
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    cli()


if __name__ == "__main__":
    main()
