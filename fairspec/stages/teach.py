"""The teach stage (eq. 2-3): every teacher writes a rationale and feedback for every mistake."""

from __future__ import annotations

import asyncio
from typing import Any

from fairspec.artifacts import atomic_write_json, read_jsonl, write_jsonl
from fairspec.errors import TeacherStopped
from fairspec.progress import attach
from fairspec.prompting import TEACH_ROLES, teach_prompts, user_messages
from fairspec.stages.context import StageContext
from fairspec.teachers.committee import close_committee, committee_usage, make_committee, workers
from fairspec.teachers.pool import run_per_teacher, stop_for_budget
from fairspec.teachers.recorded_calls import about, check_recorded

OUTPUTS = {"rationale": "rationales.jsonl", "feedback": "feedback.jsonl"}


def run(ctx: StageContext) -> dict[str, Any]:
    return asyncio.run(_teach(ctx))


async def _teach(ctx: StageContext) -> dict[str, Any]:
    ctx.prepare()
    services = ctx.services
    mistakes = list(read_jsonl(ctx.input("exam", "mistakes.jsonl")))
    templates = {role: ctx.read_template(ref) for role, ref in ctx.settings["templates"].items()}
    teachers = ctx.settings["teachers"]
    callers = make_committee(teachers, services.store, services.base_dir, replay=services.replay,
                             budget=services.budget, batch_state=ctx.output("batches.json"))
    results: dict[tuple[int, str, str], dict[str, Any]] = {}

    # a later round's rationale for a question asked before: the stored one (sample 0, free),
    # or with rounds.fresh_rationales a new sample (paid); feedback is keyed by the answer
    samples = {"rationale": ctx.settings.get("rationale_sample", 0), "feedback": 0}

    async def handle(teacher: str, job: tuple[dict[str, Any], str, str]) -> None:
        mistake, role, prompt = job
        record = await callers[teacher].ask(user_messages(prompt), samples[role],
                                            about=about(mistake, role))
        results[(mistake["index"], teacher, role)] = {
            "index": mistake["index"], "teacher": teacher, "role": role, "text": record.text,
            "status": record.status, "finish_reason": record.finish_reason, "key": record.key,
        }

    jobs = {}
    for teacher in teachers:
        items = []
        for mistake in mistakes:
            prompts = teach_prompts(templates, mistake)
            items += [(mistake, role, prompts[role]) for role in TEACH_ROLES]
        jobs[teacher["name"]] = items
        callers[teacher["name"]].count_stored((user_messages(prompt), samples[role])
                                             for _, role, prompt in items)
    attach(services.progress, ctx.label, callers, {name: len(items) for name, items in jobs.items()})
    try:
        check_recorded(callers, {name: [about(m, role) for m, role, _ in items]
                                 for name, items in jobs.items()})
        fatal = await run_per_teacher(jobs, handle, {t["name"]: workers(t) for t in teachers})
    finally:
        await close_committee(callers)
        if services.progress is not None:
            services.progress.finish(ctx.label)
    if fatal:
        stop_for_budget(fatal)
        raise TeacherStopped("; ".join(f"{exc}" for exc in fatal.values())
                             + " (completed calls are saved; fix it and rerun)")
    ordered = [results[k] for k in sorted(results)]
    counts = {role: write_jsonl(ctx.output(OUTPUTS[role]), [r for r in ordered if r["role"] == role])
              for role in TEACH_ROLES}
    usage = committee_usage(callers)
    stats = {
        "mistakes": len(mistakes),
        "teachers": usage,
        "calls": sum(u["calls"] for u in usage.values()),
        "calls_made": sum(u["made"] for u in usage.values()),
        "usd": None if any(u["usd"] is None for u in usage.values())
        else sum(u["usd"] for u in usage.values()),
        "unusable": sum(1 for r in ordered if r["status"] != "ok"),
    }
    atomic_write_json(ctx.output("stats.json"), stats)
    failed = sum(1 for r in ordered if r["status"] == "error")
    if failed:  # not done: the store retries exactly these calls on the next run
        raise TeacherStopped(f"{failed} teacher call(s) failed after all retries (see "
                             f"{ctx.output('stats.json')}); rerun to retry only those")
    ctx.finish({"mistakes": len(mistakes), **counts, "calls_made": stats["calls_made"]})
    return stats
