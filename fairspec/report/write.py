"""Assembles a run's report (paper Tables 1, 2, 4, 5; review heatmap and histogram, and with
``review.scoring: logprobs`` the reviewers' score distributions; loss curve)
and, for the spec's main run, the comparison of its variants and sweep points (Figure 5)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from fairspec.artifacts import atomic_write_text
from fairspec.dsl.variants import shown
from fairspec.errors import FairspecError
from fairspec.plan.stage_settings import ReviewScoring
from fairspec.report.browser import sample_browser
from fairspec.report.collect import Locate, RunSummary, collect, run_locator, siblings
from fairspec.report.decontamination import add_decontamination
from fairspec.report.document import Document, Heading, Image, Table, Text
from fairspec.report.plots import (
    accuracy_curve,
    loss_curve,
    rounds_curve,
    score_distributions,
    score_heatmap,
    score_histogram,
)
from fairspec.report.review_quality import add_review_quality
from fairspec.report.samples import iter_samples
from fairspec.report.significance import (
    INSTALL_HINT,
    available,
    compare,
    evaluation_headline,
    interval_text,
    p_text,
    points,
    points_interval,
    rates_between,
    table_between,
    table_from_metrics,
    wilson_interval,
    with_interval,
)


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.2f}%"


def _usd(value: float | None, places: int = 4) -> str:
    return "unknown" if value is None else f"${value:.{places}f}"


def write_report(run_dir: Path, *, folder: Path | None = None,
                 locate: Locate | None = None, rounds: int | None = None) -> list[Path]:
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
    run = collect(run_dir, locate, rounds)
    doc = Document(f"FAIR run `{run.name}`")
    if run.info.get("description"):
        doc.add(Text(run.info["description"]))
    if run.overrides:
        doc.add(Text("Changes from the spec: "
                     + ", ".join(f"{k} = {shown(v)}" for k, v in run.overrides.items())))
    _accuracy(doc, run)
    _rounds(doc, run, folder)
    _exam(doc, run)
    _teachers(doc, run)
    _review(doc, run, folder)
    _training(doc, run, folder)
    add_decontamination(doc, run)
    main_run = run.info.get("variant") is None and not run.info.get("repeats")
    others = siblings(run_dir) if main_run else []
    groups = by_setting([run, *others])  # with seeds: each setting's runs, one per seed
    if any(len(g) > 1 for g in groups.values()):
        _seeds(doc, groups)
    firsts = [r for r in others if not r.info.get("repeats")]
    if firsts:
        _comparison(doc, run, firsts, folder, groups)
    _samples(doc, run_dir, locate, run)
    doc.add(Text(f"Run folder: {run_dir}. Reproduce it with `fairspec run {run_dir / 'record' / 'spec.yaml'}"
                 f" --replay {run_dir / 'record' / 'calls.jsonl'}` (no API key needed)."))
    atomic_write_text(folder / "report.md", doc.markdown())
    atomic_write_text(folder / "report.html", doc.html())
    return [folder / "report.md", folder / "report.html"]


def _samples(doc: Document, run_dir: Path, locate: Locate | None, run: RunSummary) -> None:
    """The sample browser: every mistake with its rationales, scores and feedback."""
    at = locate or run_locator(run_dir)
    needed = [("exam", "mistakes.jsonl"), ("teach", "rationales.jsonl"), ("teach", "feedback.jsonl"),
              ("review", "reviews.jsonl"), ("review", "accepted.jsonl")]
    if not all(at(stage, artifact).is_file() for stage, artifact in needed):
        return
    settings = run.settings or {}
    threshold = settings.get("review.threshold")
    doc.add(sample_browser(list(iter_samples(at)),
                           threshold=threshold if isinstance(threshold, int | float) else None,
                           rule=_review_rule(settings)))


def _review_rule(settings: dict[str, Any]) -> str | None:
    """The review policy in words (None: not recorded in run.json)."""
    if "review.threshold" not in settings:
        return None
    if settings.get("review.enabled") is False:
        return "Peer review was off in this run: every usable rationale was accepted."
    valid = settings.get("review.min_valid_scores", 1)
    return (f"A rationale is accepted when the {settings.get('review.aggregate', 'mean')} of its "
            f"valid review scores is {settings.get('review.accept', '>=')} "
            f"{settings['review.threshold']:g}"
            + (f", with at least {valid} valid scores" if valid and valid > 1 else "") + ".")


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
    metrics = run.final_metrics
    if not metrics:
        return
    after = f", after round {len(run.rounds)}" if len(run.rounds) > 1 else ""
    doc.add(Heading(f"Accuracy before and after (a paper Table 1 row{after})"))
    rows = []
    for label in ("base", "tuned"):
        m = metrics.get(label)
        if m:
            rows.append([label, f"{m['correct']} / {m['total']}", _pct(m["accuracy"]),
                         interval_text(wilson_interval(m["correct"], m["total"])), m["invalid"]])
    doc.add(Table(["student", "correct / total", "accuracy", "95% interval", "no stated answer"],
                  rows, f"Zero-shot, {metrics.get('split', 'test')} split; 95% interval: Wilson "
                  "score, n = the questions (total)"))
    _evaluation_samples(doc, metrics)
    headline = evaluation_headline(metrics)
    if headline:
        doc.add(Text(headline))
    if metrics.get("changes"):
        doc.add(Text(_changes_text(metrics["changes"])))
    if not available():
        doc.add(Text(INSTALL_HINT))
    elif headline and not isinstance(table_from_metrics(metrics), str):
        doc.add(Text(_STATISTICS))
    if metrics.get("note"):
        doc.add(Text(f"Note: {metrics['note']}."))


def _evaluation_samples(doc: Document, metrics: dict[str, Any]) -> None:
    """With ``evaluation.samples`` k > 1: per student the mean accuracy over the k samples,
    each sample's, the majority-vote accuracy and pass@k, with their intervals."""
    rows = []
    for label in ("base", "tuned"):
        summary = (metrics.get(label) or {}).get("samples")
        if not summary:
            continue
        per_sample = summary.get("per_sample_accuracy") or []
        rows.append([label, summary["k"],
                     (_pct(summary["mean_accuracy"]) or "-") + _bracket(summary.get("mean_ci95")),
                     f"{_pct(min(per_sample))}-{_pct(max(per_sample))}" if per_sample else None,
                     (_pct(summary["majority_accuracy"]) or "-") + _bracket(summary.get("majority_ci95")),
                     (_pct(summary["pass_at_k"]) or "-") + _bracket(summary.get("pass_ci95"))])
    if not rows:
        return
    doc.add(Table(["student", "samples (k)", "mean accuracy (95% CI)", "range over samples",
                   "majority vote (95% CI)", "pass@k (95% CI)"], rows,
                  "k sampled decodes per question, each seeded per question and sample; the "
                  "table above is the first sample's (the paper's one pass). Mean: over the k "
                  "samples (t interval of the per-question correctness rates); majority vote: "
                  "the answer most samples state; pass@k: any sample right (Wilson intervals)"))


