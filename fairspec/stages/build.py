"""The build stage (paper 4.3): the instruction-tuning set from accepted rationales and feedback.

A mistake becomes a training sample when it has at least one accepted rationale and at
least one usable feedback. ``random_one`` (the paper) picks one of each per sample,
seeded by the spec's seed and the sample, so the choice does not depend on row order;
``all`` keeps every accepted rationale and every feedback. Each example is the
Appendix C template (the prompt half) and the teacher's text as the completion; a
sample's examples are adjacent, so batches can pair them.

``task.decontaminate`` (:func:`decontaminate`): each new example's question, rationale or
feedback is looked for in the evaluation split's questions (``task.decontaminate_ngram``-word
n-grams, :mod:`fairspec.tasks.contamination`); ``report`` counts them in stats.json and lists
every one in overlaps.jsonl (which ``fairspec export`` carries), ``drop`` also removes them.
A test split that cannot be read (a hub dataset offline) never fails the build: stats.json
says the check did not run, and why.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairspec.answering import load_split
from fairspec.artifacts import (
    atomic_write_text,
    read_jsonl,
    write_jsonl,
    write_stats,
)
from fairspec.cards import dataset_card
from fairspec.errors import DataError
from fairspec.plan.stage_settings import BuildSettings, DecontaminateSettings
from fairspec.stages.context import StageContext
from fairspec.tasks.contamination import Match, TestNgrams, question_text
from fairspec.templates import render

log = logging.getLogger(__name__)

PREVIEW_ROWS = 50
#: Contaminated examples listed in stats.json's ``decontamination.examples`` (counts cover all).
LISTED_OVERLAPS = 10
#: Where an example's text comes from, in the order they are checked and listed.
SOURCES = ("question", "rationale", "feedback")


def build_examples(mistakes: list[dict[str, Any]], accepted: list[dict[str, Any]],
                   feedback: list[dict[str, Any]], templates: dict[str, str], *,
                   selection: str, seed: int) -> list[dict[str, Any]]:
    """The training examples, sample by sample (rationale first, then feedback)."""
    rationales_of = defaultdict(list)
    for r in accepted:
        rationales_of[r["index"]].append(r)
    feedback_of = defaultdict(list)
    for f in feedback:
        if f["status"] in ("ok", "truncated") and (f["text"] or "").strip():
            feedback_of[f["index"]].append(f)
    examples = []
    for mistake in sorted(mistakes, key=lambda m: m["index"]):
        index = mistake["index"]
        rationales = sorted(rationales_of[index], key=lambda r: r["teacher"])
        feedbacks = sorted(feedback_of[index], key=lambda f: f["teacher"])
        if not rationales or not feedbacks:
            continue
        if selection == "random_one":
            rng = random.Random(f"{seed}:{index}")
            rationales, feedbacks = [rng.choice(rationales)], [rng.choice(feedbacks)]
        fields = mistake["fields"]
        prompt_rt = render(templates["rationale"], fields, name="training.templates.rationale",
                           row=index)
        prompt_fb = render(templates["feedback"], {**fields, "student_answer": mistake["output"]},
                           name="training.templates.feedback", row=index)
        for r in rationales:
            examples.append({"sample": index, "kind": "rationale", "teacher": r["teacher"],
                             "prompt": prompt_rt, "completion": r["text"]})
        for f in feedbacks:
            examples.append({"sample": index, "kind": "feedback", "teacher": f["teacher"],
                             "prompt": prompt_fb, "completion": f["text"]})
    return examples


def accumulate(earlier: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Round k's training set with ``rounds.data: accumulate``: every earlier round's
    examples, then this round's, each distinct example once (a rationale the store gave again
    for a question asked before is the same example; feedback on a new wrong answer is not)."""
    seen, out = set(), []
    for example in [*earlier, *new]:
        key = (example["kind"], example["prompt"], example["completion"])
        if key not in seen:
            seen.add(key)
            out.append(example)
    return out


