"""The plan's teacher-call arithmetic, token and cost estimate.

Per mistake, each of N teachers writes one rationale and one feedback, and each
rationale is scored by the other N-1 teachers (all N without exclude_self): with
exclude_self, N + N + N(N-1) calls, 12 for the paper's three teachers; 2N without
review. The mistake count is measured when the run's exam already finished, else
estimated as train rows x --mistake-rate.

Tokens. Inputs are the real templates rendered with texts of the dataset's typical
lengths (4 characters per token). Outputs per call are the priors measured on the paper
authors' released records (:mod:`fairspec.plan.priors`), capped at max_tokens; once this
run's calls are in the call store, each teacher's measured mean per role replaces them
(:func:`measured_output_tokens`). Costs use each teacher's price.

Early exit. The review stage asks a rationale's reviewers one after another and stops
when the verdict is certain (unless ``review.early_exit`` is false: then all N(N-1) are
asked, exactly), so the review calls above are an upper bound;
:func:`review_reach` says, exactly, which reviewer positions are always asked and which
may be asked. Variants share the call store: a request an earlier run made is free, but
a review that the earlier run's early exit skipped is not there. So the new calls of a
run (:func:`unique_calls_per_mistake`) are a range: at least the requests this run
always makes and no earlier run can have made; at most the requests this run may make
that no earlier run surely made (the variants run after the runs above them, as
``fairspec run`` runs them).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any

from fairspec.dsl.loader import template_ref
from fairspec.dsl.schema import Spec
from fairspec.errors import FairspecError
from fairspec.hashing import canonical_json, sha256_text
from fairspec.plan.graph import Plan, RunPlan
from fairspec.plan.priors import (
    ROLES,
    MeasuredLength,
    as_json,
    mean_output_tokens,
    prior_output_tokens,
    prior_source,
)
from fairspec.plan.stage_facts import teacher_generation
from fairspec.prompting import TEACH_ROLES, review_prompt, teach_prompts, user_messages
from fairspec.providers.registry import provider_kind
from fairspec.resources import resolve_path
from fairspec.review import ReviewPolicy
from fairspec.store import CallIdentity, completed_calls, default_store_path
from fairspec.store.recorded_answers import RecordedTable
from fairspec.tasks.data import DATA_SUFFIXES, data_suffix, read_text
from fairspec.tasks.kinds import task_kind
from fairspec.templates import render

CHARS_PER_TOKEN = 4.0
#: Rows of the hub datasets the paper used (paper Table 6), for a plan made before any download.
KNOWN_TRAIN_ROWS = {
    "openai/gsm8k": 7473,
    "ChilleD/SVAMP": 700,
    "ChilleD/StrategyQA": 1603,
    "lucasmccabe/logiqa": 7376,
}
#: Output lengths are measured on the calls of at most this many mistakes (the first ones of
#: the exam's mistakes.jsonl: the teach stage works through them in that order).
MEASURE_MISTAKES = 500
#: Score sequences enumerated per reviewer position before the analysis stays conservative.
MAX_PREFIXES = 20_000


@dataclass(frozen=True)
class TeacherEstimate:
    name: str
    rationale_calls: int
    feedback_calls: int
    review_calls: int
    input_tokens: int
    output_tokens: int
    usd: float | None
    #: role -> {"input": tokens, "output": tokens} of one call
    per_call: dict[str, dict[str, int]] = field(default_factory=dict)
    #: role -> dollars of one call (None: no price known)
    usd_per_call: dict[str, float | None] = field(default_factory=dict)
    #: asked through the provider's batch API: ``usd`` is at batch prices, ``online_usd``
    #: what the same calls would cost online (None: not a batch teacher, or unknown)
    batch: bool = False
    online_usd: float | None = None
    #: what it is asked for: rationale and feedback (a teacher), review (a reviewer)
    roles: tuple[str, ...] = ROLES

    @property
    def calls(self) -> int:
        return self.rationale_calls + self.feedback_calls + self.review_calls


@dataclass(frozen=True)
class CallEstimate:
    """The teacher calls, tokens and cost of one run.

    ``per_mistake`` counts every call (reviews at most: early exit skips some);
    ``per_mistake_min`` counts the reviews early exit can never skip. ``output_lengths``
    says what each teacher's output tokens per call were taken to be, and from where.
    """

    run: str
    mistakes: int | None
    mistakes_source: str
    train_rows: int | None
    per_mistake: dict[str, int]
    teachers: list[TeacherEstimate] = field(default_factory=list)
    per_mistake_min: dict[str, int] = field(default_factory=dict)
    output_lengths: dict[str, Any] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.teachers)

    @property
    def usd(self) -> float | None:
        costs = [t.usd for t in self.teachers]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)

    def usd_of(self, calls_per_mistake: Mapping[tuple[str, str], int]) -> float | None:
        """Dollars of these calls per mistake ((teacher, role) -> count) over every mistake."""
        if self.mistakes is None:
            return None
        by_name = {t.name: t for t in self.teachers}
        total = 0.0
        for (teacher, role), count in calls_per_mistake.items():
            if not count:
                continue
            cost = by_name[teacher].usd_per_call.get(role)
            if cost is None:
                return None
            total += cost * count
        return total * self.mistakes

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(calls=self.calls, usd=self.usd, assumptions={
            "chars_per_token": CHARS_PER_TOKEN,
            "output_tokens": self.output_lengths,
            "student_answer": "0.6 x exam max_new_tokens",
        })
        del data["output_lengths"]
        for teacher, obj in zip(data["teachers"], self.teachers, strict=True):
            teacher["calls"] = obj.calls
        return data


def calls_per_mistake(n_teachers: int, review_enabled: bool, exclude_self: bool,
                      reviews: int | None = None) -> dict[str, int]:
    """{"rationale": N, "feedback": N, "review": N(N-1) or N*N or 0, "total": ...};
    ``reviews``: the review calls per mistake when a jury reviews (:func:`reviewed_authors`)."""
    if not review_enabled:
        reviews = 0
    elif reviews is None:
        reviews = n_teachers * (n_teachers - 1 if exclude_self else n_teachers)
    counts = {"rationale": n_teachers, "feedback": n_teachers, "review": reviews}
    counts["total"] = sum(counts.values())
    return counts


def reviewed_authors(spec: Spec) -> dict[str, list[str]]:
    """Each model the spec calls (teachers, then declared jurors) -> the teachers whose
    rationales it reviews (none when review is off or it is not a reviewer)."""
    reviewers = {t.name for t in spec.reviewers()} if spec.review.enabled else set()
    exclude_self = spec.review.exclude_self
    return {t.name: [a.name for a in spec.teachers if t.name in reviewers
                     and not (exclude_self and a.name == t.name)]
            for _, t in spec.callers()}


def count_train_rows(spec: Spec, base_dir: Path) -> int | None:
    """Train rows after the limit: counted from local data, or known for the paper's hub ids."""
    ds = spec.task.dataset
    rows: int | None = None
    if ds.hf is not None and ds.train_split == "train":
        rows = KNOWN_TRAIN_ROWS.get(ds.hf)
    elif ds.path is not None:
        file = _local_split_file(spec, base_dir, ds.train_split)
        rows = len(_read_rows(file, limit=None)) if file else None
    if ds.limit.train is not None:
        rows = ds.limit.train if rows is None else min(rows, ds.limit.train)
    return rows