def _bracket(interval: Any) -> str:
    text = interval_text(interval)
    return f" ({text})" if text else ""


_STATISTICS = ("Base and tuned are paired by question: gained = wrong before and right after, "
               "lost = right before and wrong after; McNemar's exact test (two-sided binomial "
               "test of the discordant pairs) and Newcombe's hybrid score 95% interval of the "
               "difference (Newcombe 1998, method 10). A change is called a gain or a loss only "
               "when that interval excludes 0 and p < 0.05.")


def _rounds(doc: Document, run: RunSummary, folder: Path) -> None:
    """Per round: the exam's mistakes, accepted rationales, training examples, teacher calls
    and USD, test accuracy; and a plot of accuracy and mistakes against the round. The
    sections below it are round 1's (the paper's single round)."""
    if len(run.rounds) < 2:
        return
    doc.add(Heading("Rounds"))
    rows, points = [], []
    for r in run.rounds:
        exam, teach, review, build = r.exam or {}, r.teach or {}, r.review or {}, r.build or {}
        tuned = (r.metrics or {}).get("tuned") or {}
        calls, made, usd = _usage(teach, review)
        rows.append([
            r.round,
            f"{exam['wrong']} / {exam['total']}" if exam else None,
            review.get("accepted") if r.review else None,
            build.get("examples"),
            None if not r.teach else f"{calls} ({made})",
            None if not r.teach else _usd(usd),
            with_interval(tuned.get("correct"), tuned.get("total"), tuned.get("accuracy")),
        ])
        points.append({"round": r.round, "accuracy": tuned.get("accuracy"),
                       "mistakes": exam.get("wrong")})
    doc.add(Table(["round", "exam mistakes / questions", "rationales accepted", "training examples",
                   "teacher calls (paid now)", "USD", "test accuracy (tuned; 95% interval)"],
                  rows, "Round k >= 2: round k-1's tuned student retakes the exam and the "
                  "committee teaches its remaining mistakes"))
    base = next(((r.metrics or {}).get("base") or {} for r in run.rounds if r.metrics), {})
    curve = rounds_curve(points, base.get("accuracy"), folder / "rounds.png")
    if curve:
        doc.add(Image(curve, "Test accuracy and exam mistakes per round"))
    doc.add(Text("The sections below describe round 1."))


