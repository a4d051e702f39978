"""The review stage (eq. 4): each rationale is scored by the other teachers; the policy keeps it or not.

The reviewers are the teachers, or the jury (``review.jury``: models that are not teachers,
and teachers named there); a reviewer never scores its own rationale with exclude_self.
Reviews of one rationale are asked one reviewer after another, in the reviewers' name
order (the order the stage's fingerprint lists them in, so reordering the teachers in a
spec changes no review), so that a review that can no longer change the decision is never
made (exact early exit, ``ReviewPolicy.decision``, also exact for real-valued scores;
``early_exit: false`` asks every reviewer); different rationales are reviewed concurrently.

With ``gold_check`` (report, the default, or require) each rationale's final answer is
read with the task's extractor and compared with the gold answer (``reaches_gold`` in
its review rows and in ``accepted.jsonl``); with require, one that does not reach it is
dropped before any reviewer is asked.

With ``scoring: logprobs`` a review's score is the expected score of the distribution its
call returned (``fairspec.review.logprobs``); where none came back, its text score
(``scoring_fallback: text``) or none. Each review row then says how it was scored
(``scored_by``) and holds the distribution.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fairspec.artifacts import SortedJsonlWriter, read_jsonl, write_stats
from fairspec.errors import StageContractError, TeacherStopped
from fairspec.plan.stage_settings import ReviewScoring, ReviewSettings
from fairspec.progress import attach
from fairspec.prompting import review_head
from fairspec.review import ReviewPolicy, parse_score
from fairspec.review.gold_check import gold_verdict
from fairspec.review.logprobs import ScoreReading
from fairspec.review.policy import policy_from, reviewable
from fairspec.review.tally import Tally
from fairspec.stages.context import StageContext
from fairspec.store import CallRecord
from fairspec.store.recorded_answers import About
from fairspec.store.teacher_requests import review_messages, reviewers_of
from fairspec.teachers.committee import (
    BATCH_WORKERS,
    close_committee,
    committee_usage,
    make_committee,
    workers,
)
from fairspec.teachers.pool import looked_up, run_per_teacher, stop_for_budget
from fairspec.teachers.recorded_calls import about, check_recorded


def read_review(record: CallRecord, policy: ReviewPolicy, scoring: ReviewScoring
                ) -> tuple[float | None, str | None, dict[str, float] | None]:
    """(score, how it was read, the distribution) of one review call; score None: invalid."""
    if record.status == "error":
        return None, None, None
    if scoring.logprobs and record.score_logprobs is not None:
        reading = ScoreReading.from_json(record.score_logprobs)
        how = "logprobs" if reading.how == "stated" else "logprobs-forced"
        return (reading.expected, how,
                {str(s): p for s, p in sorted(reading.distribution.items())})
    if scoring.logprobs and scoring.fallback == "none":
        return None, None, None
    score = parse_score(record.text, policy.score_range)
    return score, ("text" if score is not None else None), None


def run(ctx: StageContext) -> dict[str, Any]:
    return asyncio.run(_review(ctx))


class MistakeCursor:
    """The mistake of a question, read from ``mistakes.jsonl`` as a sorted stream of
    questions asks for it (one row in memory); a question asked out of order reads the
    file into a table once."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._rows = read_jsonl(path)
        self._current: dict[str, Any] | None = None
        self._table: dict[int, dict[str, Any]] | None = None

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self._table is None:
            current = self._current
            while current is None or current["index"] < index:
                current = self._current = next(self._rows, None)
                if current is None:
                    break
            if current is not None and current["index"] == index:
                return current
            self._table = {m["index"]: m for m in read_jsonl(self._path)}
        if index not in self._table:
            raise StageContractError(f"{self._path}: the teach stage wrote a rationale for "
                                     f"question {index}, which is no mistake of this exam (its "
                                     "outputs are from another exam: rerun the teach stage)")
        return self._table[index]


