"""A run's teacher calls said for a person: the calls per mistake, the cost table, the output
lengths assumed, batch mode and what thinking may add."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from fairspec.plan.committee import Committee
from fairspec.plan.estimate import CallEstimate
from fairspec.plan.stage_settings import TeacherSettings
from fairspec.providers.families import family_for


def usd_sum(total: float | None, more: list[float | None]) -> float | None:
    """A sum of dollars that is unknown when any part is."""
    if total is None or any(m is None for m in more):
        return None
    return total + sum(m for m in more if m is not None)


def money(value: float | None) -> str:
    return "unknown (no price)" if value is None else f"${value:,.2f}"


def print_calls(console: Console, committee: Committee, est: CallEstimate,
                budget_usd: float | None) -> None:
    """The run's calls per mistake, their cost by teacher and against ``budget_usd``."""
    per = est.per_mistake
    n = len(committee.teachers)
    if per["review"] and committee.jury:
        review = (f" + {per['review']} review (jury of {len(committee.jury)}: "
                  + ", ".join(committee.jury) + ")")
    elif per["review"]:
        each = n - 1 if committee.exclude_self else n
        excluded = ", exclude_self" if committee.exclude_self else ""
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
    billed = {t.name: _billed_columns(t) for t in committee.callers}
    for t in est.teachers:
        mode = (["batch", money(t.online_usd)] if t.batch else ["online", money(t.usd)]) \
            if batched else []
        cached, reasoning = billed.get(t.name, ("", ""))
        table.add_row(t.name, f"{t.rationale_calls:,}", f"{t.feedback_calls:,}", f"{t.review_calls:,}",
                      f"{t.calls:,}", f"{t.input_tokens:,}", cached, f"{t.output_tokens:,}",
                      reasoning, money(t.usd), *mode)
    online_total = usd_sum(0.0, [t.online_usd if t.batch else t.usd for t in est.teachers])
    table.add_row("[bold]total[/]", "", "", "", f"[bold]{est.calls:,}[/]",
                  f"{sum(t.input_tokens for t in est.teachers):,}", "",
                  f"{sum(t.output_tokens for t in est.teachers):,}", "", f"[bold]{money(est.usd)}[/]",
                  *(["", money(online_total)] if batched else []))
    console.print(table)
    if batched:
        console.print(batch_line(committee), markup=False)
    thinking = thinking_usd(committee, est)
    if thinking:
        console.print("Thinking is billed as output and not in USD above: if every call thought "
                      "its whole allowance it would add at most "
                      + ", ".join(f"{name} {money(usd)}" for name, usd in thinking.items())
                      + " (set reasoning_effort or thinking to bound it).", markup=False)
    console.print("Tokens are estimates (inputs: the templates at 4 characters per token); review "
                  "calls are an upper bound (decided reviews are skipped). Cached in: the price "
                  "of input read from the provider's prompt cache (the USD column counts none "
                  "cached); reasoning: the thinking tokens a call may spend on top of its reply, "
                  "billed as output. The budget reserves each call at its prompt's UTF-8 bytes "
                  "and its whole output budget, thinking included, and settles it as billed.")
    if budget_usd is not None and est.usd is not None:
        verdict = "within" if est.usd <= budget_usd else "[red]over[/]"
        console.print(f"Budget: max ${budget_usd:,.2f}, estimate {verdict} it.")


def thinking_usd(committee: Committee, est: CallEstimate) -> dict[str, float]:
    """Per thinking teacher with a price: the USD its calls add if each thinks its whole
    allowance (the upper bound of what the estimate leaves out)."""
    out: dict[str, float] = {}
    teachers = {t.name: t for t in committee.callers}
    for estimate in est.teachers:
        teacher = teachers.get(estimate.name)
        family = family_for(teacher.provider, teacher.model) if teacher is not None else None
        price = teacher.price if teacher is not None else None
        if teacher is None or family is None or price is None:
            continue
        allowance = family.allowance(_generation(teacher))
        if allowance:
            out[estimate.name] = estimate.calls * allowance * price["output_per_mtok"] / 1e6
    return out


def _generation(teacher: TeacherSettings) -> dict[str, Any]:
    """A teacher's generation settings, without what a stage adds for its own calls (the
    provenance of recorded answers, a reviewer's request for log-probabilities)."""
    return {k: v for k, v in teacher.generation.items() if k not in ("recorded", "score_logprobs")}


def _billed_columns(teacher: TeacherSettings) -> tuple[str, str]:
    """A teacher's "cached in" (the price of cached input per Mtok) and "reasoning" (the
    thinking tokens its calls may spend on top of the reply, billed as output) cells."""
    price = teacher.price
    if price is None:
        cached = "-"
    elif price.get("cached_input_per_mtok") is None:
        cached = f"${price['input_per_mtok']:g}/M (= input)"
    else:
        cached = f"${price['cached_input_per_mtok']:g}/M"
    family = family_for(teacher.provider, teacher.model)
    allowance = family.allowance(_generation(teacher)) if family is not None else 0
    return cached, f"up to {allowance:,}/call" if allowance else "none"


def batch_line(committee: Committee) -> str:
    """What batch mode means for this run: prices, and how its reviews are batched."""
    names = ", ".join(t.name for t in committee.callers if t.batch)
    enabled = committee.review.enabled
    each = max(len(a) for a in committee.reviewed().values()) if enabled else 0
    waves = (f" Reviews go in up to {each} waves of batches (early exit: a rationale's next "
             "review is asked only when the scores so far leave it undecided), so the review "
             "stage may wait for up to that many batches; it makes fewer calls than asking "
             "every review at once." if enabled and each > 1 else "")
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