def _usage(*stages: dict) -> tuple[int, int, float | None]:
    """The teacher calls of a round's teach and review stages: all of them, those sent to a
    server now (the rest came from the call store or a replay), and their USD (None: a
    teacher has no price)."""
    usage = [u for stage in stages for u in (stage.get("teachers") or {}).values()]
    usd = None if any(u.get("usd") is None for u in usage) else sum(u["usd"] for u in usage)
    return (sum(u.get("calls", 0) for u in usage), sum(u.get("made", 0) for u in usage), usd)


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


def _tokens(value: float | None) -> str | None:
    return None if value is None else f"{value:,.2f}"


def _teachers(doc: Document, run: RunSummary) -> None:
    per_sample = run.tokens_per_sample()
    if not per_sample and (run.teach or {}).get("teachers"):
        doc.add(Heading("Teachers: average tokens per sample, with and without peer review "
                        "(paper Table 5)"))
        doc.add(Text("No sample was taught (the student made no mistake): there are no tokens "
                     "per sample."))
    if per_sample:
        reviewed = bool((run.review or {}).get("enabled"))
        doc.add(Heading("Teachers: average tokens per sample, with and without peer review "
                        "(paper Table 5)"))
        rows = [[name, _tokens(t["standard"]), _tokens(t["review"]), _tokens(t["peer_review"]),
                 None if not reviewed else _usd(t["review_usd"], 6)]
                for name, t in per_sample.items()]
        doc.add(Table(["teacher", "standard (without peer review)", "its reviews",
                       "with peer review (PR)", "review cost per sample"], rows,
                      f"Tokens per sample: the input + output tokens of the teacher's calls this "
                      f"run used (paid now, stored or replayed) / the {run.samples} samples taught "
                      "(the student's mistakes)"))
        doc.add(Text("Standard: the teach stage alone (the teacher's rationale and feedback for "
                     "every mistake), which is what the run uses without peer review: the review "
                     "stage does not change the teach stage. With peer review: the standard tokens "
                     "plus those of the reviews the teacher wrote of the committee's rationales "
                     "(reviews saved by early exit cost nothing). Review cost per "
                     "sample: the reviews' USD / the samples, at the spec's prices."
                     + ("" if reviewed else " Peer review was off in this run: only the standard "
                        "column is known.")))
    usage = run.teacher_usage()
    if not usage:
        return
    doc.add(Heading("Teachers: calls, tokens and cost (teach and review stages together)"))
    batched = any("batches" in u for u in usage.values())
    # the usage as billed, shown where a provider reported it
    billed = any(u["cached_input_tokens"] or u["reasoning_tokens"] for u in usage.values())
    rows = [[name, u["calls"], u["made"], u["reused"], u["retries"], f"{u['input_tokens']:,}"]
            + ([f"{u['cached_input_tokens']:,}"] if billed else []) + [f"{u['output_tokens']:,}"]
            + ([f"{u['reasoning_tokens']:,}"] if billed else []) + [_usd(u["usd"])]
            + ([f"batch ({u['batches']} batches)" if "batches" in u else "online"] if batched else [])
            for name, u in usage.items()]
    doc.add(Table(["teacher", "calls", "paid now", "reused (store/replay)", "retries", "in tokens"]
                  + (["of which cached"] if billed else []) + ["out tokens"]
                  + (["of which reasoning"] if billed else []) + ["USD"]
                  + (["mode"] if batched else []), rows,
                  "Teach and review stages together; USD at the spec's prices"
                  + (", a batch teacher's at its batch price" if batched else "")
                  + ("; cached input at the cached input price (the input price when the spec "
                     "gives none), reasoning tokens as output" if billed else "")))
    cut = (run.teach or {}).get("cut") or {}
    if cut:
        doc.add(Text("Rationales and feedback cut short by the output budget or empty (recorded "
                     "as they came; a cut one is still reviewed, an empty one is not): " + "; ".join(
                         f"{name} {c['truncated']} truncated, {c['empty']} empty (finish reasons: "
                         + ", ".join(f"{reason} {n}" for reason, n in sorted(c["finish_reasons"].items()))
                         + ")" for name, c in sorted(cut.items()))
                     + ". A thinking teacher's thoughts count against its output budget: raise "
                       "generation.max_tokens or its thinking budget."))


