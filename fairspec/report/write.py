"""Assembles a run's report (paper Tables 1, 2, 4, 5; review heatmap and histogram, and with
``review.scoring: logprobs`` the reviewers' score distributions; loss curve)
and, for the spec's main run, the comparison of its variants and sweep points (Figure 5)."""

from __future__ import annotations

from pathlib import Path

from fairspec.artifacts import atomic_write_text
from fairspec.errors import FairspecError
from fairspec.report.collect import Locate, RunSummary, collect, siblings
from fairspec.report.document import Document, Heading, Image, Table, Text
from fairspec.report.plots import (
    accuracy_curve,
    loss_curve,
    score_distributions,
    score_heatmap,
    score_histogram,
)


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.2f}%"


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def write_report(run_dir: Path, *, folder: Path | None = None,
                 locate: Locate | None = None) -> list[Path]:
    """Write ``report/report.md``, ``report/report.html`` and the PNGs; return the two pages.

    ``locate(stage, artifact)`` finds the run's artifacts (default: in ``run_dir``); the
    comparison of the main run with its variants reads the same artifacts of its siblings.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "exam").is_dir():
        raise FairspecError(f"{run_dir} is not a run folder (it has no exam/ stage folder); "
                            "pass a run's folder under the spec's output_dir, e.g. runs/<name>")
    folder = folder or run_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    run = collect(run_dir, locate)
    doc = Document(f"FAIR run `{run.name}`")
    if run.info.get("description"):
        doc.add(Text(run.info["description"]))
    if run.overrides:
        doc.add(Text("Changes from the spec: " + ", ".join(f"{k} = {v}" for k, v in run.overrides.items())))
    _accuracy(doc, run)
    _exam(doc, run)
    _teachers(doc, run)
    _review(doc, run, folder)
    _training(doc, run, folder)
    others = siblings(run_dir) if run.info.get("variant") is None else []
    if others:
        _comparison(doc, run, others, folder)
    doc.add(Text(f"Run folder: {run_dir}. Reproduce it with `fairspec run {run_dir / 'record' / 'spec.yaml'}"
                 f" --replay {run_dir / 'record' / 'calls.jsonl'}` (no API key needed)."))
    atomic_write_text(folder / "report.md", doc.markdown())
    atomic_write_text(folder / "report.html", doc.html())
    return [folder / "report.md", folder / "report.html"]


def _questions(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:10])
    return shown + (f" and {len(indices) - 10} more" if len(indices) > 10 else "")


def _changes_text(changes: dict) -> str:
    """What tuning changed, question by question, and why each lost question is wrong now."""
    gained, lost = changes.get("gained") or [], changes.get("lost") or []
    if not gained and not lost:
        return "Question by question, the tuned student is right exactly where the base one is."
    text = (f"Question by question: the tuned student got {len(gained)} right that the base "
            f"student got wrong" + (f" (#{_questions(gained)})" if gained else "")
            + f", and lost {len(lost)}" + (f" (#{_questions(lost)})" if lost else "") + ".")
    if lost:
        reasons = [(changes.get("lost_no_answer") or [], "it stated no answer the extractor "
                    "reads"),
                   (changes.get("lost_truncated") or [], "it ran out of tokens before stating "
                    "one"),
                   (changes.get("lost_other_answer") or [], "it stated another answer")]
        text += " Of the lost: " + "; ".join(f"{len(ids)} because {why}"
                                              for ids, why in reasons if ids) + "."
    return text


def _accuracy(doc: Document, run: RunSummary) -> None:
    metrics = run.metrics
    if not metrics:
        return
    doc.add(Heading("Accuracy before and after (a paper Table 1 row)"))
    rows = []
    for label in ("base", "tuned"):
        m = metrics.get(label)
        if m:
            rows.append([label, f"{m['correct']} / {m['total']}", _pct(m["accuracy"]),
                         m["invalid"]])
    doc.add(Table(["student", "correct / total", "accuracy", "no stated answer"], rows,
                  f"Zero-shot, {metrics.get('split', 'test')} split"))
    if metrics.get("gain") is not None:
        doc.add(Text(f"Gain from FAIR tuning: {100 * metrics['gain']:+.2f} points."))
    if metrics.get("changes"):
        doc.add(Text(_changes_text(metrics["changes"])))
    if metrics.get("note"):
        doc.add(Text(f"Note: {metrics['note']}."))


def _exam(doc: Document, run: RunSummary) -> None:
    exam = run.exam
    if not exam:
        return
    doc.add(Heading("The student's exam (paper Table 2)"))
    share = _pct(exam["wrong"] / exam["total"]) if exam["total"] else None
    doc.add(Table(["#wrong / #train", "wrong share", "no stated answer", "truncated"],
                  [[f"{exam['wrong']} / {exam['total']}", share, exam["invalid"], exam["truncated"]]]))
    if exam["wrong"] == 0:
        doc.add(Text("The student made no mistake: there was nothing for the teachers to teach."))


def _teachers(doc: Document, run: RunSummary) -> None:
    usage = run.teacher_usage()
    if not usage:
        return
    doc.add(Heading("Teachers: calls, tokens and cost (paper Table 5)"))
    rows = [[name, u["calls"], u["made"], u["reused"], u["retries"], f"{u['input_tokens']:,}",
             f"{u['output_tokens']:,}", _usd(u["usd"])] for name, u in usage.items()]
    doc.add(Table(["teacher", "calls", "paid now", "reused (store/replay)", "retries", "in tokens",
                   "out tokens", "USD"], rows, "Teach and review stages together; USD at the spec's prices"))


def _review(doc: Document, run: RunSummary, folder: Path) -> None:
    review = run.review
    if not review:
        return
    doc.add(Heading("Peer review: accepted rationales per teacher (paper Table 4)"))
    rows = []
    for teacher, written in review["rationales_per_teacher"].items():
        accepted = review["accepted_per_teacher"].get(teacher, 0)
        rows.append([teacher, written, accepted, _pct(accepted / written) if written else None])
    rows.append(["total", review["rationales"], review["accepted"],
                 _pct(review["accepted"] / review["rationales"]) if review["rationales"] else None])
    doc.add(Table(["teacher", "rationales", "accepted", "accepted share"], rows))
    if not review["enabled"]:
        doc.add(Text("Peer review was off: every usable rationale was kept."))
        return
    doc.add(Text(f"Reviews made: {review['reviews_made']}; saved by early exit: "
                 f"{review['reviews_saved_by_early_exit']}; without a readable score: "
                 f"{review['invalid_scores']}."))
    if review["accepted"] == 0:
        doc.add(Text("No rationale passed the review: the training set is empty."))
    score_range = review.get("score_range") or (1, 5)
    logprobs = _scoring(review) == "logprobs"
    if logprobs:
        _logprob_scoring(doc, run, score_range)
    label = "mean expected score" if logprobs else "mean score"
    heatmap = score_heatmap(review["mean_score_matrix"], score_range,
                            folder / "review_heatmap.png", label=label)
    if heatmap:
        doc.add(Image(heatmap, f"{label.capitalize()} each reviewer gave each author"))
    histogram = score_histogram(run.reviews, score_range, folder / "review_scores.png",
                                expected=logprobs)
    if histogram:
        doc.add(Image(histogram, "Expected scores given, per reviewer" if logprobs
                      else "Scores given, per reviewer"))
    if logprobs:
        distributions = score_distributions(run.reviews, score_range,
                                            folder / "review_distributions.png")
        if distributions:
            doc.add(Image(distributions, "Each reviewer's mean distribution over the scores, "
                                         "with its mean expected score"))


def _scoring(review: dict) -> str:
    """How the run's reviews were scored: "logprobs" or "text" (older runs say nothing: text)."""
    return (review.get("scoring") or {}).get("method") or "text"


