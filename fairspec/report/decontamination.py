"""The report's section on test questions in the training set (``task.decontaminate``), from
the build stage's ``decontamination`` stats: how many examples share an n-gram with a test
question, through which text, and the first ones with the words they share."""

from __future__ import annotations

from typing import Any

from fairspec.report.collect import RunSummary
from fairspec.report.document import Document, Heading, Table, Text

HEADING = "Test questions in the training set"


def add_decontamination(doc: Document, run: RunSummary) -> None:
    """The section, for a run whose build stage ran the check; nothing with ``off``."""
    found = (run.build or {}).get("decontamination")
    if not found:
        return
    doc.add(Heading(HEADING))
    if not found.get("checked"):
        doc.add(Text(f"The training set was not checked against the {found['split']} split "
                     f"(task.decontaminate: {found['mode']}): {found.get('reason', 'no reason given')}."))
        return
    doc.add(Text(_summary(found)))
    if found["examples"]:
        shown = len(found["examples"])
        doc.add(Table(
            ["train question", "example", "found in", f"{found['split']} question", "shared words"],
            [[e["train_index"], f"{e['kind']} by {e['teacher']}", e["source"], e["test_index"],
              e["ngram"]] for e in found["examples"]],
            f"The first {shown} of {found['contaminated_examples']} (question numbers are row "
            "positions in their split; the words as compared: lowercase, no punctuation)"))
    if found.get("note"):
        doc.add(Text(f"This round {found['note']}."))


def _summary(found: dict[str, Any]) -> str:
    n, split, checked = found["n"], found["split"], found["examples_checked"]
    method = (f"{n} consecutive words shared after lowercasing and removing punctuation; a "
              f"{split} question shorter than {n} words must appear whole")
    if found.get("short_test_questions"):
        method += f" ({found['short_test_questions']} are)"
    if found.get("shared_ngrams_ignored"):
        method += (f"; {found['shared_ngrams_ignored']} word sequences found in more than ten "
                   f"{split} questions are template text and were not looked for")
    contaminated = found["contaminated_examples"]
    if not contaminated:
        return (f"None of the {checked} training examples holds one of the "
                f"{found['test_questions']} {split} questions ({method}).")
    by = found["by_source"]
    through = ", ".join(f"{by[s]} in the {s}" for s in ("question", "rationale", "feedback") if by.get(s))
    if found["mode"] == "drop":
        action = (f"They were dropped before training (task.decontaminate: drop): "
                  f"{found['dropped_examples']} examples fewer.")
    else:
        action = ("They were kept and trained on (task.decontaminate: report); "
                  "task.decontaminate: drop removes them.")
    return (f"{contaminated} of the {checked} training examples hold one of the "
            f"{found['test_questions']} {split} questions ({through}; {method}). {action}")