def _review(doc: Document, run: RunSummary, folder: Path) -> None:
    review = run.review
    if not review:
        return
    doc.add(Heading("Peer review: accepted rationales per teacher (paper Table 4)"))
    # the paper's Table 4 counts the one rationale drawn for each training sample
    per_teacher = (run.build or {}).get("per_teacher") or {}
    drawn = {teacher: kinds.get("rationale", 0) for teacher, kinds in per_teacher.items()}
    rows = []
    for teacher, written in review["rationales_per_teacher"].items():
        accepted = review["accepted_per_teacher"].get(teacher, 0)
        rows.append([teacher, written, accepted, _pct(accepted / written) if written else None]
                    + ([drawn.get(teacher, 0)] if run.build else []))
    rows.append(["total", review["rationales"], review["accepted"],
                 _pct(review["accepted"] / review["rationales"]) if review["rationales"] else None]
                + ([sum(drawn.values())] if run.build else []))
    doc.add(Table(["teacher", "rationales", "accepted", "accepted share"]
                  + (["drawn for training"] if run.build else []), rows,
                  "drawn for training: the accepted rationale each training sample uses "
                  f"(selection {run.build.get('selection')}), what paper Table 4 counts"
                  if run.build else ""))
    _gold_check(doc, review.get("gold_check"))
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
    add_review_quality(doc, run)


def _gold_check(doc: Document, gold: dict[str, Any] | None) -> None:
    """Accepted and rejected rationales against whether they reach the gold answer
    (``review.gold_check``), per teacher: how often review kept a wrong answer and dropped
    a right one."""
    if not gold:
        return
    doc.add(Heading("Peer review against the gold answer"))
    rows = []
    for teacher, c in [*gold["per_teacher"].items(), ("total", gold["total"])]:
        wrong = c["not_gold_accepted"] + c["not_gold_rejected"]
        right = c["gold_accepted"] + c["gold_rejected"]
        rows.append([teacher, c["gold_accepted"], c["gold_rejected"], c["not_gold_accepted"],
                     c["not_gold_rejected"], _pct(c["not_gold_accepted"] / wrong) if wrong else None,
                     _pct(c["gold_rejected"] / right) if right else None])
    dropped = gold.get("dropped_before_review", 0)
    doc.add(Table(["teacher", "gold, accepted", "gold, rejected", "not gold, accepted",
                   "not gold, rejected", "wrong answers kept", "right answers dropped"], rows,
                  "gold: the rationale's final answer, read with the task's extractor, is the "
                  "gold answer" + (f"; {dropped} dropped by the gold check before any review"
                                   if dropped else "")))


def _scoring(review: dict) -> str:
    """How the run's reviews were scored: "logprobs" or "text" (older runs say nothing: text)."""
    return ReviewScoring.of(review.get("scoring")).method


#: ``scored_by`` in reviews.jsonl and review/stats.json, in the order the report counts them.
_SCORED_BY = (("logprobs", "read from log-probabilities at the stated score"),
              ("logprobs-forced", "forced after a score cue"),
              ("text", "from the text (no log-probabilities returned)"),
              ("none", "no score"))