def find_overlaps(examples: list[dict[str, Any]], questions: Mapping[int, str],
                  ngrams: TestNgrams) -> list[dict[str, Match]]:
    """Per example, the test question each of its texts holds: ``question`` (its sample's
    question, checked once per sample) and its completion under its kind (``rationale`` or
    ``feedback``); an example without any is ``{}``."""
    of_question: dict[int, Match | None] = {}
    found = []
    for example in examples:
        sample = example["sample"]
        if sample not in of_question:
            of_question[sample] = ngrams.find(questions.get(sample, ""))
        hits = {"question": of_question[sample]} if of_question[sample] else {}
        completion = ngrams.find(example["completion"] or "")
        if completion is not None:
            hits[example["kind"]] = completion
        found.append(hits)
    return found


def overlap_rows(examples: list[dict[str, Any]], found: list[dict[str, Match]]
                 ) -> list[dict[str, Any]]:
    """Every contaminated example (``overlaps.jsonl``): its train index, kind and teacher, and
    per text that holds a test question (``source``: question, rationale, feedback) the test
    index and the shared n-gram; ``source`` names the first of them."""
    rows = []
    for example, hits in zip(examples, found, strict=True):
        if hits:
            rows.append({"train_index": example["sample"], "kind": example["kind"],
                         "teacher": example["teacher"],
                         "source": next(s for s in SOURCES if s in hits),
                         "found": {s: {"test_index": hits[s].test_index, "ngram": hits[s].ngram}
                                   for s in SOURCES if s in hits}})
    return rows


def overlap_stats(examples: list[dict[str, Any]], found: list[dict[str, Match]],
                  overlaps: list[dict[str, Any]], ngrams: TestNgrams) -> dict[str, Any]:
    """What the check found: counts per source and the first :data:`LISTED_OVERLAPS`
    contaminated examples of ``overlaps`` (:func:`overlap_rows`: train index, test index,
    the shared n-gram)."""
    listed = [{**{k: row[k] for k in ("train_index", "kind", "teacher", "source")},
               **row["found"][row["source"]]} for row in overlaps[:LISTED_OVERLAPS]]
    return {
        "test_questions": ngrams.questions,
        "short_test_questions": ngrams.short_questions,
        "shared_ngrams_ignored": ngrams.shared_ngrams,
        "examples_checked": len(examples),
        "contaminated_examples": sum(1 for hits in found if hits),
        "by_source": {s: sum(1 for hits in found if s in hits) for s in SOURCES},
        "examples": listed,
    }


def decontaminate(examples: list[dict[str, Any]], mistakes: list[dict[str, Any]],
                  check: DecontaminateSettings, base_dir: Path
                  ) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]], str | None]:
    """The examples to train on (without the contaminated ones with ``drop``), what the
    check found (stats.json's ``decontamination``), every contaminated example
    (:func:`overlap_rows`) and the test split's fingerprint (None when it could not be read)."""
    mode = check.mode
    if check.dataset is None or check.n is None or check.shared_limit is None or check.fields is None:
        raise DataError(f"task.decontaminate: {mode} without its test split in the plan "
                        "(compile the plan again)")
    head = {"mode": mode, "n": check.n, "split": check.dataset.split}
    try:
        split = load_split(check, base_dir)
    except (DataError, OSError) as exc:
        log.warning("task.decontaminate: the %s split could not be read, so the training set "
                    "was not checked: %s", head["split"], exc)
        return examples, {**head, "checked": False,
                          "reason": f"the {head['split']} split could not be read: {exc}"}, [], None
    started = time.perf_counter()
    names = [name for name in check.fields if name != "answer"]
    ngrams = TestNgrams(((row.index, question_text(row.fields, names)) for row in split.rows),
                        n=check.n, shared_limit=check.shared_limit)
    questions = {m["index"]: question_text(m["fields"], names) for m in mistakes}
    found = find_overlaps(examples, questions, ngrams)
    overlaps = overlap_rows(examples, found)
    stats = {**head, "checked": True, **overlap_stats(examples, found, overlaps, ngrams)}
    if mode == "drop":
        examples = [e for e, hits in zip(examples, found, strict=True) if not hits]
        stats["dropped_examples"] = stats["contaminated_examples"]
    log.info("task.decontaminate: %d of %d examples hold a %s question (%.2f s)",
             stats["contaminated_examples"], stats["examples_checked"], head["split"],
             time.perf_counter() - started)
    return examples, stats, overlaps, split.fingerprint


