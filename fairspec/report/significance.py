"""How sure an accuracy and a change in accuracy are: 95% intervals and paired tests.

- An accuracy (k right of n questions) comes with its Wilson score interval
  (``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``).
- Two students on the same questions are compared question by question: ``gained``
  (wrong before, right after) and ``lost`` (right before, wrong after) are the discordant
  pairs; McNemar's exact test is the two-sided binomial test of ``min(gained, lost)`` of the
  ``gained + lost`` at 1/2 (p = 1 with no discordant pair); the difference in accuracy
  (after - before) gets Newcombe's hybrid score interval for paired proportions
  (Newcombe 1998, Statistics in Medicine 17:2635, method 10, with the correlation
  correction as Fagerland, Lydersen and Laake give it, Statistics in Medicine 2014),
  built from the two Wilson intervals.
- A change is called a gain or a loss only when its interval excludes 0 and the exact
  test's p < 0.05; otherwise the words say there is no evidence of a change.

scipy is imported inside the functions: without it (``pip install 'fairspec[stats]'``)
they return None and the report shows the accuracies alone. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
INSTALL_HINT = ("Intervals and paired tests need scipy, which is not installed: "
                "pip install 'fairspec[stats]'.")
#: The methods, as metrics.json records them.
METHODS = {
    "confidence": CONFIDENCE,
    "accuracy_interval": "Wilson score interval",
    "paired_test": "McNemar exact (two-sided binomial test of the discordant pairs at 1/2)",
    "paired_interval": "Newcombe hybrid score interval for paired proportions "
                       "(Newcombe 1998, method 10)",
    "paired_by": "question index",
}


def _stats() -> Any:
    """scipy.stats, or None when scipy is not installed."""
    try:
        import scipy.stats as stats
    except ImportError:
        return None
    return stats


def available() -> bool:
    """Whether intervals and tests can be computed (scipy is installed)."""
    return _stats() is not None


def wilson_interval(correct: int, total: int,
                    confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson score interval of ``correct / total`` (None: no question, or no scipy)."""
    stats = _stats()
    if stats is None or total <= 0:
        return None
    found = stats.binomtest(int(correct), int(total)).proportion_ci(
        confidence_level=confidence, method="wilson")
    return float(found.low), float(found.high)


def mcnemar_exact_p(gained: int, lost: int) -> float | None:
    """McNemar's exact p-value (two-sided) from the discordant counts; 1 when there are none
    (None: no scipy)."""
    stats = _stats()
    if stats is None:
        return None
    if gained + lost == 0:
        return 1.0
    return float(stats.binomtest(min(gained, lost), gained + lost, 0.5).pvalue)


@dataclass(frozen=True)
class PairedTable:
    """Two students' answers to the same ``n`` questions: right both times (``both``), wrong
    before and right after (``gained``), right before and wrong after (``lost``), wrong both
    times (``neither``)."""

    both: int
    gained: int
    lost: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.gained + self.lost + self.neither

    @property
    def before(self) -> int:
        """Questions right before."""
        return self.both + self.lost

    @property
    def after(self) -> int:
        """Questions right after."""
        return self.both + self.gained

    @property
    def difference(self) -> float | None:
        """Accuracy after - accuracy before (None: no question)."""
        return (self.gained - self.lost) / self.n if self.n else None