def _logprob_scoring(doc: Document, run: RunSummary, score_range) -> None:
    review = run.review or {}
    fallback = ReviewScoring.of(review.get("scoring")).fallback
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


def by_setting(runs: list[RunSummary]) -> dict[str, list[RunSummary]]:
    """The runs by the setting they run (the run a seed repeats, else their own name), each
    group in seed order as the plan made them (the first seed's run first)."""
    groups: dict[str, list[RunSummary]] = {}
    for run in runs:
        groups.setdefault(run.info.get("repeats") or run.name, []).append(run)
    for group in groups.values():
        group.sort(key=lambda r: r.info.get("repeats") is not None)
    return groups


def _spread(values: list[float]) -> tuple[float, float] | None:
    """(mean, sample standard deviation) of two or more values."""
    if len(values) < 2:
        return None
    return statistics.mean(values), statistics.stdev(values)


def _mean_sd(values: list[float]) -> str | None:
    found = _spread(values)
    if found is None:
        return _pct(values[0]) if values else None
    return f"{100 * found[0]:.2f}% ± {100 * found[1]:.2f}"


def _seeds(doc: Document, groups: dict[str, list[RunSummary]]) -> None:
    """With the spec's ``seeds``: per setting, each seed's tuned accuracy, and the mean and
    standard deviation over the seeds of the tuned accuracy and of the gain."""
    doc.add(Heading("Seeds: training and evaluation repeated"))
    rows = []
    for name, runs in groups.items():
        tuned = [a for r in runs if (a := r.accuracy("tuned")) is not None]
        gains = [t - b for r in runs if (t := r.accuracy("tuned")) is not None
                 and (b := r.accuracy("base")) is not None]
        per_seed = ", ".join(f"{r.info.get('train_seed')}: {_pct(r.accuracy('tuned')) or '-'}"
                             for r in runs)
        spread = _spread(gains)
        gain = points(gains[0]) if len(gains) == 1 else None if spread is None else \
            f"{100 * spread[0]:+.2f} ± {100 * spread[1]:.2f}"
        rows.append([name, len(runs), per_seed, _mean_sd(tuned), gain])
    doc.add(Table(["setting", "seeds", "tuned accuracy per seed", "tuned, mean ± sd",
                   "gain (points), mean ± sd"], rows,
                  "each seed trains and evaluates once (exam, teach, review and build shared); "
                  "sd: the sample standard deviation over the seeds (n - 1); the comparison "
                  "below pairs the first seed's runs"))


def _comparison(doc: Document, main: RunSummary, others: list[RunSummary], folder: Path,
                groups: dict[str, list[RunSummary]] | None = None) -> None:
    doc.add(Heading("Variants and sweep (paper Table 1 ablations, Figure 5)"))
    rows, unpaired, sampled = [], [], False
    for run in [main, *others]:
        change = ", ".join(f"{k} = {shown(v)}" for k, v in run.overrides.items()) or "(the spec)"
        tuned = _accuracy_cell(run, "tuned")
        if tuned is None and (run.metrics or {}).get("note"):
            tuned = "no training set"
        vs_main: list[Any] = [None, None, None]
        if run is main:
            vs_main[0] = "(the main run)"
        elif run.accuracy("tuned") is not None and main.accuracy("tuned") is not None:
            by_rates = rates_between(main.final_metrics, run.final_metrics)
            table = None if isinstance(by_rates, dict) else \
                table_between(main.final_metrics, run.final_metrics)
            if isinstance(by_rates, dict):  # k samples each: per-question rates, t-test
                sampled = True
                interval = by_rates.get("diff_ci95")
                vs_main = ["(rates over samples)", f"{points(by_rates['mean_difference'])}"
                           + (f" ({points_interval(interval)})" if interval else ""),
                           p_text(by_rates.get("p_value"))]
            elif isinstance(table, str):
                vs_main[0] = "not paired"
                unpaired.append(f"{run.name} ({table})")
            else:
                found = compare(table)
                vs_main = [f"{table.gained} / {table.lost}",
                           f"{points(table.difference)}"
                           + (f" ({points_interval(found.interval)})" if found.interval else ""),
                           p_text(found.p_value)]
        rows.append([run.name, change, _accuracy_cell(run, "base"), tuned, *vs_main,
                     None if not run.review else run.review["accepted"],
                     None if not run.build else run.build["examples"]])
    doc.add(Table(["run", "changes", "base", "tuned", "gained / lost vs main",
                   "difference vs main, points (95% CI)", "McNemar exact p", "accepted",
                   "training examples"], rows,
                  "Runs not finished yet show '-'. Accuracies with their 95% Wilson interval; "
                  "each run's tuned student against the main run's, paired by question (gained: "
                  "the main run's got it wrong, this one right); the difference's interval is "
                  "Newcombe's hybrid score interval (method 10): one that holds 0 is no evidence "
                  "of a difference"
                  + ("; runs decoded k times a question are compared on each question's "
                     "correctness rate over its samples instead (mean difference, a paired "
                     "t-test's p and its t interval)" if sampled else "")))
    if unpaired:
        doc.add(Text("Not paired with the main run (no test, no interval of the difference): "
                     + "; ".join(unpaired) + ". Runs pair only when their evaluations answered "
                     "the same questions (same indices, fields and gold answers) and their "
                     "metrics.json lists the questions each got right."))
    _curves(doc, [main, *others], folder, groups or {})