#: ``scored_by`` in reviews.jsonl and review/stats.json, in the order the report counts them.
_SCORED_BY = (("logprobs", "read from log-probabilities at the stated score"),
              ("logprobs-forced", "forced after a score cue"),
              ("text", "from the text (no log-probabilities returned)"),
              ("none", "no score"))


def _logprob_scoring(doc: Document, run: RunSummary, score_range) -> None:
    review = run.review or {}
    fallback = (review.get("scoring") or {}).get("fallback") or "text"
    low, high = score_range[0], score_range[1]
    doc.add(Text(f"Scores were read from log-probabilities (review.scoring: logprobs): each "
                 f"review's score is the expected score, the probability-weighted mean of the "
                 f"reviewer's next-token distribution over the scores {low}-{high}. "
                 + ("A review whose distribution did not come back took the score stated in its "
                    "text (scoring_fallback: text)." if fallback == "text" else
                    "A review whose distribution did not come back got no score "
                    "(scoring_fallback: none).")))
    counts = review.get("scored_by")
    if not isinstance(counts, dict):  # count the rows instead
        counts = {how: sum(1 for r in run.reviews if (r.get("scored_by") or "none") == how)
                  for how, _ in _SCORED_BY}
    doc.add(Text("How each review was scored: " + "; ".join(
        f"{words}: {int(counts.get(how) or 0)}" for how, words in _SCORED_BY) + "."))


