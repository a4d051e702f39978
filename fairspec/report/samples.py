"""The distillation samples of one run, joined from its stage outputs: per student mistake,
the question, the gold answer, the student's wrong answer, every teacher's rationale (its
review scores, and whether it was accepted) and feedback.

What the report's sample browser shows and what ``fairspec export`` writes. Only texts,
names and scores: no call key, no local path, no provider setting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from fairspec.artifacts import read_jsonl
from fairspec.report.collect import Locate
from fairspec.review.policy import reviewable


def question_text(fields: dict[str, Any]) -> str:
    """A question's dataset fields as one text: the lone field as is, else ``name: value`` lines."""
    if len(fields) == 1:
        return str(next(iter(fields.values())))
    return "\n".join(f"{name}: {value}" for name, value in fields.items())


def _text(value: Any) -> str | None:
    """A gold answer or prediction as text: a whole number without its ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None if value is None else str(value)


def _mean(scores: list[float]) -> float | None:
    return round(sum(scores) / len(scores), 4) if scores else None


def iter_samples(locate: Locate) -> Iterator[dict[str, Any]]:
    """One sample per mistake in the exam's order, from ``locate(stage, artifact)``'s files
    (exam mistakes, teach rationales and feedback, review reviews and accepted)."""
    teach: dict[int, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in read_jsonl(locate("teach", "rationales.jsonl")):
        teach[row["index"]]["rationale"].append(row)
    for row in read_jsonl(locate("teach", "feedback.jsonl")):
        teach[row["index"]]["feedback"].append(row)
    reviews: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    # review.gold_check: whether a rationale reaches the gold answer (None: not checked); a
    # rationale with neither a review nor an acceptance was dropped by the check, unreviewed
    gold: dict[tuple[int, str], bool | None] = {}
    for row in read_jsonl(locate("review", "reviews.jsonl")):
        reviews[(row["index"], row["author"])].append(row)
        gold.setdefault((row["index"], row["author"]), row.get("reaches_gold"))
    accepted = set()
    for row in read_jsonl(locate("review", "accepted.jsonl")):
        accepted.add((row["index"], row["teacher"]))
        gold.setdefault((row["index"], row["teacher"]), row.get("reaches_gold"))
    for mistake in read_jsonl(locate("exam", "mistakes.jsonl")):
        index = mistake["index"]
        rationales = []
        for row in sorted(teach[index]["rationale"], key=lambda r: r["teacher"]):
            if not reviewable(row):
                continue
            scores = [{"reviewer": r["reviewer"], "score": r["score"],
                       "distribution": r.get("distribution")}
                      for r in sorted(reviews[(index, row["teacher"])], key=lambda r: r["reviewer"])]
            rationales.append({
                "teacher": row["teacher"], "text": row["text"],
                "accepted": (index, row["teacher"]) in accepted,
                "reaches_gold": gold.get((index, row["teacher"]), False),
                "mean_score": _mean([s["score"] for s in scores if s["score"] is not None]),
                "scores": scores,
            })
        feedback = [{"teacher": row["teacher"], "text": row["text"]}
                    for row in sorted(teach[index]["feedback"], key=lambda r: r["teacher"])
                    if reviewable(row)]
        yield {
            "index": index,
            "question": question_text(mistake["fields"]),
            "gold": _text(mistake.get("gold_text", mistake.get("gold"))),
            "student_answer": mistake.get("output") or "",
            "student_prediction": _text(mistake.get("prediction")),
            "rationales": rationales,
            "feedback": feedback,
        }