def _accuracy_cell(run: RunSummary, label: str) -> str | None:
    """A run's accuracy with its 95% interval (``33.00% (24.59-42.69%)``)."""
    m = (run.final_metrics or {}).get(label) or {}
    return with_interval(m.get("correct"), m.get("total"), m.get("accuracy"))


ALPHA = "training.alpha"
#: Shown with every curve's settings held fixed (the paper's Figure 5: "5 epochs").
_ALWAYS_SHOWN = ("training.epochs", "training.learning_rate")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _same(value: Any) -> str:
    """A setting's value as a comparable string (0 and 0.0 alike)."""
    number = _number(value)
    return repr(number) if number is not None else json.dumps(value, sort_keys=True, default=str)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _comparable(runs: list[RunSummary]) -> tuple[list[dict[str, Any]], bool]:
    """Each run's settings, and whether they are the resolved ones (every run.json has
    them); otherwise each run's overrides of the spec, with the alpha its
    run.json states (a key a run does not override holds the spec's value)."""
    if all(run.settings is not None for run in runs):
        return [dict(run.settings or {}) for run in runs], True
    found = []
    for run in runs:
        settings = dict(run.overrides)
        if run.info.get("alpha") is not None:
            settings[ALPHA] = run.info["alpha"]
        found.append(settings)
    return found, False


def _differences(a: dict[str, Any], b: dict[str, Any], key: str, resolved: bool) -> list[str]:
    """The settings but ``key`` in which run settings ``a`` and ``b`` differ, as text."""
    spec = "the spec's value"  # a key a run does not override (overrides mode)
    out = []
    for k in sorted((set(a) | set(b)) - {key}):
        if k in a and k in b and _same(a[k]) == _same(b[k]):
            continue
        mine = _show(a[k]) if k in a else ("-" if resolved else spec)
        theirs = _show(b[k]) if k in b else ("-" if resolved else spec)
        out.append(f"{k} ({mine} in the main run, {theirs} on the curve)")
    return out


