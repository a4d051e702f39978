"""The plan's teacher-call arithmetic, token and cost estimate.

Per mistake, each of N teachers writes one rationale and one feedback, and each
rationale is scored by the other N-1 teachers (all N without exclude_self): with
exclude_self, N + N + N(N-1) calls, 12 for the paper's three teachers; 2N without
review. The mistake count is measured when the run's exam already finished, else
estimated as train rows x --mistake-rate. Tokens are estimated from the real templates
rendered with texts of the dataset's typical lengths (4 characters per token) and
costed with each teacher's price. Review calls are an upper bound: the review stage
skips calls that can no longer change a decision.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fairspec.dsl.loader import template_ref
from fairspec.dsl.schema import Spec
from fairspec.hashing import canonical_json, sha256_text
from fairspec.plan.compiler import teacher_generation
from fairspec.plan.graph import Plan, RunPlan
from fairspec.providers.registry import provider_kind
from fairspec.resources import resolve_path
from fairspec.tasks.data import DATA_SUFFIXES
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
ASSUMPTIONS = {
    "chars_per_token": CHARS_PER_TOKEN,
    "rationale_output": "0.4 x max_tokens",
    "feedback_output": "0.4 x max_tokens",
    "review_output": "min(max_tokens, 50)",
    "student_answer": "0.6 x exam max_new_tokens",
}


@dataclass(frozen=True)
class TeacherEstimate:
    name: str
    rationale_calls: int
    feedback_calls: int
    review_calls: int
    input_tokens: int
    output_tokens: int
    usd: float | None

    @property
    def calls(self) -> int:
        return self.rationale_calls + self.feedback_calls + self.review_calls


@dataclass(frozen=True)
class CallEstimate:
    """The teacher calls, tokens and cost of one run."""

    run: str
    mistakes: int | None
    mistakes_source: str
    train_rows: int | None
    per_mistake: dict[str, int]
    teachers: list[TeacherEstimate] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.teachers)

    @property
    def usd(self) -> float | None:
        costs = [t.usd for t in self.teachers]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(calls=self.calls, usd=self.usd, assumptions=ASSUMPTIONS)
        for teacher, obj in zip(data["teachers"], self.teachers, strict=True):
            teacher["calls"] = obj.calls
        return data


def calls_per_mistake(n_teachers: int, review_enabled: bool, exclude_self: bool) -> dict[str, int]:
    """{"rationale": N, "feedback": N, "review": N(N-1) or N*N or 0, "total": ...}."""
    reviews = 0
    if review_enabled:
        reviews = n_teachers * (n_teachers - 1 if exclude_self else n_teachers)
    counts = {"rationale": n_teachers, "feedback": n_teachers, "review": reviews}
    counts["total"] = sum(counts.values())
    return counts


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
    try:
        if file.suffix == ".jsonl":
            rows = []
            with file.open(encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        rows.append(json.loads(line))
            return rows[:limit] if limit else rows
        if file.suffix == ".json":
            data = json.loads(file.read_text(encoding="utf-8"))
            rows = data if isinstance(data, list) else []
            return rows[:limit] if limit else rows
    except (OSError, ValueError):
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
    mistakes: int | None = None,
) -> CallEstimate:
    """Calls, tokens and cost of one run, for a measured or estimated number of mistakes."""
    train_rows = count_train_rows(spec, base_dir)
    if mistakes is not None:
        source = "given"
    else:
        measured = measured_mistakes(run)
        if measured is not None:
            mistakes, source = measured, "measured (the exam of this run has finished)"
        elif train_rows is not None:
            mistakes = round(train_rows * mistake_rate)
            source = f"estimated: {train_rows} train rows x mistake rate {mistake_rate}"
        else:
            source = "unknown: give --mistakes N (the train size of this hub dataset is not known)"
    n = len(spec.teachers)
    per = calls_per_mistake(n, spec.review.enabled, spec.review.exclude_self)
    reviews_each = (n - 1 if spec.review.exclude_self else n) if spec.review.enabled else 0
    estimates = []
    answer_chars = int(0.6 * spec.student.exam.max_new_tokens * CHARS_PER_TOKEN)
    for teacher in spec.teachers:
        gen = teacher_generation(spec, teacher)
        out_rt = int(0.4 * gen["max_tokens"])
        out_fb = int(0.4 * gen["max_tokens"])
        out_rv = min(gen["max_tokens"], 50)
        in_rt = _prompt_tokens(spec, base_dir, "prompts.rationale", {})
        in_fb = _prompt_tokens(spec, base_dir, "prompts.feedback",
                               {"student_answer": answer_chars, "gold_answer": 4})
        in_rv = _prompt_tokens(spec, base_dir, "prompts.review",
                               {"rationale": int(out_rt * CHARS_PER_TOKEN), "gold_answer": 4})
        m = mistakes or 0
        tokens_in = m * (in_rt + in_fb + reviews_each * in_rv)
        tokens_out = m * (out_rt + out_fb + reviews_each * out_rv)
        usd = None if provider_kind(teacher.provider).priced else 0.0  # local or already paid
        if teacher.price is not None:
            usd = (tokens_in * teacher.price.input_per_mtok
                   + tokens_out * teacher.price.output_per_mtok) / 1e6
        estimates.append(TeacherEstimate(
            name=teacher.name, rationale_calls=m, feedback_calls=m,
            review_calls=m * reviews_each, input_tokens=tokens_in, output_tokens=tokens_out,
            usd=usd if mistakes is not None else None,
        ))
    return CallEstimate(run=run.name, mistakes=mistakes, mistakes_source=source,
                        train_rows=train_rows, per_mistake=per, teachers=estimates)


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


def call_classes(spec: Spec, run: RunPlan) -> dict[str, int]:
    """Distinct kinds of teacher request per mistake in a run -> how many of each.

    Two runs whose classes coincide send identical requests, so the call store answers
    the second from the first: the union over runs counts what a spec really pays for.
    """
    exam_fp = run.stage("exam").fingerprint
    teach = run.stage("teach").identity
    review = run.stage("review").identity
    classes: dict[str, int] = {}
    by_name = {t["name"]: t for t in teach["teachers"]}
    for teacher in by_name.values():
        who = sha256_text(canonical_json({k: v for k, v in teacher.items() if k != "name"}))
        for role in ("rationale", "feedback"):
            key = canonical_json([exam_fp, role, who, teach["templates"][role]["sha256"],
                                  teach["fields"]])
            classes[key] = classes.get(key, 0) + 1
    if review.get("enabled"):
        for author in by_name.values():
            for reviewer in by_name.values():
                if review["policy"]["exclude_self"] and author is reviewer:
                    continue
                key = canonical_json([exam_fp, "review",
                                      {k: v for k, v in author.items() if k != "name"},
                                      {k: v for k, v in reviewer.items() if k != "name"},
                                      review["template"]["sha256"]])
                classes[key] = classes.get(key, 0) + 1
    return classes


def unique_calls_per_mistake(specs: dict[str, Spec], plan: Plan) -> dict[str, int]:
    """Per run: requests per mistake not already made by an earlier run of the plan."""
    seen: set[str] = set()
    fresh: dict[str, int] = {}
    for run in plan.runs:
        spec = specs[run.name]
        classes = call_classes(spec, run)
        fresh[run.name] = sum(n for key, n in classes.items() if key not in seen)
        seen.update(classes)
    return fresh
