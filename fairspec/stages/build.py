"""The build stage (paper 4.3): the instruction-tuning set from accepted rationales and feedback.

A mistake becomes a training sample when it has at least one accepted rationale and at
least one usable feedback. ``random_one`` (the paper) picks one of each per sample,
seeded by the spec's seed and the sample, so the choice does not depend on row order;
``all`` keeps every accepted rationale and every feedback. Each example is the
Appendix C template (the prompt half) and the teacher's text as the completion; a
sample's examples are adjacent, so batches can pair them.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any

from fairspec.artifacts import (
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
    write_jsonl,
)
from fairspec.cards import dataset_card
from fairspec.stages.context import StageContext
from fairspec.templates import render

PREVIEW_ROWS = 50


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
        prompt_rt = render(templates["rationale"], fields, name="training.templates.rationale")
        prompt_fb = render(templates["feedback"], {**fields, "student_answer": mistake["output"]},
                           name="training.templates.feedback")
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


#: The built set's columns, as its card describes them.
COLUMNS = {
    "sample": "the question's index in the train split (a sample's rationale and feedback "
              "examples share it)",
    "kind": "rationale (learn to answer) or feedback (learn what was wrong in the student's answer)",
    "teacher": "the teacher that wrote the completion",
    "prompt": "the instruction the student is tuned on (the training template filled in)",
    "completion": "what the student learns to write (the accepted rationale, or the feedback)",
}


def training_set_card(card: dict[str, Any], stats: dict[str, Any]) -> str:
    """The built set's dataset card (a ``save_to_disk`` folder: ``load_from_disk`` reads it)."""
    counts = {"student's mistakes": stats["mistakes"],
              "samples (an accepted rationale and a feedback)": stats["samples"],
              "examples": stats["examples"], "rationale examples": stats["rationale_examples"],
              "feedback examples": stats["feedback_examples"], "selection": stats["selection"]}
    return dataset_card(card, counts=counts, columns=COLUMNS,
                        title=f"{card['run']}: the FAIR training set")


def run(ctx: StageContext) -> dict[str, Any]:
    ctx.prepare()
    settings = ctx.settings
    mistakes = list(read_jsonl(ctx.input("exam", "mistakes.jsonl")))
    accepted = list(read_jsonl(ctx.input("review", "accepted.jsonl")))
    feedback = list(read_jsonl(ctx.input("teach", "feedback.jsonl")))
    templates = {role: ctx.read_template(ref) for role, ref in settings["templates"].items()}
    examples = build_examples(mistakes, accepted, feedback, templates,
                              selection=settings["selection"], seed=settings["seed"])
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
        "selection": settings["selection"],
    }
    if ctx.declared_input("build", "dataset/") is not None:  # this round's, and the earlier ones'
        stats.update(round_examples=new, carried_examples=len(earlier),
                     repeated_examples=len(earlier) + new - len(examples))
    if "card" in settings:
        atomic_write_text(ctx.output("dataset/") / "README.md", training_set_card(settings["card"], stats))
    atomic_write_json(ctx.output("stats.json"), stats)
    ctx.finish({"samples": stats["samples"], "examples": stats["examples"]})
    return stats
