"""The review stage (eq. 4): each rationale is scored by the other teachers; the policy keeps it or not.

Reviews of one rationale are asked one reviewer after another, in the spec's teacher
order, so that a review that can no longer change the decision is never made (exact
early exit, ``ReviewPolicy.decision``, also exact for real-valued scores); different
rationales are reviewed concurrently.

With ``scoring: logprobs`` a review's score is the expected score of the distribution its
call returned (``fairspec.review.logprobs``); where none came back, its text score
(``scoring_fallback: text``) or none. Each review row then says how it was scored
(``scored_by``) and holds the distribution.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from fairspec.artifacts import atomic_write_json, read_jsonl, write_jsonl
from fairspec.errors import TeacherStopped
from fairspec.progress import attach
from fairspec.prompting import review_prompt, user_messages
from fairspec.review import ReviewPolicy, parse_score
from fairspec.review.logprobs import ScoreReading
from fairspec.stages.context import StageContext
from fairspec.store import CallRecord
from fairspec.store.recorded_answers import About
from fairspec.teachers.committee import (
    BATCH_WORKERS,
    close_committee,
    committee_usage,
    make_committee,
)
from fairspec.teachers.pool import run_per_teacher, stop_for_budget
from fairspec.teachers.recorded_calls import about, check_recorded


def policy_from(settings: dict[str, Any]) -> ReviewPolicy:
    p = settings["policy"]
    return ReviewPolicy(score_range=tuple(p["score_range"]), threshold=p["threshold"],
                        accept=p["accept"], aggregate=p["aggregate"],
                        min_valid_scores=p["min_valid_scores"])


#: How a review's score was read (``scored_by`` in reviews.jsonl, with scoring: logprobs).
SCORED_BY = ("logprobs", "logprobs-forced", "text")


def read_review(record: CallRecord, policy: ReviewPolicy, scoring: dict[str, str]
                ) -> tuple[float | None, str | None, dict[str, float] | None]:
    """(score, how it was read, the distribution) of one review call; score None: invalid."""
    if record.status == "error":
        return None, None, None
    if scoring["method"] == "logprobs" and record.score_logprobs is not None:
        reading = ScoreReading.from_json(record.score_logprobs)
        how = "logprobs" if reading.how == "stated" else "logprobs-forced"
        return (reading.expected, how,
                {str(s): p for s, p in sorted(reading.distribution.items())})
    if scoring["method"] == "logprobs" and scoring["fallback"] == "none":
        return None, None, None
    score = parse_score(record.text, policy.score_range)
    return score, ("text" if score is not None else None), None


def run(ctx: StageContext) -> dict[str, Any]:
    return asyncio.run(_review(ctx))


async def _review(ctx: StageContext) -> dict[str, Any]:
    settings = ctx.settings
    ctx.prepare()
    services = ctx.services
    mistakes = {m["index"]: m for m in read_jsonl(ctx.input("exam", "mistakes.jsonl"))}
    rationales = list(read_jsonl(ctx.input("teach", "rationales.jsonl")))
    usable = [r for r in rationales if r["status"] in ("ok", "truncated") and (r["text"] or "").strip()]
    reviews: list[dict[str, Any]] = []
    decided: dict[tuple[int, str], dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    if not settings["enabled"]:
        for r in usable:
            decided[(r["index"], r["teacher"])] = {"accepted": True, "scores": [], "aggregate": None}
    else:
        policy = policy_from(settings)
        teachers = settings["teachers"]
        order = [t["name"] for t in teachers]
        template = ctx.read_template(settings["template"])
        callers = make_committee(teachers, services.store, services.base_dir,
                                 replay=services.replay, budget=services.budget,
                                 batch_state=ctx.output("batches.json"))
        exclude_self = settings["policy"]["exclude_self"]
        scoring = settings.get("scoring") or {"method": "text", "fallback": "text"}
        with_logprobs = scoring["method"] == "logprobs"

        def prompt_of(rationale: dict[str, Any]) -> str:
            return review_prompt(template, mistakes[rationale["index"]], rationale["text"])

        def review_about(rationale: dict[str, Any], author: str, rank: int) -> About:
            return about(mistakes[rationale["index"]], "review", author=author, rank=rank)

        wanted: dict[str, list[About]] = defaultdict(list)
        for r in usable:
            reviewers = [n for n in order if not (exclude_self and n == r["teacher"])]
            for rank, reviewer in enumerate(reviewers, start=1):
                wanted[reviewer].append(review_about(r, r["teacher"], rank))

        async def review_one(author: str, rationale: dict[str, Any]) -> None:
            prompt = prompt_of(rationale)
            reviewers = [n for n in order if not (exclude_self and n == author)]
            scores: list[float | None] = []
            for i, reviewer in enumerate(reviewers):
                if policy.decision(scores, len(reviewers) - i) is not None:
                    break
                record = await callers[reviewer].ask(user_messages(prompt),
                                                     about=review_about(rationale, author, i + 1))
                score, scored_by, distribution = read_review(record, policy, scoring)
                scores.append(score)
                row = {"index": rationale["index"], "author": author, "reviewer": reviewer,
                       "text": record.text, "status": record.status, "score": score,
                       "key": record.key}
                if with_logprobs:
                    row.update(scored_by=scored_by, distribution=distribution)
                reviews.append(row)
            decided[(rationale["index"], author)] = {
                "accepted": policy.accepts(scores), "scores": scores,
                "aggregate": policy.aggregate_score(scores),
                "reviews_made": len(scores), "reviews_saved": len(reviewers) - len(scores),
            }

        # the pool is keyed by author: each author's rationales go through its own workers,
        # which call the reviewers in turn
        jobs = defaultdict(list)
        for r in usable:
            jobs[r["teacher"]].append(r)
        # an author whose reviewers include a batch teacher keeps all its rationales on
        # their way: each wave of reviews is then one batch (early exit decides the next)
        batched = any(t.get("batch") for t in teachers)
        concurrency = {t["name"]: BATCH_WORKERS if batched else t["concurrency"] for t in teachers}
        for name in order:
            callers[name].count_stored((user_messages(prompt_of(r)), 0) for r in usable
                                       if not (exclude_self and r["teacher"] == name))
        per_author = {a: len(rs) for a, rs in jobs.items()}
        attach(services.progress, ctx.label, callers,  # upper bounds: early exit skips some reviews
               {name: sum(n for a, n in per_author.items() if not (exclude_self and a == name))
                for name in order})
        try:
            check_recorded(callers, dict(wanted))
            fatal = await run_per_teacher(jobs, review_one, concurrency)
        finally:
            await close_committee(callers)
            if services.progress is not None:
                services.progress.finish(ctx.label)
        if fatal:
            stop_for_budget(fatal)
            raise TeacherStopped("; ".join(str(e) for e in fatal.values())
                                 + " (completed reviews are saved; fix it and rerun)")
        usage = committee_usage(callers)
        failed = sum(1 for r in reviews if r["status"] == "error")
        if failed:
            raise TeacherStopped(f"{failed} review call(s) failed after all retries; rerun to "
                                 "retry only those")
    reviews.sort(key=lambda r: (r["index"], r["author"], r["reviewer"]))
    accepted = []
    for r in sorted(usable, key=lambda r: (r["index"], r["teacher"])):
        verdict = decided[(r["index"], r["teacher"])]
        if verdict["accepted"]:
            accepted.append({"index": r["index"], "teacher": r["teacher"], "text": r["text"],
                             "scores": verdict["scores"], "aggregate": verdict["aggregate"]})
    write_jsonl(ctx.output("reviews.jsonl"), reviews)
    write_jsonl(ctx.output("accepted.jsonl"), accepted)
    stats = _stats(rationales, usable, decided, reviews, accepted, usage, settings["enabled"])
    if settings["enabled"]:
        stats["score_range"] = list(settings["policy"]["score_range"])
        scoring = settings.get("scoring") or {"method": "text", "fallback": "text"}
        stats["scoring"] = dict(scoring)
        if scoring["method"] == "logprobs":
            stats.update(_logprob_stats(reviews))
    atomic_write_json(ctx.output("stats.json"), stats)
    ctx.finish({"rationales": len(rationales), "accepted": len(accepted), "reviews": len(reviews)})
    return stats


def _stats(rationales, usable, decided, reviews, accepted, usage, enabled) -> dict[str, Any]:
    """Table 4 counts, the reviewer x author mean-score matrix, invalid scores, savings."""
    authors = sorted({r["teacher"] for r in rationales})
    matrix: dict[str, dict[str, float | None]] = {}
    for reviewer in sorted({r["reviewer"] for r in reviews}):
        matrix[reviewer] = {}
        for author in authors:
            scores = [r["score"] for r in reviews
                      if r["reviewer"] == reviewer and r["author"] == author and r["score"] is not None]
            matrix[reviewer][author] = sum(scores) / len(scores) if scores else None
    return {
        "enabled": enabled,
        "rationales": len(rationales),
        "reviewable": len(usable),
        "accepted": len(accepted),
        "accepted_per_teacher": {a: sum(1 for r in accepted if r["teacher"] == a) for a in authors},
        "rationales_per_teacher": {a: sum(1 for r in rationales if r["teacher"] == a) for a in authors},
        "reviews_made": len(reviews),
        "reviews_saved_by_early_exit": sum(v.get("reviews_saved", 0) for v in decided.values()),
        "invalid_scores": sum(1 for r in reviews if r["score"] is None),
        # text scores are integers; an expected score counts at its nearest integer
        "score_histogram": _histogram(reviews),
        "mean_score_matrix": matrix,  # reviewer -> author -> mean valid score
        "teachers": usage,
    }


def _histogram(reviews: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[int, int] = {}
    for review in reviews:
        if review["score"] is not None:
            nearest = int(review["score"] + 0.5)  # scores are >= 0: round half up
            counts[nearest] = counts.get(nearest, 0) + 1
    return {str(s): counts[s] for s in sorted(counts)}


def _logprob_stats(reviews: list[dict[str, Any]]) -> dict[str, Any]:
    """How each review was scored (the report draws the distributions from the rows)."""
    scored_by = {how: sum(1 for r in reviews if r.get("scored_by") == how) for how in SCORED_BY}
    scored_by["none"] = sum(1 for r in reviews if r.get("scored_by") is None)
    return {"scored_by": scored_by}