def _local_split_file(spec: Spec, base_dir: Path, split: str) -> Path | None:
    local = resolve_path(spec.task.dataset.path or "", base_dir)
    if local.is_file():
        return local
    for suffix in DATA_SUFFIXES:
        if (local / f"{split}{suffix}").is_file():
            return local / f"{split}{suffix}"
    return None


def _read_rows(file: Path, limit: int | None = 200) -> list[dict[str, Any]]:
    """Rows of a local jsonl/json file (others: none; the estimate then uses typical lengths)."""
    suffix = data_suffix(file).removesuffix(".gz")
    try:
        if suffix == ".jsonl":
            rows = [json.loads(line) for line in read_text(file).splitlines() if line.strip()]
            return rows[:limit] if limit else rows
        if suffix == ".json":
            data = json.loads(read_text(file))
            rows = data if isinstance(data, list) else []
            return rows[:limit] if limit else rows
    except (OSError, ValueError, EOFError):
        return []
    return []


def field_chars(spec: Spec, base_dir: Path) -> dict[str, int]:
    """Mean characters per template field, measured on local data where possible."""
    chars = dict(task_kind(spec.task.kind).field_chars)  # typical lengths, per task kind
    if spec.task.dataset.path is None:
        return chars
    file = _local_split_file(spec, base_dir, spec.task.dataset.train_split)
    rows = _read_rows(file) if file else []
    for name, column in spec.task.fields.items():
        values = [row.get(column) for row in rows if isinstance(row, dict) and column in row]
        if values:
            chars[name] = int(sum(len(json.dumps(v, ensure_ascii=False)) for v in values) / len(values))
    return chars


