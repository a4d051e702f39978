"""Model and dataset cards in the Hugging Face format: YAML metadata between ``---`` lines,
then Markdown. Written from plain facts (no spec); nothing here renders a template, and
the texts are fairspec's own (names, numbers, settings), never model output.

The tuned model's card is written by the train stage with a results block the evaluate
stage fills in (:func:`with_results`): the accuracy is known only after the evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

RESULTS_START = "<!-- fairspec:results -->"
RESULTS_END = "<!-- /fairspec:results -->"
TAGS = ["fairspec", "fair", "distillation", "peer-review"]
_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def _front_matter(meta: Mapping[str, Any]) -> str:
    return "---\n" + yaml.safe_dump({k: v for k, v in meta.items() if v not in (None, [], {})},
                                     sort_keys=False, allow_unicode=True) + "---\n"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def dataset_label(card: Mapping[str, Any]) -> str:
    """The benchmark as a card names it: its hub id, else its file's name."""
    return card.get("dataset_hf") or card.get("dataset_name") or "a local dataset"


def _license_section(what: str) -> str:
    return ("## License\n\n"
            f"Not set by fairspec: add `license:` to the metadata above before you share {what}. "
            "The base model's license, the benchmark's, and the teacher providers' terms of use "
            "for their outputs all apply.\n")


def model_card(card: Mapping[str, Any], *, hyperparameters: Mapping[str, Any],
               data: Mapping[str, Any], training: Mapping[str, Any]) -> str:
    """The tuned model's card, with an empty results block.

    ``card``: the run's identity (spec, run, base model, benchmark, splits, fingerprint);
    ``data``: the build stage's counts; ``training``: the train stage's results."""
    base = card.get("base_model_name") or "the student"
    meta = {
        "base_model": card.get("base_model_hub"),
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": TAGS,
        "datasets": [card["dataset_hf"]] if card.get("dataset_hf") else None,
    }
    mistakes, samples = int(data.get("mistakes") or 0), int(data.get("samples") or 0)
    teachers = data.get("per_teacher") or {}
    rows = [[name, t.get("rationale", 0), t.get("feedback", 0)] for name, t in sorted(teachers.items())]
    alpha = hyperparameters.get("alpha")
    out = [
        _front_matter(meta),
        f"# {card['run']}: {base} tuned with FAIR\n",
        f"{base} fine-tuned by [fairspec](https://pypi.org/project/fairspec/) with FAIR "
        "(Fault-Aware DIstillation via peer-Review): the student took an exam on the training "
        "split; for each question it got wrong, a committee of teacher LLMs wrote a correct "
        "rationale and feedback on the student's wrong reasoning, reviewed each other's "
        "rationales, and only rationales the reviewers accepted were kept. The student was "
        f"then tuned on both, with L = {alpha} * L_feedback + (1 - {alpha}) * L_rationale.\n",
        "## Training data\n",
        _table(["benchmark", "split", "student's mistakes", "with an accepted rationale",
                "examples (rationale + feedback)"],
               [[dataset_label(card), card.get("train_split"), mistakes,
                 f"{samples} ({_pct(samples, mistakes)})",
                 f"{data.get('examples', 0)} ({data.get('rationale_examples', 0)} + "
                 f"{data.get('feedback_examples', 0)})"]]) + "\n",
    ]
    if rows:
        out.append(f"Examples per teacher (selection: {data.get('selection', '-')}):\n\n"
                   + _table(["teacher", "rationale", "feedback"], rows) + "\n")
    out += [
        "## Training\n",
        _table(["setting", "value"], [[k, v] for k, v in hyperparameters.items()]) + "\n",
        f"{training.get('steps', 0)} optimizer steps over {training.get('examples', 0)} examples"
        + (f"; loss {training['first_loss']:.4f} -> {training['last_loss']:.4f}"
           if training.get("first_loss") is not None and training.get("last_loss") is not None else "")
        + (f"; {training['world_size']} process(es)" if training.get("world_size") else "") + ".\n",
        "## Results\n",
        RESULTS_START + "\n_Not evaluated yet: the run's evaluate stage adds the zero-shot "
        "accuracy before and after tuning here._\n" + RESULTS_END + "\n",
        "## How it was made\n",
        f"The `{card['run']}` run of the fairspec spec `{card['spec']}` (train stage fingerprint "
        f"`{card.get('fingerprint', '-')}`). The run folder's `record/` holds the spec and every "
        "teacher call: `fairspec run record/spec.yaml --replay record/calls.jsonl` remakes this "
        "model with no API key.\n",
        _license_section("the model"),
    ]
    return "\n".join(out)