#: The built set's columns, as its card describes them.
COLUMNS = {
    "sample": "the question's index in the train split (a sample's rationale and feedback "
              "examples share it)",
    "kind": "rationale (learn to answer) or feedback (learn what was wrong in the student's answer)",
    "teacher": "the teacher that wrote the completion",
    "prompt": "the instruction the student is tuned on (the training template filled in)",
    "completion": "what the student learns to write (the accepted rationale, or the feedback)",
}


def training_set_card(card: Mapping[str, Any], stats: dict[str, Any]) -> str:
    """The built set's dataset card (a ``save_to_disk`` folder: ``load_from_disk`` reads it)."""
    counts = {"student's mistakes": stats["mistakes"],
              "samples (an accepted rationale and a feedback)": stats["samples"],
              "examples": stats["examples"], "rationale examples": stats["rationale_examples"],
              "feedback examples": stats["feedback_examples"], "selection": stats["selection"]}
    if "dropped_examples" in stats.get("decontamination", {}):
        counts["examples dropped: they hold a test question"] = \
            stats["decontamination"]["dropped_examples"]
    return dataset_card(card, counts=counts, columns=COLUMNS,
                        title=f"{card['run']}: the FAIR training set")


def run(ctx: StageContext) -> dict[str, Any]:
    ctx.prepare()
    settings = ctx.settings_as(BuildSettings)
    mistakes = list(read_jsonl(ctx.input("exam", "mistakes.jsonl")))
    accepted = list(read_jsonl(ctx.input("review", "accepted.jsonl")))
    feedback = list(read_jsonl(ctx.input("teach", "feedback.jsonl")))
    templates = {role: ctx.read_template(ref) for role, ref in settings.templates.items()}
    examples = build_examples(mistakes, accepted, feedback, templates,
                              selection=settings.selection, seed=settings.seed)
    check = settings.decontaminate
    decontamination, test_split = None, None
    if check.mode != "off":
        examples, decontamination, overlaps, test_split = decontaminate(
            examples, mistakes, check, ctx.services.base_dir)
        write_jsonl(ctx.output("overlaps.jsonl"), overlaps)
    from datasets import Dataset, load_from_disk

    new = len(examples)
    if ctx.declared_input("build", "dataset/") is not None:  # rounds.data: accumulate
        earlier = load_from_disk(str(ctx.input("build", "dataset/"))).to_list()
        examples = accumulate(earlier, examples)
    columns = ("sample", "kind", "teacher", "prompt", "completion")
    Dataset.from_dict({c: [e[c] for e in examples] for c in columns}).save_to_disk(
        str(ctx.output("dataset/")))
    write_jsonl(ctx.output("preview.jsonl"), examples[:PREVIEW_ROWS])
    per_teacher = Counter((e["teacher"], e["kind"]) for e in examples)
    stats = {
        "mistakes": len(mistakes),
        "samples": len({e["sample"] for e in examples}),
        "examples": len(examples),
        "rationale_examples": sum(1 for e in examples if e["kind"] == "rationale"),
        "feedback_examples": sum(1 for e in examples if e["kind"] == "feedback"),
        "per_teacher": {t: {k: per_teacher[(t, k)] for k in ("rationale", "feedback")}
                        for t in sorted({e["teacher"] for e in examples})},
        "selection": settings.selection,
    }
    if ctx.declared_input("build", "dataset/") is not None:  # this round's, and the earlier ones'
        stats.update(round_examples=new, carried_examples=len(earlier),
                     repeated_examples=len(earlier) + new - len(examples))
        if decontamination is not None:
            decontamination["note"] = ("checks this round's examples; the carried ones were "
                                       "checked by the round that built them")
    if decontamination is not None:
        stats["decontamination"] = decontamination
    if settings.card is not None:
        atomic_write_text(ctx.output("dataset/") / "README.md", training_set_card(settings.card, stats))
    write_stats(ctx.output("stats.json"), stats)
    ctx.finish({"samples": stats["samples"], "examples": stats["examples"]},
               extra_inputs={"decontaminate": test_split} if test_split else None)
    return stats
