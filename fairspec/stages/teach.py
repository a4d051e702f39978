"""The teach stage (eq. 2-3): every teacher writes a rationale and feedback for every mistake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from fairspec.artifacts import SortedJsonlWriter, read_jsonl, write_stats
from fairspec.errors import TeacherStopped
from fairspec.plan.stage_settings import TeachSettings
from fairspec.progress import attach
from fairspec.prompting import TEACH_ROLES
from fairspec.stages.context import StageContext
from fairspec.store.teacher_requests import TeachRequest, teach_requests
from fairspec.teachers.committee import close_committee, committee_usage, make_committee, workers
from fairspec.teachers.pool import looked_up, run_per_teacher, stop_for_budget
from fairspec.teachers.recorded_calls import about, check_recorded

OUTPUTS = {"rationale": "rationales.jsonl", "feedback": "feedback.jsonl"}


def run(ctx: StageContext) -> dict[str, Any]:
    return asyncio.run(_teach(ctx))


async def _teach(ctx: StageContext) -> dict[str, Any]:
    ctx.prepare()
    services, settings = ctx.services, ctx.settings_as(TeachSettings)
    mistakes_file = ctx.input("exam", "mistakes.jsonl")
    mistakes = sum(1 for _ in read_jsonl(mistakes_file))
    templates = {role: ctx.read_template(ref) for role, ref in settings.templates.items()}
    teachers = settings.teachers
    callers = make_committee(teachers, services.store, services.base_dir, replay=services.replay,
                             budget=services.budget, batch_state=ctx.output("batches.json"))
    # each result is written as it completes; the files are sorted (by question, teacher)
    # at the end without holding every result in memory
    out = {role: SortedJsonlWriter(ctx.output(OUTPUTS[role]), key=_order) for role in TEACH_ROLES}
    counts = {"unusable": 0, "failed": 0}

    # a later round's rationale for a question asked before: the stored one (sample 0, free),
    # or with rounds.fresh_rationales a new sample (paid); feedback is keyed by the answer
    rationale_sample = settings.rationale_sample

    replies: dict[str, dict[str, Any]] = {}
    def items() -> Iterator[TeachRequest]:
        """Every request of one teacher, read from the file as they are taken (the messages
        object is the one looked up ahead and then asked)."""
        return teach_requests(templates, read_jsonl(mistakes_file), rationale_sample)

    def request(job: TeachRequest) -> tuple[list[dict[str, str]], int]:
        return job.messages, job.sample_index

    async def handle(teacher: str, job: TeachRequest) -> None:
        mistake, role, messages, sample_index = job
        record = await callers[teacher].ask(messages, sample_index, about=about(mistake, role))
        out[role].add({
            "index": mistake["index"], "teacher": teacher, "role": role, "text": record.text,
            "status": record.status, "finish_reason": record.finish_reason, "key": record.key,
        })
        counts["unusable"] += record.status != "ok"
        counts["failed"] += record.status == "error"
        if record.status in ("truncated", "empty"):  # a reply the output budget cut, or none
            cut = replies.setdefault(teacher, {"truncated": 0, "empty": 0, "finish_reasons": {}})
            cut[record.status] += 1
            reason = str(record.finish_reason)
            cut["finish_reasons"][reason] = cut["finish_reasons"].get(reason, 0) + 1

    sizes = {t.name: mistakes * len(TEACH_ROLES) for t in teachers}
    for name in sizes:
        callers[name].count_stored(request(job) for job in items())
    attach(services.progress, ctx.label, callers, sizes)
    try:
        check_recorded(callers, {name: [about(job.mistake, job.role) for job in items()]
                                 for name, caller in callers.items() if caller.recorded is not None})
        fatal = await run_per_teacher(
            {name: looked_up(caller, items(), request) for name, caller in callers.items()},
            handle, {t.name: workers(t) for t in teachers}, sizes)
    except BaseException:
        for writer in out.values():
            writer.discard()
        raise
    finally:
        await close_committee(callers)
        if services.progress is not None:
            services.progress.finish(ctx.label)
    if fatal:
        for writer in out.values():
            writer.discard()
        stop_for_budget(fatal)
        raise TeacherStopped("; ".join(f"{exc}" for exc in fatal.values())
                             + " (completed calls are saved; fix it and rerun)")
    written = {role: out[role].finish() for role in TEACH_ROLES}
    usage = committee_usage(callers)
    stats = {
        "mistakes": mistakes,
        "teachers": usage,
        "calls": sum(u["calls"] for u in usage.values()),
        "calls_made": sum(u["made"] for u in usage.values()),
        "usd": None if any(u["usd"] is None for u in usage.values())
        else sum(u["usd"] for u in usage.values()),
        "unusable": counts["unusable"],
        #: per teacher, the replies cut by the output budget (truncated) or with no text
        "cut": replies,
    }
    write_stats(ctx.output("stats.json"), stats)
    if counts["failed"]:  # not done: the store retries exactly these calls on the next run
        raise TeacherStopped(f"{counts['failed']} teacher call(s) failed after all retries (see "
                             f"{ctx.output('stats.json')}); rerun to retry only those")
    ctx.finish({"mistakes": mistakes, **written, "calls_made": stats["calls_made"]})
    return stats


def _order(row: dict[str, Any]) -> tuple[int, str]:
    return row["index"], row["teacher"]