def paired_difference_interval(table: PairedTable,
                               confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval (method 10) of accuracy after - accuracy before.

    The square-and-add of the two Wilson intervals, with the correlation of the paired
    answers: phi = (both * neither - gained * lost) / sqrt(product of the four margins),
    0 when a margin is 0, and a positive one reduced by n / 2 (to no less than 0)."""
    n = table.n
    before = wilson_interval(table.before, n, confidence)
    after = wilson_interval(table.after, n, confidence)
    if before is None or after is None:
        return None
    p1, p2 = table.after / n, table.before / n
    (l1, u1), (l2, u2) = after, before
    margins = (table.after, n - table.after, table.before, n - table.before)
    phi = 0.0
    if all(margins):
        cross = table.both * table.neither - table.gained * table.lost
        if cross > n / 2:
            cross -= n / 2
        elif cross >= 0:
            cross = 0
        phi = cross / math.sqrt(math.prod(margins))
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    high = d + math.sqrt(max(0.0, (u1 - p1) ** 2 + (p2 - l2) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)))
    return max(-1.0, low), min(1.0, high)


def pair(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]) -> PairedTable | None:
    """The paired table of two students' answer records (``index``, ``correct``), paired by
    question index; None when they did not answer the same questions."""
    first = {r["index"]: bool(r["correct"]) for r in before}
    second = {r["index"]: bool(r["correct"]) for r in after}
    if set(first) != set(second):
        return None
    return pair_sets(set(first), {i for i, ok in first.items() if ok},
                     {i for i, ok in second.items() if ok})


def pair_sets(questions: set[Any], right_before: set[Any], right_after: set[Any]) -> PairedTable:
    """The paired table from the questions and those each student got right."""
    right_before, right_after = right_before & questions, right_after & questions
    return PairedTable(both=len(right_before & right_after),
                       gained=len(right_after - right_before),
                       lost=len(right_before - right_after),
                       neither=len(questions - right_before - right_after))


def question_set(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What identifies the questions answered (their count and a sha256 of their indices,
    fields and gold answers): two evaluations pair only when these are equal."""
    rows = sorted(([r["index"], r.get("fields"), r.get("gold")] for r in records),
                  key=lambda row: row[0])
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return {"n": len(rows), "fingerprint": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def correct_indices(records: Iterable[Mapping[str, Any]]) -> list[Any]:
    """The indices of the questions answered right, in order."""
    return sorted(r["index"] for r in records if r["correct"])


def _rounded(pair_: tuple[float, float] | None) -> list[float] | None:
    return None if pair_ is None else [round(pair_[0], 6), round(pair_[1], 6)]


def accuracy_fields(correct: int, total: int) -> dict[str, Any]:
    """What metrics.json adds to an accuracy: its interval (None: no scipy or no question)."""
    return {"ci95": _rounded(wilson_interval(correct, total))}


def paired_fields(table: PairedTable) -> dict[str, Any]:
    """The ``paired`` block of metrics.json: the table, McNemar's p and the difference's
    interval (both None without scipy)."""
    difference = table.difference
    return {"n": table.n, "both": table.both, "gained": table.gained, "lost": table.lost,
            "neither": table.neither,
            "difference": None if difference is None else round(difference, 6),
            "p_value": mcnemar_exact_p(table.gained, table.lost),
            "diff_ci95": _rounded(paired_difference_interval(table))}


def table_from_metrics(metrics: Mapping[str, Any]) -> PairedTable | str:
    """The base-vs-tuned paired table an evaluate stage's metrics.json holds: its ``paired``
    block, else (metrics of an earlier fairspec) its ``changes`` with the two counts; or why
    there is none ("no per-question results", "other questions")."""
    paired = metrics.get("paired")
    if isinstance(paired, Mapping) and all(k in paired for k in ("both", "gained", "lost", "neither")):
        return PairedTable(*(int(paired[k]) for k in ("both", "gained", "lost", "neither")))
    base, tuned, changes = metrics.get("base"), metrics.get("tuned"), metrics.get("changes")
    if not (base and tuned and isinstance(changes, Mapping)):
        return "no per-question results"
    gained, lost = len(changes.get("gained") or []), len(changes.get("lost") or [])
    both = int(base["correct"]) - lost
    neither = int(base["total"]) - both - gained - lost
    if base.get("total") != tuned.get("total") or both < 0 or neither < 0 \
            or both + gained != int(tuned["correct"]):
        return "other questions"
    return PairedTable(both, gained, lost, neither)


def table_between(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                  label: str = "tuned") -> PairedTable | str:
    """The paired table of two runs' ``label`` students (``before``, ``after``: their
    metrics.json), or why they cannot be paired."""
    sides = []
    for metrics in (before, after):
        questions = (metrics or {}).get("questions") or {}
        right = ((metrics or {}).get(label) or {}).get("correct_indices")
        if not questions.get("fingerprint") or right is None:
            return "no per-question results"
        sides.append((questions, right))
    (q1, right1), (q2, right2) = sides
    if q1["fingerprint"] != q2["fingerprint"]:
        return "other questions"
    right1, right2 = set(right1), set(right2)
    n = int(q1["n"])
    return PairedTable(both=len(right1 & right2), gained=len(right2 - right1),
                       lost=len(right1 - right2), neither=n - len(right1 | right2))


@dataclass(frozen=True)
class Comparison:
    """A paired change with its statistics (None where scipy is missing)."""

    table: PairedTable
    p_value: float | None
    interval: tuple[float, float] | None

    @property
    def verdict(self) -> str:
        """"gain", "loss", "no evidence" (the interval holds 0, or p >= 0.05), or "untested"."""
        if self.p_value is None or self.interval is None:
            return "untested"
        low, high = self.interval
        if self.p_value < ALPHA and low > 0:
            return "gain"
        if self.p_value < ALPHA and high < 0:
            return "loss"
        return "no evidence"


def compare(table: PairedTable) -> Comparison:
    return Comparison(table, mcnemar_exact_p(table.gained, table.lost),
                      paired_difference_interval(table))


def percent(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.2f}%"


def interval_text(interval: Sequence[float] | None) -> str | None:
    """An accuracy's interval as text (``21.92-39.77%``); None when there is none."""
    return None if not interval else f"{100 * interval[0]:.2f}-{100 * interval[1]:.2f}%"


def with_interval(correct: int | None, total: int | None, accuracy: float | None) -> str | None:
    """An accuracy and its 95% interval in one cell: ``33.00% (24.59-42.69%)``."""
    if accuracy is None:
        return None
    interval = wilson_interval(correct, total) if correct is not None and total else None
    return percent(accuracy) + (f" ({interval_text(interval)})" if interval else "")


def points(value: float | None) -> str | None:
    """A difference in accuracy in percentage points (``+6.00``)."""
    return None if value is None else f"{100 * value:+.2f}"


def points_interval(interval: Sequence[float] | None) -> str | None:
    """A difference's interval in points (``-1.23 to +13.00``)."""
    return None if not interval else f"{points(interval[0])} to {points(interval[1])}"


def p_text(p: float | None) -> str | None:
    """A p-value as the report writes it (``0.50``, ``0.039``, ``< 0.001``)."""
    if p is None:
        return None
    return f"{p:.2f}" if p >= 0.1 else f"{p:.3f}" if p >= 0.001 else "< 0.001"


def _counts(table: PairedTable) -> str:
    return f"gained {table.gained}, lost {table.lost}"


def headline(before: Mapping[str, Any], after: Mapping[str, Any], table: PairedTable | str,
             *, what: str = "FAIR tuning") -> str:
    """One sentence on the change from ``before`` to ``after`` (each: accuracy) on the
    questions of ``table`` (a str: why the two are not paired): a gain or a loss only when
    the paired test says so, else no evidence of a change."""
    a, b = percent(before.get("accuracy")), percent(after.get("accuracy"))
    if isinstance(table, str):
        change = points((after.get("accuracy") or 0) - (before.get("accuracy") or 0))
        return (f"Change after {what}: {a} -> {b} ({change} points); not tested: not paired "
                f"question by question ({table}).")
    found = compare(table)
    span = f"{a} -> {b} on {table.n} questions"
    if found.verdict == "untested":
        return (f"Change after {what}: {span} ({_counts(table)}); not tested "
                "(scipy is not installed).")
    tested = (f"{_counts(table)}; McNemar exact p = {p_text(found.p_value)}; difference "
              f"{points(table.difference)} points, 95% CI {points_interval(found.interval)}")
    if found.verdict == "no evidence":
        return f"No evidence of a change from {what}: {span} ({tested})."
    return (f"{'Gain' if found.verdict == 'gain' else 'Loss'} from {what}: "
            f"{points(table.difference)} points, {span} (95% CI "
            f"{points_interval(found.interval)} points; {_counts(table)}; McNemar exact p = "
            f"{p_text(found.p_value)}).")


def evaluation_headline(metrics: Mapping[str, Any]) -> str | None:
    """The headline of an evaluate stage's metrics.json (None: base or tuned missing); with
    ``evaluation.samples`` above 1, of the mean accuracies over the samples."""
    base, tuned = metrics.get("base"), metrics.get("tuned")
    if not base or not tuned or base.get("accuracy") is None or tuned.get("accuracy") is None:
        return None
    rates = metrics.get("paired_rates")
    if isinstance(rates, Mapping) and base.get("samples") and tuned.get("samples"):
        return rates_headline(base["samples"], tuned["samples"], rates)
    return headline(base, tuned, table_from_metrics(metrics))


# -- k samples per question (evaluation.samples) ----------------------------------------------

#: How k samples per question are summarised, as metrics.json records it.
SAMPLE_METHODS = {
    "mean_interval": "t interval of the mean of the per-question correctness rates",
    "majority_interval": "Wilson score interval",
    "pass_interval": "Wilson score interval",
    "paired_test": "paired t-test on the per-question correctness rates (right samples / k)",
    "paired_interval": "t interval of the mean per-question difference in correctness rate",
}


def rates(counts: Iterable[Sequence[Any]], indices: Iterable[Any], k: int) -> dict[Any, float]:
    """Each question's correctness rate (right samples / k) from ``correct_counts`` pairs
    (index, right samples; a question not listed has none)."""
    found = {index: count for index, count in counts}
    return {index: found.get(index, 0) / k for index in indices}


def mean_interval(values: Sequence[float],
                  confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The t interval of the mean of ``values``, rates in [0, 1] (clipped to it; None:
    fewer than 2, or no scipy)."""
    stats = _stats()
    if stats is None or len(values) < 2:
        return None
    n = len(values)
    mean = sum(values) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if spread == 0:
        return mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * spread / math.sqrt(n)
    return max(0.0, mean - half), min(1.0, mean + half)  # rates: within [0, 1]


def sample_fields(summary: Mapping[str, Any], per_question: Sequence[float]) -> dict[str, Any]:
    """The intervals metrics.json adds to a student's ``samples`` summary (None: no scipy)."""
    n = len(per_question)
    return {"mean_ci95": _rounded(mean_interval(per_question)),
            "majority_ci95": _rounded(wilson_interval(summary["majority_correct"], n)),
            "pass_ci95": _rounded(wilson_interval(summary["pass_correct"], n))}


def paired_rates(before: Mapping[Any, float], after: Mapping[Any, float]) -> dict[str, Any] | None:
    """Two students' per-question correctness rates on the same questions compared: the
    mean difference (after - before), the paired t-test's p and the difference's t
    interval; None when the questions differ. p is 1 (and the interval [0, 0]) when no
    question changed; p and the interval are None without scipy."""
    if set(before) != set(after) or not before:
        return None
    differences = [after[i] - before[i] for i in sorted(before, key=str)]
    n = len(differences)
    mean = sum(differences) / n
    fields: dict[str, Any] = {"n": n, "mean_difference": round(mean, 6), "p_value": None,
                              "diff_ci95": None}
    stats = _stats()
    if stats is None:
        return fields
    if all(d == differences[0] for d in differences):  # no spread: the t-test is undefined
        fields.update(p_value=1.0 if mean == 0 else 0.0, diff_ci95=[round(mean, 6)] * 2)
        return fields
    found = stats.ttest_1samp(differences, 0.0)
    interval = found.confidence_interval(CONFIDENCE)
    fields.update(p_value=float(found.pvalue),
                  diff_ci95=_rounded((float(interval.low), float(interval.high))))
    return fields


def rates_between(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                  label: str = "tuned") -> dict[str, Any] | str:
    """Two runs' ``label`` students compared on per-question correctness rates over their k
    samples (:func:`paired_rates`; ``before``, ``after``: their metrics.json), or why they
    cannot be ("no samples": either decoded once; "other questions"). A question neither
    run listed in ``correct_counts`` has rate 0 in both."""
    sides = []
    for metrics in (before, after):
        summary = ((metrics or {}).get(label) or {}).get("samples") or {}
        questions = (metrics or {}).get("questions") or {}
        if not summary.get("k") or "correct_counts" not in summary or not questions.get("n"):
            return "no samples"
        sides.append((questions, summary))
    (q1, s1), (q2, s2) = sides
    if q1.get("fingerprint") != q2.get("fingerprint"):
        return "other questions"
    listed = sorted({i for i, _ in s1["correct_counts"]} | {i for i, _ in s2["correct_counts"]}, key=str)
    unlisted = [f"unlisted-{j}" for j in range(int(q1["n"]) - len(listed))]  # 0 right in both
    indices = [*listed, *unlisted]
    found = paired_rates(rates(s1["correct_counts"], indices, int(s1["k"])),
                         rates(s2["correct_counts"], indices, int(s2["k"])))
    return found if found is not None else "other questions"


def rates_headline(before: Mapping[str, Any], after: Mapping[str, Any],
                   paired: Mapping[str, Any], *, what: str = "FAIR tuning") -> str:
    """One sentence on the change in mean accuracy over k samples (``before``/``after``:
    the students' ``samples`` summaries; ``paired``: :func:`paired_rates`)."""
    k, n = after.get("k"), paired.get("n")
    span = (f"mean accuracy over {k} samples {percent(before.get('mean_accuracy'))} -> "
            f"{percent(after.get('mean_accuracy'))} on {n} questions")
    p, interval = paired.get("p_value"), paired.get("diff_ci95")
    if p is None or not interval:
        return f"Change after {what}: {span}; not tested (scipy is not installed)."
    tested = (f"paired t-test on per-question correctness rates p = {p_text(p)}; difference "
              f"{points(paired.get('mean_difference'))} points, 95% CI {points_interval(interval)}")
    if p < ALPHA and interval[0] > 0:
        return f"Gain from {what}: {span} ({tested})."
    if p < ALPHA and interval[1] < 0:
        return f"Loss from {what}: {span} ({tested})."
    return f"No evidence of a change from {what}: {span} ({tested})."