def _curves(doc: Document, runs: list[RunSummary], folder: Path,
            seeds: dict[str, list[RunSummary]] | None = None) -> None:
    """Tuned accuracy against each swept number (alpha: paper Figure 5). A curve joins only
    runs that differ in that number alone; the main run (``runs[0]``) is left out of a
    curve whose runs differ from it in anything else, and the text says so. With seeds
    (``seeds``: each run's repeats by its name), a point is the mean over its seeds and its
    bar the standard deviation; else the bar is the point's Wilson interval."""
    seeds = seeds or {}
    settings, resolved = _comparable(runs)
    keys = list(dict.fromkeys([ALPHA] * any(ALPHA in r.overrides for r in runs) + [
        k for r in runs for k, v in r.overrides.items() if _number(v) is not None]))
    for key in keys:
        groups: dict[tuple, list[int]] = {}
        for i, run in enumerate(runs):
            if _number(settings[i].get(key)) is None or run.accuracy("tuned") is None:
                continue
            rest = tuple(sorted((k, _same(v)) for k, v in settings[i].items() if k != key))
            groups.setdefault(rest, []).append(i)
        drawn = sorted((m for m in groups.values()
                        if len({_number(settings[i][key]) for i in m}) >= 2),
                       key=lambda m: m[0])
        name = key.replace(".", "_")
        figure = " (paper Figure 5)" if key == ALPHA else ""
        for n, members in enumerate(drawn, start=1):
            seeded = {i: [a for r in seeds.get(runs[i].name, [runs[i]])
                          if (a := r.accuracy("tuned")) is not None] for i in members}
            spread = {i: found for i in members if (found := _spread(seeded[i]))}
            points = [(float(_number(settings[i][key]) or 0.0),
                       spread[i][0] if i in spread else runs[i].accuracy("tuned") or 0.0)
                      for i in members]
            base = next((runs[i].accuracy("base") for i in members
                         if runs[i].accuracy("base") is not None), None)
            suffix = "" if n == 1 else f"_{n}"
            if spread:  # seeds: mean +- sd over them
                intervals = {x: (spread[i][0] - spread[i][1], spread[i][0] + spread[i][1])
                             for (x, _), i in zip(points, members, strict=True) if i in spread}
                label = "mean ± sd over seeds"
            else:
                students = [(runs[i].final_metrics or {}).get("tuned") or {} for i in members]
                intervals = {x: found for (x, _), m in zip(points, students, strict=True)
                             if (found := wilson_interval(m.get("correct") or 0, m.get("total") or 0))}
                label = "95% interval (Wilson)"
            curve = accuracy_curve(points, base, key, folder / f"accuracy_vs_{name}{suffix}.png",
                                   intervals=intervals, interval_label=label)
            if curve:
                doc.add(Image(curve, f"Tuned accuracy against {key}{figure}"
                              + (f", curve {n} of {len(drawn)}" if len(drawn) > 1 else "")))
            doc.add(Text(_curve_text(runs, settings, resolved, key, members)))
        if not drawn:
            swept = {_number(r.overrides.get(key)) for r in runs} - {None}
            if len(swept) >= 2:
                doc.add(Text(f"No curve against {key}: no two finished runs differ in {key} "
                             "alone (each differs from the others in more than that)."))
            continue
        main_value = _number(settings[0].get(key))
        if runs[0].accuracy("tuned") is None or main_value is None \
                or any(0 in members for members in drawn):
            continue
        whose = "each curve's" if len(drawn) > 1 else "its"
        gaps = "; ".join(", ".join(_differences(settings[0], settings[m[0]], key, resolved))
                         for m in drawn)
        doc.add(Text(f"The main run {runs[0].name} ({key} = {main_value:g}) is left out of "
                     f"the {key} curve{'s' if len(drawn) > 1 else ''}: besides {key} it differs "
                     f"from {whose} runs in {gaps}."))


def _curve_text(runs: list[RunSummary], settings: list[dict[str, Any]], resolved: bool,
                key: str, members: list[int]) -> str:
    """Which runs a curve joins and what it holds fixed."""
    joined = ", ".join(f"{runs[i].name} ({_number(settings[i][key]):g})"
                       for i in sorted(members, key=lambda i: _number(settings[i][key]) or 0.0))
    fixed = settings[members[0]]
    main = runs[0].name
    if resolved:
        shown = [k for k in _ALWAYS_SHOWN if k != key and k in fixed]
        shown += sorted(k for k in fixed if k != key and k not in shown
                        and _same(fixed[k]) != _same(settings[0].get(k)))
        held = ", ".join(f"{k} = {_show(fixed[k])}" for k in shown)
        rest = f"every other setting as in the main run {main}"
    else:
        shown = sorted(k for k in fixed if k != key)
        held = ", ".join(f"{k} = {_show(fixed[k])}" for k in shown)
        rest = ("every other setting as in the spec (runs compared by their overrides of the "
                "spec: some run's run.json holds no settings)")
    return (f"This curve joins runs that differ in {key} alone: {joined}. Held fixed: "
            + (f"{held}; " if held else "") + rest + ".")