def _filler(n_chars: int) -> str:
    return ("word " * (max(n_chars, 1) // 5 + 1))[: max(n_chars, 1)]


def _prompt_tokens(spec: Spec, base_dir: Path, role: str, extra: dict[str, int]) -> int:
    chars = field_chars(spec, base_dir)
    variables: dict[str, Any] = {}
    for name in spec.task.fields:
        if name == "answer":
            continue
        if name == "options":
            variables[name] = [_filler(chars.get(name, 400) // 4)] * 4
        else:
            variables[name] = _filler(chars.get(name, 100))
    variables.update({k: _filler(v) for k, v in extra.items()})
    source = resolve_path(template_ref(spec, role), base_dir).read_text(encoding="utf-8")
    return int(len(render(source, variables, name=role)) / CHARS_PER_TOKEN) + 8


def estimate_run(
    spec: Spec, base_dir: Path, run: RunPlan, *, mistake_rate: float = 0.5,
    mistakes: int | None = None, call_store: str | os.PathLike[str] | None = None,
) -> CallEstimate:
    """Calls, tokens and cost of one run, for a measured or estimated number of mistakes.

    ``call_store`` (default: the plan's, ``calls.sqlite`` beside the run folder): where this
    run's calls, once made, give the measured output lengths."""
    train_rows = count_train_rows(spec, base_dir)
    if mistakes is not None:
        source = "given"
    else:
        measured = measured_mistakes(run)
        listed = recorded_mistakes(run, base_dir)
        if measured is not None:
            mistakes, source = measured, "measured (the exam of this run has finished)"
        elif listed is not None:
            mistakes, source = listed, "the recorded exam's wrong answers"
        elif train_rows is not None:
            mistakes = round(train_rows * mistake_rate)
            source = f"estimated: {train_rows} train rows x mistake rate {mistake_rate}"
        else:
            source = "unknown: give --mistakes N (the train size of this hub dataset is not known)"
    n = len(spec.teachers)
    reviewed = reviewed_authors(spec)
    per = calls_per_mistake(n, spec.review.enabled, spec.review.exclude_self,
                            sum(len(a) for a in reviewed.values()))
    reach = _review_reach_of(run)
    teacher_names = {t.name for t in spec.teachers}
    callers = [t for _, t in spec.callers()]
    per_min = dict(per)
    per_min["review"] = sum(1 for a in reach for always, _ in reach[a] if always)
    per_min["total"] = per_min["rationale"] + per_min["feedback"] + per_min["review"]
    measured_len = measured_output_tokens(run, base_dir, call_store)
    kind = spec.task.kind
    lengths: dict[str, dict[str, int]] = {}
    from_store: dict[str, list[str]] = {}
    for teacher in callers:
        gen = teacher_generation(spec, teacher)
        lengths[teacher.name] = prior_output_tokens(kind, gen["max_tokens"])
        found = measured_len.get(teacher.name, {})
        for role in ROLES:
            if role in found:
                lengths[teacher.name][role] = max(1, round(found[role].mean))
                from_store.setdefault(teacher.name, []).append(role)
    estimates = []
    answer_chars = int(0.6 * spec.student.exam.max_new_tokens * CHARS_PER_TOKEN)
    in_rt = _prompt_tokens(spec, base_dir, "prompts.rationale", {})
    in_fb = _prompt_tokens(spec, base_dir, "prompts.feedback",
                           {"student_answer": answer_chars, "gold_answer": 4})
    for teacher in callers:
        gen = teacher_generation(spec, teacher)
        out = lengths[teacher.name]
        # a review reads another teacher's rationale: the mean of the authors it reviews
        reviews_each = len(reviewed[teacher.name])
        writes = 1 if teacher.name in teacher_names else 0  # a juror writes no rationale
        authors = reviewed[teacher.name] or [a.name for a in spec.teachers]
        rationale_chars = int(sum(lengths[a]["rationale"] for a in authors) / len(authors)
                              * CHARS_PER_TOKEN)
        in_rv = _prompt_tokens(spec, base_dir, "prompts.review",
                               {"rationale": rationale_chars, "gold_answer": 4}) \
            if spec.review.enabled else 0
        per_call = {"rationale": {"input": in_rt, "output": out["rationale"]},
                    "feedback": {"input": in_fb, "output": out["feedback"]},
                    "review": {"input": in_rv, "output": out["review"]}}
        free = not provider_kind(teacher.provider).priced  # local or already paid
        price = teacher.paid_price()  # batch prices for a batch teacher
        usd_per_call: dict[str, float | None] = {}
        for role, tokens in per_call.items():
            if price is not None:
                usd_per_call[role] = (tokens["input"] * price.input_per_mtok
                                      + tokens["output"] * price.output_per_mtok) / 1e6
            else:
                usd_per_call[role] = 0.0 if free else None
        m = mistakes or 0
        tokens_in = m * (writes * (in_rt + in_fb) + reviews_each * in_rv)
        tokens_out = m * (writes * (out["rationale"] + out["feedback"]) + reviews_each * out["review"])
        usd = 0.0 if free else None
        online = None
        if price is not None:
            usd = (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1e6
        if teacher.batch and teacher.price is not None and mistakes is not None:
            online = (tokens_in * teacher.price.input_per_mtok
                      + tokens_out * teacher.price.output_per_mtok) / 1e6
        estimates.append(TeacherEstimate(
            name=teacher.name, rationale_calls=m * writes, feedback_calls=m * writes,
            review_calls=m * reviews_each, input_tokens=tokens_in, output_tokens=tokens_out,
            usd=usd if mistakes is not None else None, per_call=per_call,
            usd_per_call=usd_per_call, batch=teacher.batch, online_usd=online,
            roles=tuple(r for r in ROLES if (r == "review" and reviews_each)
                        or (r != "review" and writes)),
        ))
    output_lengths = {
        "task_kind": kind,
        "prior": dict(prior_output_tokens(kind, 10**9)),
        "prior_source": prior_source(kind),
        "measured": as_json(measured_len),
        "from_call_store": from_store,
        "per_teacher": lengths,
    }
    return CallEstimate(run=run.name, mistakes=mistakes, mistakes_source=source,
                        train_rows=train_rows, per_mistake=per, teachers=estimates,
                        per_mistake_min=per_min, output_lengths=output_lengths)


def recorded_mistakes(run: RunPlan, base_dir: Path) -> int | None:
    """A recorded exam that lists only wrong answers: how many it lists (None otherwise)."""
    recorded = run.stage("exam").settings.get("recorded")
    if not recorded or not recorded["only_mistakes"]:
        return None
    try:
        table = RecordedTable(resolve_path(recorded["path"], base_dir), match=recorded["match"],
                              question_column=recorded["question_column"],
                              index_column=recorded["index_column"])
    except FairspecError:
        return None
    limit = run.stage("exam").settings.get("limit")
    if limit is None:
        return len(table.rows)
    if recorded["match"] == "index":  # the rows the exam reads are the first ``limit``
        return sum(1 for position in table.rows if position < limit)
    return min(limit, len(table.rows))


def measured_mistakes(run: RunPlan) -> int | None:
    """Mistakes counted from this run's finished exam (its manifest must match the plan)."""
    exam = run.stage("exam")
    folder = Path(run.run_dir) / "exam"
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("fingerprint") != exam.fingerprint:
            return None
        with (folder / "mistakes.jsonl").open(encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    except (OSError, ValueError):
        return None


# -- output lengths measured in the call store ------------------------------------------------


def _exam_mistakes_file(run: RunPlan) -> Path | None:
    """The finished exam's mistakes.jsonl of this run, or of a sibling run sharing its exam."""
    fingerprint = run.stage("exam").fingerprint
    own = Path(run.run_dir)
    candidates = [own]
    try:
        candidates += sorted(p for p in own.parent.iterdir() if p.is_dir() and p != own)
    except OSError:
        pass
    for folder in candidates:
        try:
            manifest = json.loads((folder / "exam" / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and manifest.get("fingerprint") == fingerprint \
                and (folder / "exam" / "mistakes.jsonl").is_file():
            return folder / "exam" / "mistakes.jsonl"
    return None


def _file_signature(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _mistakes(path: str, signature: tuple[int, int]) -> tuple[str, ...]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(line)
            if len(rows) >= MEASURE_MISTAKES:
                break
    return tuple(rows)


@lru_cache(maxsize=16)
def _teach_prompts(path: str, signature: tuple[int, int], templates: str) -> tuple[str, ...]:
    """The canonical JSON of {role: prompt} for each of the first mistakes."""
    sources = json.loads(templates)
    return tuple(canonical_json(teach_prompts(sources, json.loads(row)))
                 for row in _mistakes(path, signature))


@lru_cache(maxsize=64)
def _teacher_calls(store: str, store_sig: tuple[Any, ...], path: str, signature: tuple[int, int],
                   templates: str, teacher: str) -> tuple[tuple[str, int, int | None, str | None], ...]:
    """(role, mistake row, output tokens, usable text or None) of one teacher's teach calls."""
    who = json.loads(teacher)
    keys: dict[str, tuple[str, int]] = {}
    for number, prompts in enumerate(_teach_prompts(path, signature, templates)):
        rendered = json.loads(prompts)
        for role in TEACH_ROLES:
            identity = CallIdentity(who["provider"], who["base_url"], who["model"],
                                    user_messages(rendered[role]), who["generation"], 0)
            keys[identity.key] = (role, number)
    out = []
    for key, (status, text, tokens) in completed_calls(store, keys).items():
        role, number = keys[key]
        usable = text if status in ("ok", "truncated") and (text or "").strip() else None
        out.append((role, number, tokens, usable))
    return tuple(out)


@lru_cache(maxsize=256)
def _review_calls(store: str, store_sig: tuple[Any, ...], path: str, signature: tuple[int, int],
                  templates: str, author: str, reviewer: str, template: str
                  ) -> tuple[int | None, ...]:
    """Output tokens of ``reviewer``'s stored reviews of ``author``'s rationales."""
    rows = _mistakes(path, signature)
    who = json.loads(reviewer)
    keys = []
    for role, number, _, text in _teacher_calls(store, store_sig, path, signature, templates,
                                                author):
        if role != "rationale" or text is None:
            continue
        prompt = review_prompt(template, json.loads(rows[number]), text)
        keys.append(CallIdentity(who["provider"], who["base_url"], who["model"],
                                 user_messages(prompt), who["generation"], 0).key)
    return tuple(tokens for _, _, tokens in completed_calls(store, keys).values())


def _who(teacher: Mapping[str, Any]) -> str:
    return canonical_json({k: teacher.get(k) for k in ("provider", "base_url", "model",
                                                       "generation")})


def measured_output_tokens(run: RunPlan, base_dir: Path,
                           call_store: str | os.PathLike[str] | None = None
                           ) -> dict[str, dict[str, MeasuredLength]]:
    """teacher -> role -> mean output tokens of this run's calls already in the call store.

    The calls are found by their keys, rebuilt as the teach and review stages build them
    from the finished exam's mistakes (the first :data:`MEASURE_MISTAKES`) and the stored
    rationales; so only this run's requests count, whichever run paid for them. Empty when
    the store or the exam is missing, or nothing was found."""
    store = Path(call_store) if call_store is not None \
        else default_store_path(Path(run.run_dir).parent)
    if not store.is_file():
        return {}
    mistakes = _exam_mistakes_file(run)
    if mistakes is None:
        return {}
    teach = run.stage("teach").settings
    review = run.stage("review").settings
    store_sig = (_file_signature(store), _file_signature(Path(f"{store}-wal")))
    signature = _file_signature(mistakes)
    rows: list[tuple[str, str, int | None]] = []
    try:
        templates = canonical_json({role: resolve_path(ref["ref"], base_dir).read_text(encoding="utf-8")
                                    for role, ref in teach["templates"].items()})
        teachers = {t["name"]: _who(t) for t in teach["teachers"]}
        for name, who in teachers.items():
            rows += [(name, role, tokens) for role, _, tokens, _ in
                     _teacher_calls(str(store), store_sig, str(mistakes), signature, templates, who)]
        if review.get("enabled"):
            template = resolve_path(review["template"]["ref"], base_dir).read_text(encoding="utf-8")
            exclude_self = review["policy"]["exclude_self"]
            for reviewer in review["teachers"]:
                for author in teachers:
                    if exclude_self and author == reviewer["name"]:
                        continue
                    rows += [(reviewer["name"], "review", tokens) for tokens in _review_calls(
                        str(store), store_sig, str(mistakes), signature, templates,
                        teachers[author], _who(reviewer), template)]
    except (OSError, ValueError, KeyError, FairspecError):
        return {}  # an unreadable store, exam (a row without a field) or template: the priors stand
    return mean_output_tokens(rows)


# -- early exit and the calls variants add ----------------------------------------------------


def _policy(review: Mapping[str, Any]) -> ReviewPolicy:
    p = review["policy"]
    return ReviewPolicy(score_range=tuple(p["score_range"]), threshold=p["threshold"],
                        accept=p["accept"], aggregate=p["aggregate"],
                        min_valid_scores=p["min_valid_scores"])


def review_reach(policy: ReviewPolicy, reviewers: int, scoring: str = "text"
                 ) -> list[tuple[bool, bool]]:
    """For each position of a rationale's ``reviewers`` (asked in order, with early exit):
    (always asked, may be asked).

    "Always" is exact: the review at position i is skipped for some scores iff some
    i scores already decide, and a decided set of scores stays decided when its valid
    scores are lowered (a rejection) or raised (an acceptance), so the all-lowest and
    all-highest prefixes with each number of invalid (None) scores are the ones to try.
    "May" enumerates every prefix of text scores (integers in the range, or None); with
    real-valued scores (``scoring: logprobs``), or too many prefixes, a position is taken
    as possibly asked whenever any review is, which keeps the upper bound true.
    """
    low, high = policy.score_range
    reach = []
    for i in range(reviewers):
        pending = reviewers - i
        always = all(policy.decision([value] * (i - nones) + [None] * nones, pending) is None
                     for nones in range(i + 1) for value in (low, high))
        values: list[int | None] = [None, *range(low, high + 1)]
        if always:
            maybe = True
        elif scoring == "text" and math.comb(len(values) + i - 1, i) <= MAX_PREFIXES:
            maybe = any(policy.decision(list(prefix), pending) is None
                        for prefix in combinations_with_replacement(values, i))
        else:
            maybe = policy.decision([], reviewers) is None
        reach.append((always, maybe))
    return reach


def _review_order(run: RunPlan) -> dict[str, list[str]]:
    """author -> its reviewers, in the order the review stage asks them (by name)."""
    review = run.stage("review").settings
    if not review.get("enabled"):
        return {}
    names = sorted(t["name"] for t in review["teachers"])  # the reviewers: jury or teachers
    authors = sorted(t["name"] for t in run.stage("teach").settings["teachers"])
    exclude_self = review["policy"]["exclude_self"]
    return {a: [r for r in names if not (exclude_self and r == a)] for a in authors}


def _review_reach_of(run: RunPlan) -> dict[str, list[tuple[bool, bool]]]:
    """author -> (always, may) per reviewer position, for this run's review stage."""
    review = run.stage("review").settings
    order = _review_order(run)
    if not order:
        return {}
    if not review.get("early_exit", True):  # every reviewer is asked: N(N-1) exactly
        return {a: [(True, True)] * len(reviewers) for a, reviewers in order.items()}
    policy = _policy(review)
    scoring = (review.get("scoring") or {"method": "text"})["method"]
    return {a: review_reach(policy, len(reviewers), scoring) for a, reviewers in order.items()}


@dataclass(frozen=True)
class CallClass:
    """One kind of teacher request per mistake in a run: who is asked, for what, and
    whether the run always makes it or only may (a review early exit can skip)."""

    teacher: str
    role: str
    always: bool
    maybe: bool


def call_classes(spec: Spec, run: RunPlan) -> dict[str, CallClass]:
    """Distinct kinds of teacher request per mistake in a run (key -> its class).

    Two runs whose keys coincide send identical requests, so the call store answers
    the second from the first: the union over runs counts what a spec really pays for.
    A review's key holds its author's rationale key (the rationale it reads) and the
    reviewer as it asks (with ``scoring: logprobs``, asking for the distribution).
    """
    exam_fp = run.stage("exam").fingerprint
    teach = run.stage("teach").identity
    review = run.stage("review").identity
    classes: dict[str, CallClass] = {}

    def add(key: str, item: CallClass) -> None:
        old = classes.get(key)  # two teachers with one configuration send one request
        if old is not None:
            item = CallClass(old.teacher, old.role, old.always or item.always,
                             old.maybe or item.maybe)
        classes[key] = item

    rationale_key: dict[str, str] = {}
    for teacher in teach["teachers"]:
        who = sha256_text(canonical_json({k: v for k, v in teacher.items() if k != "name"}))
        for role in ("rationale", "feedback"):
            key = canonical_json([exam_fp, role, who, teach["templates"][role]["sha256"],
                                  teach["fields"]])
            add(key, CallClass(teacher["name"], role, True, True))
            if role == "rationale":
                rationale_key[teacher["name"]] = key
    if review.get("enabled"):
        reviewers = {t["name"]: t for t in review["reviewers"]}
        reach = _review_reach_of(run)
        for author, order in _review_order(run).items():
            for (always, maybe), name in zip(reach[author], order, strict=True):
                key = canonical_json([rationale_key[author], "review",
                                      {k: v for k, v in reviewers[name].items() if k != "name"},
                                      review["template"]["sha256"], review["fields"]])
                add(key, CallClass(name, "review", always, maybe))
    return classes


@dataclass(frozen=True)
class NewCalls:
    """Requests per mistake a run sends that no earlier run of the plan answers.

    ``max``: the run may make them and no earlier run surely made them: a true upper bound
    when the runs go in the plan's order (a retry is the same request; a failed call is
    asked again). ``min``: the run always makes them and no earlier run can have made them,
    for usable rationales (a failed or empty one gets no review) with distinct texts (two
    equal rationales get one review per reviewer). The gap holds reviews that the early
    exit of an earlier run may have skipped (``skipped_earlier``) or that this run's own
    may skip (``skipped_here``). ``min_calls``/``max_calls``: (teacher asked, role) ->
    count, for the cost.
    """

    min: int
    max: int
    min_by_role: dict[str, int] = field(default_factory=dict)
    max_by_role: dict[str, int] = field(default_factory=dict)
    min_calls: dict[tuple[str, str], int] = field(default_factory=dict)
    max_calls: dict[tuple[str, str], int] = field(default_factory=dict)
    skipped_earlier: int = 0
    skipped_here: int = 0

    @property
    def span(self) -> str:
        """"3" or "0-2"."""
        return str(self.max) if self.min == self.max else f"{self.min}-{self.max}"

    def breakdown(self) -> str:
        """"0-2 review" or "2 rationale + 2 feedback + 1-2 review": the roles it adds."""
        parts = []
        for role in self.max_by_role:
            low, high = self.min_by_role.get(role, 0), self.max_by_role[role]
            if high:
                parts.append(f"{high if low == high else f'{low}-{high}'} {role}")
        return " + ".join(parts) or "0"

    def why(self) -> str:
        """Why the number is a range, in words ("" when it is not)."""
        if self.min == self.max:
            return ""
        reasons = []
        if self.skipped_earlier:
            reasons.append(f"up to {self.skipped_earlier} review(s) that the early exit of "
                           "the runs above may skip")
        if self.skipped_here:
            reasons.append(f"up to {self.skipped_here} review(s) that this run's own early "
                           "exit may skip")
        return "; ".join(reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": self.min, "max": self.max,
            "min_by_role": dict(self.min_by_role), "max_by_role": dict(self.max_by_role),
            "skipped_earlier": self.skipped_earlier, "skipped_here": self.skipped_here,
        }


def _by_role(classes: Mapping[str, CallClass]) -> dict[str, int]:
    counts = Counter(c.role for c in classes.values())
    return {role: counts.get(role, 0) for role in ROLES}


def unique_calls_per_mistake(specs: dict[str, Spec], plan: Plan) -> dict[str, NewCalls]:
    """Per run, in the plan's order: the range of requests per mistake no earlier run made."""
    surely: set[str] = set()  # made by an earlier run whatever the scores
    maybe: set[str] = set()  # possibly made by an earlier run
    fresh: dict[str, NewCalls] = {}
    ran: set[str] = set()  # stage fingerprints of earlier runs: a shared stage is copied
    for run in plan.runs:
        classes = call_classes(specs[run.name], run)
        copied = {role for stage, roles in (("teach", ("rationale", "feedback")), ("review", ("review",)))
                  if run.stage(stage).fingerprint in ran for role in roles}
        classes = {k: c for k, c in classes.items() if c.role not in copied}
        ran.update(s.fingerprint for s in run.stages)
        low = {k: c for k, c in classes.items() if c.always and k not in maybe}
        high = {k: c for k, c in classes.items() if c.maybe and k not in surely}
        gap = [k for k in high if k not in low]
        fresh[run.name] = NewCalls(
            min=len(low), max=len(high), min_by_role=_by_role(low), max_by_role=_by_role(high),
            min_calls=dict(Counter((c.teacher, c.role) for c in low.values())),
            max_calls=dict(Counter((c.teacher, c.role) for c in high.values())),
            skipped_earlier=sum(1 for k in gap if k in maybe),
            skipped_here=sum(1 for k in gap if not classes[k].always),
        )
        surely.update(k for k, c in classes.items() if c.always)
        maybe.update(k for k, c in classes.items() if c.maybe)
    return fresh
