"""Shows a Plan to a person (rich tables) or to a program (stable JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fairspec.dsl.schema import Spec
from fairspec.dsl.variants import shown
from fairspec.plan.estimate import CallEstimate, NewCalls, reviewed_authors
from fairspec.plan.graph import Plan, RunPlan
from fairspec.plan.hardware import (
    LOCAL,
    Rendezvous,
    TrainingLayout,
    exam_engine_warning,
    format_command,
)
from fairspec.plan.memory import MemoryPlan, memory_lines
from fairspec.plan.round_estimate import RoundEstimate
from fairspec.plan.stage_facts import teacher_generation
from fairspec.providers.families import family_for

JSON_SCHEMA_VERSION = 1


def training_nodes(plan: Plan, run: RunPlan, rendezvous: Rendezvous = LOCAL
                   ) -> list[dict[str, Any]]:
    """What each node runs for ``run``'s training: the ``fairspec run`` to type there and
    the launch command it starts (empty when training runs in fairspec's own process)."""
    stage = run.stage("train")
    layout = TrainingLayout.from_settings(stage.settings["layout"])
    if layout.launcher == "inline":
        return []
    train_dir = f"{run.run_dir}/{stage.name}"
    config = f"{train_dir}/accelerate_config.yaml" if layout.launcher == "accelerate" else None
    nodes = []
    for rank in range(layout.nodes):
        here = Rendezvous(rank, rendezvous.master_addr, rendezvous.master_port)
        fairspec = ["fairspec", "run", plan.spec_file]
        if run.variant is not None:
            fairspec += ["--variant", run.variant]
        if layout.nodes > 1:
            fairspec += ["--node-rank", str(rank), "--master-addr", here.master_addr,
                         "--master-port", str(here.master_port)]
        nodes.append({
            "node_rank": rank,
            "runs": "every stage" if rank == 0 else "the train stage only (joins node 0)",
            "fairspec": format_command(fairspec),
            "launch": format_command(layout.command(f"{train_dir}/train_args.json",
                                                    config_file=config, rendezvous=here)),
        })
    return nodes


def exam_layout(run: RunPlan) -> dict[str, Any] | None:
    """The exam's and the evaluation's devices: vLLM's tensor x data parallel, or hf's
    ``data_parallel`` replicas of one device each (None: one hf engine, or recorded)."""
    settings = run.stage("exam").settings
    vllm = settings.get("vllm")
    if vllm:
        tp, dp = vllm["tensor_parallel_size"], vllm.get("data_parallel_size", 1)
    elif settings.get("engine") == "hf" and (settings.get("replicas") or {}).get("replicas", 1) > 1:
        tp, dp = 1, settings["replicas"]["replicas"]
    else:
        return None
    return {"engine": "vllm" if vllm else "hf", "tensor_parallel": tp, "data_parallel": dp,
            "gpus": tp * dp, "device": settings.get("device", "cuda")}


def training_batch(run: RunPlan) -> dict[str, Any]:
    """The training batch said plainly: ``training.batch_size`` is per device, so the global
    batch is per device x accumulation x processes (it grows with the processes)."""
    s = run.stage("train").settings
    per_device, accumulation = s["batch_size"], s["gradient_accumulation_steps"]
    processes = s["layout"]["world_size"]
    return {"per_device": per_device, "accumulation": accumulation, "processes": processes,
            "global": per_device * accumulation * processes,
            "single_process": per_device * accumulation}


def training_batch_line(run: RunPlan) -> str:
    """``Training batch: per device B x accumulation G x processes P = global N``, and what
    one process would take when that differs."""
    b = training_batch(run)
    line = (f"Training batch: per device {b['per_device']} x accumulation {b['accumulation']} x "
            f"processes {b['processes']} = global {b['global']}")
    if b["global"] != b["single_process"]:
        line += (f" (one process would take {b['single_process']}: training.batch_size is per "
                 "device, so the global batch grows with the processes)")
    return line


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
        "usd": _plus(_total_usd(plan, estimates, fresh, upper=True), [r.usd_max for r in later]),
        "usd_min": _plus(_total_usd(plan, estimates, fresh, upper=False),
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


def _plus(total: float | None, more: list[float | None]) -> float | None:
    """A sum of dollars that is unknown when any part is."""
    if total is None or any(m is None for m in more):
        return None
    return total + sum(m for m in more if m is not None)


def _money(value: float | None) -> str:
    return "unknown (no price)" if value is None else f"${value:,.2f}"


def _stage_summary(spec: Spec, run: RunPlan, stage_name: str) -> str:
    stage = run.stage(stage_name)
    if stage.settings.get("round", 1) > 1:
        return _round_summary(stage, _stage_summary_of(spec, run, stage))
    return _stage_summary_of(spec, run, stage)


def _round_summary(stage: Any, text: str) -> str:
    """A later round's stage: what it takes from the round before, then what it does."""
    s, before = stage.settings, f"round {stage.settings['round'] - 1}"
    if stage.kind == "exam":
        covers = "its mistakes" if any(i.artifact == "mistakes.jsonl" for i in stage.inputs) \
            else "the whole train split"
        return f"{before}'s tuned student on {covers}; " + text.split(" on ", 1)[-1]
    if stage.kind == "teach":
        again = ("a new rationale for every question (fresh_rationales)" if s.get("rationale_sample")
                 else "rationales of questions asked before come from the store")
        return f"{text}; {again}"
    if stage.kind == "build" and s.get("accumulate"):
        return f"{text}; with every earlier round's examples"
    if stage.kind == "train":
        start = f"from {before}'s student" if s.get("start_from") == "previous" else "from the base student"
        return f"{text}; {start}"
    return text


def _stage_summary_of(spec: Spec, run: RunPlan, stage: Any) -> str:
    s, name = stage.settings, stage.kind
    if name == "exam" and s.get("recorded"):
        recorded = s["recorded"]
        only = ", only the wrong ones" if recorded["only_mistakes"] else ""
        return (f"answers recorded in {Path(recorded['path']).name} (column "
                f"{recorded['answer']}{only}), by {recorded['match']}")
    if name == "exam":
        sampling = s["sampling"]
        decode = (f"T={sampling['temperature']} top_p={sampling['top_p']} top_k={sampling['top_k']}"
                  if sampling["do_sample"] else "greedy")
        text = (f"{s['model']} on {s['engine']} ({s['engine_reason']}), {s['device']} {s['dtype']}, "
                f"{decode}, {sampling['max_new_tokens']} new tokens")
        if s["vllm"]:
            text += f"; vLLM tensor_parallel_size={s['vllm']['tensor_parallel_size']}"
        return text
    if name == "teach":
        return ", ".join(f"{t['name']} ({t['provider']} {t['model']})" for t in s["teachers"])
    if name == "review":
        if not s["enabled"]:
            return "off: every rationale is kept"
        p = s["policy"]
        scoring = s.get("scoring") or {"method": "text"}
        read = ("scores from log-probabilities (else " + ("the text" if scoring["fallback"] == "text"
                                                          else "none") + ")"
                if scoring["method"] == "logprobs" else "scores from the text")
        return (f"{p['aggregate']} of peer scores {p['accept']} {p['threshold']:g} "
                f"in [{p['score_range'][0]}, {p['score_range'][1]}]"
                f"{', exclude_self' if p['exclude_self'] else ''}, min_valid_scores {p['min_valid_scores']}"
                f"; {read}")
    if name == "build":
        check = (s.get("decontaminate") or {"mode": "off"})["mode"]
        return (f"selection {s['selection']}, templates {s['templates']['rationale']['ref']}"
                + ("" if check == "off" else f"; test questions in the examples: {check}"))
    if name == "train":
        lora = f", LoRA r={s['lora']['r']}" if s["lora"] else ""
        where = ("in process" if s["layout"]["launcher"] == "inline"
                 else f"{s['layout']['world_size']} processes ({s['strategy']})")
        return (f"alpha={s['alpha']:g}, {s['epochs']} epochs, batch {s['batch_size']}x"
                f"{s['gradient_accumulation_steps']}, lr {s['learning_rate']:g}, {s['dtype']}{lora}; "
                f"{where}")
    if name == "evaluate":
        mode = "sampled" if s["sampling"]["do_sample"] else "greedy"
        return f"{s['dataset']['split']} split, {mode}, base {'and tuned' if s['base'] else 'skipped; tuned'}"
    return "report.md, report.html"


def print_plan(console: Console, plan: Plan, specs: dict[str, Spec],
               estimates: dict[str, CallEstimate], fresh: dict[str, NewCalls],
               rendezvous: Rendezvous = LOCAL,
               rounds: dict[str, list[RoundEstimate]] | None = None,
               memory: dict[str, MemoryPlan] | None = None) -> None:
    """The human view of a plan: the main run in full, variants as one table."""
    main = plan.runs[0]
    spec = specs[main.name]
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
        table.add_row(stage.name, stage.short, _stage_summary(spec, main, stage.name))
    console.print(table)
    layout = exam_layout(main)
    if layout and layout["engine"] == "vllm":
        console.print(f"Exam and evaluation on vLLM: {layout['data_parallel']} replica(s) x "
                      f"tensor_parallel {layout['tensor_parallel']} = {layout['gpus']} GPU(s)")
    elif layout:
        where = (f"one GPU each = {layout['gpus']} GPU(s)" if layout["device"] == "cuda"
                 else "each on its share of the CPU cores")
        console.print(f"Exam and evaluation on hf: {layout['data_parallel']} replica(s), {where}")
    if (loud := exam_engine_warning(main.stage("exam").settings)) is not None:
        console.print(f"warning: {loud}", style="bold red", markup=False, soft_wrap=True)
    train = main.stage("train").settings
    nodes = training_nodes(plan, main, rendezvous)
    if nodes:
        cfg = train.get("accelerate_config")
        how = (f"accelerate, {cfg['distributed_type']}" if cfg
               else f"torch.distributed.run, {train['strategy']} over gloo")
        console.print(f"Training on {train['layout']['world_size']} process(es) over "
                      f"{train['layout']['nodes']} node(s) ({how}):", markup=False)
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
    _print_calls(console, spec, estimates[main.name])
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
        usd = _money(r.usd_max) if r.usd_max == r.usd_min else f"{_money(r.usd_min)}-{_money(r.usd_max)}"
        table.add_row(str(r.round), "-" if r.questions is None else f"{r.questions:,}",
                      "-" if r.mistakes is None else f"{r.mistakes:,}", paid,
                      f"up to {r.store_answers_max:,}", usd)
    console.print(table)
    console.print("Feedback is about each new wrong answer: always paid. A rationale depends only "
                  "on its question: the store answers a question asked in an earlier round (and "
                  "its reviews) for free, unless rounds.fresh_rationales. Mistakes: "
                  + "; ".join(f"round {r.round} {r.mistakes_source}" for r in rounds), markup=False)


def _print_calls(console: Console, spec: Spec, est: CallEstimate) -> None:
    per = est.per_mistake
    n = len(spec.teachers)
    if per["review"] and spec.review.jury:
        review = (f" + {per['review']} review (jury of {len(spec.reviewers())}: "
                  + ", ".join(t.name for t in spec.reviewers()) + ")")
    elif per["review"]:
        each = n - 1 if spec.review.exclude_self else n
        excluded = ", exclude_self" if spec.review.exclude_self else ""
        review = f" + {per['review']} review ({n}x{each}{excluded})"
    else:
        review = " + 0 review (review off)"
    low = est.per_mistake_min or per
    floor = (f" at most; at least {low['total']} ({low['review']} review) when early exit "
             "skips every review it can") if low["total"] != per["total"] else ""
    console.print(f"Teacher calls per mistake: {per['rationale']} rationale + "
                  f"{per['feedback']} feedback{review} = [bold]{per['total']}[/]{floor}")
    console.print(f"Mistakes: {est.mistakes if est.mistakes is not None else '?'} ({est.mistakes_source})")
    if est.output_lengths:
        console.print(output_tokens_line(est), markup=False)
    if est.mistakes is None:
        return
    batched = any(t.batch for t in est.teachers)
    table = Table()
    columns = ["teacher", "rationale", "feedback", "review", "calls", "in tokens", "cached in",
               "out tokens", "reasoning", "USD"] + (["mode", "online USD"] if batched else [])
    for column in columns:
        table.add_column(column, justify="left" if column in ("teacher", "mode") else "right")
    billed = {t.name: _billed_columns(spec, t) for _, t in spec.callers()}
    for t in est.teachers:
        mode = (["batch", _money(t.online_usd)] if t.batch else ["online", _money(t.usd)]) \
            if batched else []
        cached, reasoning = billed.get(t.name, ("", ""))
        table.add_row(t.name, f"{t.rationale_calls:,}", f"{t.feedback_calls:,}", f"{t.review_calls:,}",
                      f"{t.calls:,}", f"{t.input_tokens:,}", cached, f"{t.output_tokens:,}",
                      reasoning, _money(t.usd), *mode)
    online_total = _plus(0.0, [t.online_usd if t.batch else t.usd for t in est.teachers])
    table.add_row("[bold]total[/]", "", "", "", f"[bold]{est.calls:,}[/]",
                  f"{sum(t.input_tokens for t in est.teachers):,}", "",
                  f"{sum(t.output_tokens for t in est.teachers):,}", "", f"[bold]{_money(est.usd)}[/]",
                  *(["", _money(online_total)] if batched else []))
    console.print(table)
    if batched:
        console.print(batch_line(spec), markup=False)
    thinking = thinking_usd(spec, est)
    if thinking:
        console.print("Thinking is billed as output and not in USD above: if every call thought "
                      "its whole allowance it would add at most "
                      + ", ".join(f"{name} {_money(usd)}" for name, usd in thinking.items())
                      + " (set reasoning_effort or thinking to bound it).", markup=False)
    console.print("Tokens are estimates (inputs: the templates at 4 characters per token); review "
                  "calls are an upper bound (decided reviews are skipped). Cached in: the price "
                  "of input read from the provider's prompt cache (the USD column counts none "
                  "cached); reasoning: the thinking tokens a call may spend on top of its reply, "
                  "billed as output. The budget reserves each call at its prompt's UTF-8 bytes "
                  "and its whole output budget, thinking included, and settles it as billed.")
    if spec.budget.max_usd is not None and est.usd is not None:
        verdict = "within" if est.usd <= spec.budget.max_usd else "[red]over[/]"
        console.print(f"Budget: max ${spec.budget.max_usd:,.2f}, estimate {verdict} it.")


def thinking_usd(spec: Spec, est: CallEstimate) -> dict[str, float]:
    """Per thinking teacher with a price: the USD its calls add if each thinks its whole
    allowance (the upper bound of what the estimate leaves out)."""
    out: dict[str, float] = {}
    teachers = {t.name: t for _, t in spec.callers()}
    for estimate in est.teachers:
        teacher = teachers.get(estimate.name)
        family = family_for(teacher.provider, teacher.model) if teacher is not None else None
        price = teacher.paid_price() if teacher is not None else None
        if family is None or price is None:
            continue
        allowance = family.allowance(teacher_generation(spec, teacher))
        if allowance:
            out[estimate.name] = estimate.calls * allowance * price.output_per_mtok / 1e6
    return out


def _billed_columns(spec: Spec, teacher: Any) -> tuple[str, str]:
    """A teacher's "cached in" (the price of cached input per Mtok) and "reasoning" (the
    thinking tokens its calls may spend on top of the reply, billed as output) cells."""
    price = teacher.paid_price()
    if price is None:
        cached = "-"
    elif price.cached_input_per_mtok is None:
        cached = f"${price.input_per_mtok:g}/M (= input)"
    else:
        cached = f"${price.cached_input_per_mtok:g}/M"
    family = family_for(teacher.provider, teacher.model)
    allowance = family.allowance(teacher_generation(spec, teacher)) if family is not None else 0
    return cached, f"up to {allowance:,}/call" if allowance else "none"


def _add_cached_rates(calls: dict[str, Any], run: RunPlan) -> None:
    """Each teacher entry of ``runs[].calls.teachers`` gains ``cached_input_per_mtok``: what
    its input read from the prompt cache is billed at (the input price when the spec gives
    none; None without a price)."""
    prices = {t["name"]: t.get("price") for stage in run.stages
              if stage.kind in ("teach", "review") for t in (stage.settings.get("teachers") or ())}
    for teacher in calls["teachers"]:
        price = prices.get(teacher["name"])
        teacher["cached_input_per_mtok"] = None if price is None else \
            price.get("cached_input_per_mtok", price.get("input_per_mtok", 0.0))


def batch_line(spec: Spec) -> str:
    """What batch mode means for this run: prices, and how its reviews are batched."""
    names = ", ".join(t.name for _, t in spec.callers() if t.batch)
    each = max(len(a) for a in reviewed_authors(spec).values()) if spec.review.enabled else 0
    waves = (f" Reviews go in up to {each} waves of batches (early exit: a rationale's next "
             "review is asked only when the scores so far leave it undecided), so the review "
             "stage may wait for up to that many batches; it makes fewer calls than asking "
             "every review at once." if spec.review.enabled and each > 1 else "")
    return (f"Batch mode ({names}): the provider's batch API at batch prices (USD column; "
            f"'online USD' is the same calls online); answers can take up to 24 h.{waves}")


def output_tokens_line(est: CallEstimate) -> str:
    """One line: the output tokens per call the estimate assumed, and where they come from."""
    lengths = est.output_lengths
    if not lengths:
        return ""
    prior = lengths["prior"]
    line = (f"Output tokens per call assumed: rationale {prior['rationale']}, feedback "
            f"{prior['feedback']}, review {prior['review']} ({lengths['prior_source']})")
    capped = [f"{name} {role} {tokens}" for name, roles in lengths["per_teacher"].items()
              for role, tokens in roles.items()
              if tokens < prior[role] and role not in lengths["from_call_store"].get(name, [])]
    if capped:
        line += f"; capped at max_tokens: {', '.join(capped)}"
    measured = lengths["measured"]
    if measured:
        parts = []
        for name, roles in measured.items():
            said = ", ".join(f"{role} {m['mean']:g} ({m['calls']} calls)" for role, m in roles.items())
            parts.append(f"{name}: {said}")
        line += ("\nOutput tokens per call measured in this run's call store, used instead "
                 "of the prior: " + "; ".join(parts) + "; the prior for the rest")
    return line


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
            f"{_money(total)}")
        console.print(f"The variants add {span} new teacher request(s) per mistake beyond the main "
                      f"run (run after it, in this order){cost}.", markup=False)
    later = [(run, r) for run in plan.runs for r in (rounds or {}).get(run.name, [])]
    if later:
        console.print("Later rounds add up to "
                      f"{sum(r.calls_max for _, r in later):,} calls, "
                      f"{_money(_plus(0.0, [r.usd_max for _, r in later]))} ("
                      + ", ".join(f"{run.variant or run.name} round {r.round}" for run, r in later)
                      + ").", markup=False)