def with_results(text: str, card: Mapping[str, Any], metrics: Mapping[str, Any], *,
                 headline: str | None = None) -> str:
    """The model card ``text`` with its results block (and ``model-index`` metadata) made
    from the evaluate stage's ``metrics`` (``base`` / ``tuned``: correct, total, accuracy,
    and ``ci95``, the accuracy's 95% interval, where computed). ``headline``: the sentence
    on the change, as the evaluate stage words it from its paired test (None: the change
    in points, untested)."""
    split = metrics.get("split", card.get("test_split", "test"))
    rows, index_metrics = [], []
    for label, who in (("base", "before tuning (base student)"), ("tuned", "after FAIR tuning")):
        m = metrics.get(label)
        if m:
            interval = m.get("ci95")
            rows.append([who, f"{m['correct']} / {m['total']}", f"{100 * m['accuracy']:.2f}%",
                         f"{100 * interval[0]:.2f}-{100 * interval[1]:.2f}%" if interval else None])
            index_metrics.append({"type": "accuracy", "value": round(float(m["accuracy"]), 6),
                                  "name": f"zero-shot accuracy, {who}"})
    block = (f"Zero-shot accuracy on the {dataset_label(card)} {split} split"
             f" (decoding: {metrics.get('decoding', card.get('decoding', '-'))}):\n\n"
             + _table(["student", "correct / total", "accuracy", "95% interval (Wilson)"], rows)
             + "\n")
    if headline:
        block += f"\n{headline}\n"
    elif metrics.get("gain") is not None:
        block += f"\nChange after FAIR tuning: {100 * metrics['gain']:+.2f} points (not tested).\n"
    start, end = text.find(RESULTS_START), text.find(RESULTS_END)
    if start < 0 or end < start:
        raise ValueError("the model card has no fairspec results block")
    text = text[:start] + RESULTS_START + "\n" + block + text[end:]
    found = _FRONT.match(text)
    meta = yaml.safe_load(found.group(1)) if found else {}
    meta["model-index"] = [{
        "name": card["run"],
        "results": [{
            "task": {"type": "text-generation", "name": "zero-shot answering"},
            "dataset": {"name": dataset_label(card), "type": dataset_label(card), "split": split,
                        **({"config": card["dataset_config"]} if card.get("dataset_config") else {})},
            "metrics": index_metrics,
        }],
    }]
    return _front_matter(meta) + (text[found.end():] if found else text)


def dataset_card(card: Mapping[str, Any], *, counts: Mapping[str, Any], columns: Mapping[str, str],
                 data_files: list[dict[str, str]] | None = None, title: str) -> str:
    """A dataset card: what the rows are, how many, where they came from.

    ``data_files``: the ``configs`` entry that tells ``datasets.load_dataset`` which files
    hold which split (None: a ``save_to_disk`` folder, read with ``load_from_disk``)."""
    meta = {
        "tags": TAGS,
        "task_categories": ["text-generation"],
        "configs": [{"config_name": "default", "data_files": data_files}] if data_files else None,
    }
    out = [
        _front_matter(meta),
        f"# {title}\n",
        f"Made by fairspec's `{card['run']}` run of the spec `{card['spec']}` with FAIR "
        "(Fault-Aware DIstillation via peer-Review), from the student's mistakes on the "
        f"{dataset_label(card)} {card.get('train_split', 'train')} split"
        + (f" (student: {card['base_model_name']})" if card.get("base_model_name") else "") + ".\n",
        _table(["count", "value"], [[k, v] for k, v in counts.items()]) + "\n",
        "## Columns\n",
        _table(["column", "what it holds"], [[f"`{k}`", v] for k, v in columns.items()]) + "\n",
        "Texts written by the teacher models and the student are model output: read them as "
        "such. No API key, call key or local path is in the data.\n",
        _license_section("the data"),
    ]
    return "\n".join(out)