def _training(doc: Document, run: RunSummary, folder: Path) -> None:
    build, train = run.build, run.train
    if build:
        doc.add(Heading("Training set and tuning (eq. 5-7)"))
        per_teacher = build.get("per_teacher") or {}
        doc.add(Text(f"{build['samples']} samples: {build['rationale_examples']} rationale and "
                     f"{build['feedback_examples']} feedback examples (selection: {build['selection']})."))
        if per_teacher:
            doc.add(Table(["teacher", "rationale examples", "feedback examples"],
                          [[t, c.get("rationale", 0), c.get("feedback", 0)] for t, c in per_teacher.items()]))
    if not train:
        return
    if train.get("skipped"):
        doc.add(Text(train["skipped"] + "."))
        return
    doc.add(Text(f"{train['steps']} optimizer steps on {train['examples']} examples "
                 f"({train['truncated']} truncated to max_seq_length); loss {train['first_loss']:.4f} "
                 f"-> {train['last_loss']:.4f}; {train.get('seconds', '?')} s."))
    curve = loss_curve(train.get("log") or [], run.info.get("alpha"), folder / "training_loss.png")
    if curve:
        doc.add(Image(curve, "Joint loss and its two parts per optimizer step"))


def _comparison(doc: Document, main: RunSummary, others: list[RunSummary], folder: Path) -> None:
    doc.add(Heading("Variants and sweep (paper Table 1 ablations, Figure 5)"))
    rows = []
    for run in [main, *others]:
        change = ", ".join(f"{k} = {v}" for k, v in run.overrides.items()) or "(the spec)"
        tuned = _pct(run.accuracy("tuned"))
        if tuned is None and (run.metrics or {}).get("note"):
            tuned = "no training set"
        rows.append([run.name, change, _pct(run.accuracy("base")), tuned,
                     None if not run.review else run.review["accepted"],
                     None if not run.build else run.build["examples"]])
    doc.add(Table(["run", "changes", "base", "tuned", "accepted", "training examples"], rows,
                  "Runs not finished yet show '-'"))
    swept: dict[str, list[tuple[float, float]]] = {}
    for run in [main, *others]:
        for key, value in run.overrides.items():
            if isinstance(value, (int, float)) and run.accuracy("tuned") is not None:
                swept.setdefault(key, []).append((float(value), run.accuracy("tuned")))
    main_alpha = main.info.get("alpha")
    if main.accuracy("tuned") is not None and main_alpha is not None and "training.alpha" in swept:
        swept["training.alpha"].append((float(main_alpha), main.accuracy("tuned")))
    for key, points in swept.items():
        name = key.replace(".", "_")
        curve = accuracy_curve(sorted(set(points)), main.accuracy("base"), key,
                               folder / f"accuracy_vs_{name}.png")
        if curve:
            doc.add(Image(curve, f"Tuned accuracy against {key}" +
                          (" (paper Figure 5)" if key == "training.alpha" else "")))

