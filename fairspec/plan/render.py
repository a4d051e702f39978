"""Shows a Plan to a person (rich tables) or to a program (stable JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fairspec.dsl.variants import shown
from fairspec.plan.calls_view import money, print_calls, usd_sum
from fairspec.plan.committee import Committee
from fairspec.plan.estimate import CallEstimate
from fairspec.plan.graph import Plan, RunPlan
from fairspec.plan.hardware import LOCAL, Rendezvous
from fairspec.plan.kinds import run_teachers, settings_of
from fairspec.plan.memory import MemoryPlan, memory_lines
from fairspec.plan.new_calls import NewCalls
from fairspec.plan.round_estimate import RoundEstimate
from fairspec.plan.run_layout import exam_layout, training_batch, training_batch_line, training_nodes
from fairspec.plan.stage_settings import ExamSettings, TrainSettings
from fairspec.plan.stage_summary import stage_summary

JSON_SCHEMA_VERSION = 1


def plan_json(plan: Plan, estimates: dict[str, CallEstimate], fresh: dict[str, NewCalls],
              budget: float | None, rendezvous: Rendezvous = LOCAL,
              rounds: dict[str, list[RoundEstimate]] | None = None,
              memory: dict[str, MemoryPlan] | None = None) -> dict[str, Any]:
    """The machine-readable plan; ``schema_version`` changes only with incompatible changes.

    Per run, ``new_calls_per_mistake`` is the lower bound of the requests per mistake no
    earlier run answers and ``new_calls_per_mistake_max`` the upper bound (they differ by
    the reviews early exit may skip; ``new_calls`` has both by role and why). ``totals``
    count the upper bound (``calls``, ``usd``) and the lower (``calls_min``, ``usd_min``),
    later rounds included; ``rounds`` of a run estimates rounds 2..count. ``batch`` is the
    training batch (per device, accumulation, processes, global); ``memory`` (with
    ``memory`` given) the run's memory plan, in bytes.
    """
    rounds = rounds or {}
    data = plan.to_dict()
    for run, run_plan in zip(data["runs"], plan.runs, strict=True):
        new = fresh[run["name"]]
        run["calls"] = estimates[run["name"]].to_dict()
        _add_cached_rates(run["calls"], run_plan)
        run["new_calls_per_mistake"] = new.min
        run["new_calls_per_mistake_max"] = new.max
        run["new_calls"] = {**new.to_dict(), "why": new.why()}
        run["training_nodes"] = training_nodes(plan, run_plan, rendezvous)
        run["exam_layout"] = exam_layout(run_plan)
        run["rounds"] = [r.to_dict() for r in rounds.get(run["name"], [])]
        run["batch"] = training_batch(run_plan)
        if memory is not None:
            run["memory"] = memory[run["name"]].to_dict()
    main = estimates[plan.runs[0].name]
    later = [r for run_rounds in rounds.values() for r in run_rounds]
    data["totals"] = {
        "calls": _total_calls(plan, estimates, fresh, upper=True) + sum(r.calls_max for r in later),
        "calls_min": _total_calls(plan, estimates, fresh, upper=False)
        + sum(r.calls_min for r in later),
        "usd": usd_sum(_total_usd(plan, estimates, fresh, upper=True), [r.usd_max for r in later]),
        "usd_min": usd_sum(_total_usd(plan, estimates, fresh, upper=False),
                         [r.usd_min for r in later]),
        "main_run_calls": main.calls,
        "main_run_usd": main.usd,
        "budget_max_usd": budget,
    }
    return {"schema_version": JSON_SCHEMA_VERSION, **data}


def _total_calls(plan: Plan, estimates: dict[str, CallEstimate], fresh: dict[str, NewCalls], *,
                 upper: bool) -> int:
    return sum((fresh[r.name].max if upper else fresh[r.name].min) * (estimates[r.name].mistakes or 0)
               for r in plan.runs)


def _total_usd(plan: Plan, estimates: dict[str, CallEstimate], fresh: dict[str, NewCalls], *,
               upper: bool = True) -> float | None:
    """Dollars of the new calls of every run (upper: of every call a run may add)."""
    total = 0.0
    for run in plan.runs:
        new = fresh[run.name]
        usd = estimates[run.name].usd_of(new.max_calls if upper else new.min_calls)
        if usd is None:
            if not (new.max if upper else new.min):
                continue
            return None
        total += usd
    return total


def _add_cached_rates(calls: dict[str, Any], run: RunPlan) -> None:
    """Each teacher entry of ``runs[].calls.teachers`` gains ``cached_input_per_mtok``: what
    its input read from the prompt cache is billed at (the input price when the spec gives
    none; None without a price)."""
    prices = {t.name: t.price for t in run_teachers(run)}
    for teacher in calls["teachers"]:
        price = prices.get(teacher["name"])
        teacher["cached_input_per_mtok"] = None if price is None else \
            price.get("cached_input_per_mtok", price.get("input_per_mtok", 0.0))


def print_plan(console: Console, plan: Plan, estimates: dict[str, CallEstimate],
               fresh: dict[str, NewCalls], budget: float | None, rendezvous: Rendezvous = LOCAL,
               rounds: dict[str, list[RoundEstimate]] | None = None,
               memory: dict[str, MemoryPlan] | None = None) -> None:
    """The human view of a plan: the main run in full, variants as one table (``budget``:
    the main run's ``budget.max_usd``)."""
    main = plan.runs[0]
    env = plan.environment
    console.print(f"[bold]Plan[/] for {plan.spec_file}: [bold]{plan.spec_name}[/] "
                  f"(fairspec {plan.fairspec_version})")
    if len(plan.spec_files) > 1:
        console.print("Spec: " + " extends ".join(f["file"] for f in plan.spec_files), markup=False)
    console.print(f"Machine: {env['cuda_devices']} CUDA device(s), "
                  f"vllm {'installed' if env['vllm'] else 'not installed'}")
    console.print(f"Output: {plan.output_dir}  (teacher call store: {plan.call_store})")
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    table = Table(title=f"run {main.name} -> {main.run_dir}", title_justify="left")
    table.add_column("stage")
    table.add_column("fingerprint")
    table.add_column("what it does")
    for stage in main.stages:
        table.add_row(stage.name, stage.short, stage_summary(main, stage.name))
    console.print(table)
    layout = exam_layout(main)
    if layout and layout["engine"] == "vllm":
        console.print(f"Exam and evaluation on vLLM: {layout['data_parallel']} replica(s) x "
                      f"tensor_parallel {layout['tensor_parallel']} = {layout['gpus']} GPU(s)")
    elif layout:
        where = (f"one GPU each = {layout['gpus']} GPU(s)" if layout["device"] == "cuda"
                 else "each on its share of the CPU cores")
        console.print(f"Exam and evaluation on hf: {layout['data_parallel']} replica(s), {where}")
    if (loud := settings_of(main.stage("exam"), ExamSettings).engine_warning()) is not None:
        console.print(f"warning: {loud}", style="bold red", markup=False, soft_wrap=True)
    train = settings_of(main.stage("train"), TrainSettings)
    nodes = training_nodes(plan, main, rendezvous)
    if nodes:
        cfg = train.accelerate_config
        how = (f"accelerate, {cfg['distributed_type']}" if cfg
               else f"torch.distributed.run, {train.strategy} over gloo")
        console.print(f"Training on {train.layout.world_size} process(es) over "
                      f"{train.layout.nodes} node(s) ({how}):", markup=False)
        for node in nodes:
            console.print(f"  node {node['node_rank']} ({node['runs']}): {node['fairspec']}",
                          markup=False, soft_wrap=True)
            console.print(f"    starts: {node['launch']}", markup=False, soft_wrap=True)
        if len(nodes) > 1:
            console.print("  the output folder must be shared by every node (NFS, Lustre): "
                          "node 0 writes the training set there, every node reads it",
                          markup=False)
    console.print(training_batch_line(main), markup=False)
    if memory is not None:
        _print_memory(console, plan, memory)
    print_calls(console, Committee.of(main), estimates[main.name], budget)
    _print_rounds(console, (rounds or {}).get(main.name, []))
    if len(plan.runs) > 1:
        _print_variants(console, plan, estimates, fresh, rounds)


def _print_memory(console: Console, plan: Plan, memory: dict[str, MemoryPlan]) -> None:
    """The main run's memory section in full; a variant's training total when it differs."""
    main = memory[plan.runs[0].name]
    for line in memory_lines(main):
        console.print(line, markup=False)
    for run in plan.runs[1:]:
        mine = memory[run.name]
        if mine.training is None or main.training is None \
                or mine.training.total == main.training.total:
            continue
        verdict = "fits" if mine.training.fits else "DOES NOT FIT"
        console.print(f"  {run.variant or run.name}: training {mine.training.total / 2**30:,.1f} "
                      f"GiB per device ({mine.training.what}) -> {verdict}", markup=False)


def _print_rounds(console: Console, rounds: list[RoundEstimate]) -> None:
    """Rounds 2..count: questions, mistakes, the calls paid and those the store answers."""
    if not rounds:
        return
    table = Table(title="Later rounds (teacher calls beyond round 1)", title_justify="left")
    for column in ("round", "exam covers", "mistakes", "calls paid", "store answers", "USD"):
        table.add_column(column, justify="left" if column == "round" else "right")
    for r in rounds:
        paid = f"{r.calls_max:,}" if r.calls_max == r.calls_min else f"{r.calls_min:,}-{r.calls_max:,}"
        usd = money(r.usd_max) if r.usd_max == r.usd_min else f"{money(r.usd_min)}-{money(r.usd_max)}"
        table.add_row(str(r.round), "-" if r.questions is None else f"{r.questions:,}",
                      "-" if r.mistakes is None else f"{r.mistakes:,}", paid,
                      f"up to {r.store_answers_max:,}", usd)
    console.print(table)
    console.print("Feedback is about each new wrong answer: always paid. A rationale depends only "
                  "on its question: the store answers a question asked in an earlier round (and "
                  "its reviews) for free, unless rounds.fresh_rationales. Mistakes: "
                  + "; ".join(f"round {r.round} {r.mistakes_source}" for r in rounds), markup=False)


def _print_variants(console: Console, plan: Plan, estimates: dict[str, CallEstimate],
                    fresh: dict[str, NewCalls],
                    rounds: dict[str, list[RoundEstimate]] | None = None) -> None:
    main = plan.runs[0]
    owners = plan.shared_stages()
    table = Table(title=f"{len(plan.runs) - 1} variants (sibling runs)", title_justify="left")
    for column in ("run", "changes", "shares with earlier runs", "new calls / mistake"):
        table.add_column(column)
    for run in plan.runs[1:]:
        shared = [s.name for s in run.stages if owners[s.fingerprint][0] != run.name]
        changes = ", ".join([f"{k}={shown(v)}" for k, v in run.overrides.items()]
                            + ([f"seed {run.seed} (repeats {run.repeats})"] if run.repeats else []))
        table.add_row(escape(run.variant or run.name), escape(changes), ", ".join(shared) or "-",
                      fresh[run.name].span)
    console.print(table)
    for run in plan.runs[1:]:
        new = fresh[run.name]
        if new.max == new.min:
            continue
        roles = [r for r, n in new.max_by_role.items() if n]
        said = (f"{new.span} new {roles[0]} calls" if len(roles) == 1
                else f"{new.span} new calls ({new.breakdown()})")
        console.print(f"  {run.variant or run.name}: {said} per mistake: {new.why()}", markup=False)
    low = sum(fresh[r.name].min for r in plan.runs[1:])
    high = sum(fresh[r.name].max for r in plan.runs[1:])
    if high == 0:
        console.print("The variants send no teacher request the main run does not: the call store "
                      f"answers them, so the whole spec costs what {main.name} costs.")
    else:
        span = str(high) if low == high else f"{low}-{high}"
        total = _total_usd(plan, estimates, fresh, upper=True)
        mistakes = estimates[main.name].mistakes
        cost = "" if mistakes is None else (
            f"; the whole spec: up to {_total_calls(plan, estimates, fresh, upper=True):,} calls, "
            f"{money(total)}")
        console.print(f"The variants add {span} new teacher request(s) per mistake beyond the main "
                      f"run (run after it, in this order){cost}.", markup=False)
    later = [(run, r) for run in plan.runs for r in (rounds or {}).get(run.name, [])]
    if later:
        console.print("Later rounds add up to "
                      f"{sum(r.calls_max for _, r in later):,} calls, "
                      f"{money(usd_sum(0.0, [r.usd_max for _, r in later]))} ("
                      + ", ".join(f"{run.variant or run.name} round {r.round}" for run, r in later)
                      + ").", markup=False)