async def _review(ctx: StageContext) -> dict[str, Any]:
    settings = ctx.settings_as(ReviewSettings)
    ctx.prepare()
    mistakes_file = ctx.input("exam", "mistakes.jsonl")
    rationales_file = ctx.input("teach", "rationales.jsonl")
    tally = Tally()
    for r in read_jsonl(rationales_file):  # one pass to count: the rationales stay on disk
        tally.rationales[r["teacher"]] += 1
        tally.reviewable[r["teacher"]] += reviewable(r)
    # rows are written as they are decided and sorted at the end, never all in memory
    reviews_out = SortedJsonlWriter(ctx.output("reviews.jsonl"),
                                    key=lambda r: (r["index"], r["author"], r["reviewer"]))
    accepted_out = SortedJsonlWriter(ctx.output("accepted.jsonl"),
                                     key=lambda r: (r["index"], r["teacher"]))

    def accept(rationale: dict[str, Any], scores: list[float | None],
               aggregate: float | None) -> None:
        tally.accepted[rationale["teacher"]] += 1
        accepted_out.add({"index": rationale["index"], "teacher": rationale["teacher"],
                          "text": rationale["text"], "scores": scores, "aggregate": aggregate,
                          "reaches_gold": rationale["reaches_gold"]})

    # a plan compiled before the gold check has no answer settings: the check is off
    gold_check = settings.checks_gold
    answer = settings.answer.to_mapping() if settings.answer is not None else {}

    def of_author(author: str | None, *, dropped: bool = False
                  ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(mistake, rationale) of each usable rationale by ``author`` (None: all), read
        from the files as they are taken, the rationale with its ``reaches_gold``; those
        the gold check drops (``dropped``) or those it keeps."""
        cursor = MistakeCursor(mistakes_file)
        for r in read_jsonl(rationales_file):
            if reviewable(r) and author in (None, r["teacher"]):
                mistake = cursor[r["index"]]
                reaches = gold_verdict(gold_check, r["text"], mistake, answer)
                if (gold_check == "require" and reaches is False) == dropped:
                    yield mistake, {**r, "reaches_gold": reaches}

    if gold_check == "require":  # dropped before review: no reviewer is asked about them
        for _, r in of_author(None, dropped=True):
            tally.drop_for_gold(r["teacher"])
    usage: dict[str, Any] = {}
    try:
        if not settings.enabled:
            for _, r in of_author(None):
                accept(r, [], None)
                tally.decided(r["teacher"], r["reaches_gold"], True)
        else:
            usage = await _review_all(ctx, settings, tally, of_author, reviews_out, accept)
    except BaseException:
        reviews_out.discard()
        accepted_out.discard()
        raise
    written = {"reviews": reviews_out.finish(), "accepted": accepted_out.finish()}
    stats = tally.stats(usage, settings.enabled)
    if gold_check != "off":
        stats.update(tally.gold_stats())
    if settings.enabled and settings.policy is not None and settings.scoring is not None:
        stats["score_range"] = list(settings.policy.score_range)
        stats["scoring"] = settings.scoring.to_mapping()
        if settings.scoring.logprobs:
            stats.update(tally.logprob_stats())
    write_stats(ctx.output("stats.json"), stats)
    ctx.finish({"rationales": stats["rationales"], "accepted": written["accepted"],
                "reviews": written["reviews"]})
    return stats


async def _review_all(ctx: StageContext, settings: ReviewSettings, tally: Tally,
                      of_author: Callable[[str | None], Iterator[tuple[dict[str, Any], dict[str, Any]]]],
                      reviews_out: SortedJsonlWriter,
                      accept: Callable[[dict[str, Any], list[float | None], float | None], None],
                      ) -> dict[str, Any]:
    """Every usable rationale through its reviewers (early exit); the committee's usage."""
    services = ctx.services
    if settings.policy is None or settings.template is None or settings.scoring is None \
            or settings.teachers is None:
        raise StageContractError(f"stage {ctx.stage.name}: a review without its rule, prompt "
                                 "or reviewers (compile the plan again)")
    plan_review = settings.to_mapping()  # what the shared recipes read (reviewers_of, policy_from)
    policy = policy_from(plan_review)
    teachers = settings.teachers
    order = sorted(t.name for t in teachers)  # the fingerprint's order, whatever the spec's
    early_exit = settings.early_exit
    template = ctx.read_template(settings.template)
    callers = make_committee(teachers, services.store, services.base_dir,
                             replay=services.replay, budget=services.budget,
                             batch_state=ctx.output("batches.json"))
    scoring = settings.scoring
    with_logprobs = scoring.logprobs

    def review_about(mistake: dict[str, Any], author: str, rank: int) -> About:
        return about(mistake, "review", author=author, rank=rank)

    def asked(author: str) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[dict[str, str]]]]:
        """(mistake, rationale, the review's messages) of each of ``author``'s rationales:
        one messages object, looked up ahead for every reviewer and then asked of each."""
        for mistake, rationale in of_author(author):
            yield mistake, rationale, review_messages(template, mistake, rationale["text"])

    async def review_one(author: str,
                         job: tuple[dict[str, Any], dict[str, Any], list[dict[str, str]]]) -> None:
        mistake, rationale, prompt = job
        reviewers = panel[author]
        head = review_head(template, mistake, prompt[0]["content"])  # cached by some APIs
        scores: list[float | None] = []
        for i, reviewer in enumerate(reviewers):
            if early_exit and policy.decision(scores, len(reviewers) - i) is not None:
                break
            record = await callers[reviewer].ask(prompt, about=review_about(mistake, author, i + 1),
                                                 cache_prefix=head)
            score, scored_by, distribution = read_review(record, policy, scoring)
            scores.append(score)
            row = {"index": rationale["index"], "author": author, "reviewer": reviewer,
                   "text": record.text, "status": record.status, "score": score,
                   "key": record.key, "reaches_gold": rationale["reaches_gold"]}
            if with_logprobs:
                row.update(scored_by=scored_by, distribution=distribution)
            reviews_out.add(row)
            tally.review(row)
        tally.saved += len(reviewers) - len(scores)
        accepted = policy.accepts(scores)
        if accepted:
            accept(rationale, scores, policy.aggregate_score(scores))
        tally.decided(author, rationale["reaches_gold"], accepted)

    authors = sorted(tally.rationales)
    panel = {author: reviewers_of(plan_review, author) for author in authors}  # in asking order
    # an author whose reviewers include a batch teacher keeps all its rationales on
    # their way: each wave of reviews is then one batch (early exit decides the next)
    batched = any(t.batch for t in teachers)
    per_reviewer = {t.name: workers(t) for t in teachers}
    # an author's rationales go through as many workers as its busiest reviewer keeps
    concurrency = {author: BATCH_WORKERS if batched else
                   max((per_reviewer[name] for name in panel[author]), default=1)
                   for author in authors}
    for name in order:
        callers[name].count_stored((job[2], 0) for author in authors if name in panel[author]
                                   for job in asked(author))
    per_author = {author: n - tally.dropped[author] for author, n in tally.reviewable.items()
                  if n - tally.dropped[author]}
    attach(services.progress, ctx.label, callers,  # upper bounds: early exit skips some reviews
           {name: sum(n for a, n in per_author.items() if name in panel[a]) for name in order})
    # the pool is keyed by author: each author's rationales go through its own workers,
    # which call the reviewers in turn; the reviewers' calls are looked up ahead
    jobs = {author: looked_up([callers[name] for name in panel[author]], asked(author),
                              lambda job: (job[2], 0))
            for author in per_author}
    try:
        recorded = {name for name in order if callers[name].recorded is not None}
        if recorded:
            wanted: dict[str, list[About]] = defaultdict(list)
            for mistake, r in of_author(None):
                for rank, reviewer in enumerate(panel[r["teacher"]], start=1):
                    if reviewer in recorded:
                        wanted[reviewer].append(review_about(mistake, r["teacher"], rank))
            check_recorded(callers, dict(wanted))
        fatal = await run_per_teacher(jobs, review_one, concurrency, dict(per_author))
    finally:
        await close_committee(callers)
        if services.progress is not None:
            services.progress.finish(ctx.label)
    if fatal:
        stop_for_budget(fatal)
        raise TeacherStopped("; ".join(str(e) for e in fatal.values())
                             + " (completed reviews are saved; fix it and rerun)")
    if tally.failed:
        raise TeacherStopped(f"{tally.failed} review call(s) failed after all retries; rerun to "
                             "retry only those")
    return committee_usage(callers)
