"""The teach stage (eq. 2-3): every teacher writes a rationale and feedback for every mistake."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fairspec.artifacts import (
    atomic_write_json,
    prepare_stage_folder,
    read_jsonl,
    write_jsonl,
    write_manifest,
)
from fairspec.errors import FairspecError
from fairspec.plan.graph import RunPlan
from fairspec.progress import TeacherProgress, attach
from fairspec.resources import resolve_path
from fairspec.store import CallStore
from fairspec.store.replay import Replay
from fairspec.teachers.budget import Budget
from fairspec.teachers.committee import close_committee, make_committee
from fairspec.teachers.pool import run_per_teacher, stop_for_budget
from fairspec.templates import render

ROLES = ("rationale", "feedback")
OUTPUTS = {"rationale": "rationales.jsonl", "feedback": "feedback.jsonl"}


class TeacherStopped(FairspecError):
    """A teacher stage could not finish (a fatal provider error, or calls that kept failing);
    every completed call is kept in the store."""


def user_messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def teach_prompts(templates: dict[str, str], mistake: dict[str, Any]) -> dict[str, str]:
    """The rendered P_rt(x) and P_fb(x, r', y) for one mistake."""
    fields = mistake["fields"]
    return {
        "rationale": render(templates["rationale"], fields, name="prompts.rationale"),
        "feedback": render(templates["feedback"], {**fields, "student_answer": mistake["output"],
                                                   "gold_answer": mistake["gold_text"]},
                           name="prompts.feedback"),
    }


def load_templates(refs: dict[str, dict[str, str]], base_dir: Path) -> dict[str, str]:
    return {role: resolve_path(ref["ref"], base_dir).read_text(encoding="utf-8")
            for role, ref in refs.items()}


def run_teach(run: RunPlan, base_dir: Path, folder: Path, store: CallStore, *,
              replay: Replay | None = None, progress: TeacherProgress | None = None,
              budget: Budget | None = None) -> dict[str, Any]:
    return asyncio.run(_teach(run, base_dir, folder, store, replay=replay, progress=progress,
                              budget=budget))


async def _teach(run: RunPlan, base_dir: Path, folder: Path, store: CallStore, *,
                 replay: Replay | None, progress: TeacherProgress | None,
                 budget: Budget | None) -> dict[str, Any]:
    started = time.time()
    stage = run.stage("teach")
    prepare_stage_folder(folder, stage.fingerprint)
    mistakes = list(read_jsonl(Path(run.run_dir) / "exam" / "mistakes.jsonl"))
    templates = load_templates(stage.settings["templates"], base_dir)
    teachers = stage.settings["teachers"]
    callers = make_committee(teachers, store, base_dir, replay=replay, budget=budget)
    results: dict[tuple[int, str, str], dict[str, Any]] = {}

    async def handle(teacher: str, job: tuple[dict[str, Any], str, str]) -> None:
        mistake, role, prompt = job
        record = await callers[teacher].ask(user_messages(prompt))
        results[(mistake["index"], teacher, role)] = {
            "index": mistake["index"], "teacher": teacher, "role": role, "text": record.text,
            "status": record.status, "finish_reason": record.finish_reason, "key": record.key,
        }

    jobs = {}
    for teacher in teachers:
        items = []
        for mistake in mistakes:
            prompts = teach_prompts(templates, mistake)
            items += [(mistake, role, prompts[role]) for role in ROLES]
        jobs[teacher["name"]] = items
        callers[teacher["name"]].count_stored(user_messages(prompt) for _, _, prompt in items)
    attach(progress, "teach", callers, {name: len(items) for name, items in jobs.items()})
    try:
        fatal = await run_per_teacher(jobs, handle, {t["name"]: t["concurrency"] for t in teachers})
    finally:
        await close_committee(callers)
        if progress is not None:
            progress.finish("teach")
    if fatal:
        stop_for_budget(fatal)
        raise TeacherStopped("; ".join(f"{exc}" for exc in fatal.values())
                             + " (completed calls are saved; fix it and rerun)")
    ordered = [results[k] for k in sorted(results)]
    counts = {role: write_jsonl(folder / OUTPUTS[role], [r for r in ordered if r["role"] == role])
              for role in ROLES}
    usage = {name: caller.usage.to_dict() for name, caller in callers.items()}
    stats = {
        "mistakes": len(mistakes),
        "teachers": usage,
        "calls": sum(u["calls"] for u in usage.values()),
        "calls_made": sum(u["made"] for u in usage.values()),
        "usd": None if any(u["usd"] is None for u in usage.values())
        else sum(u["usd"] for u in usage.values()),
        "unusable": sum(1 for r in ordered if r["status"] != "ok"),
    }
    atomic_write_json(folder / "stats.json", stats)
    failed = sum(1 for r in ordered if r["status"] == "error")
    if failed:  # not done: the store retries exactly these calls on the next run
        raise TeacherStopped(f"{failed} teacher call(s) failed after all retries (see "
                             f"{folder / 'stats.json'}); rerun to retry only those")
    write_manifest(folder, stage="teach", fingerprint=stage.fingerprint,
                   inputs={"exam": run.stage("exam").fingerprint},
                   outputs=["rationales.jsonl", "feedback.jsonl", "stats.json"],
                   counts={"mistakes": len(mistakes), **counts, "calls_made": stats["calls_made"]},
                   started=started)
    return stats
