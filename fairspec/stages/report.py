"""The report stage: one readable page per run (paper Tables 1, 2, 4 and 5 for this run)."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

from ..plan.model import RunPlan
from ..run.artifacts import atomic_write_text, write_manifest
from ..spec.schema import Spec


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def report_markdown(spec: Spec, run: RunPlan) -> str:
    root = Path(run.run_dir)
    exam = _load(root / "exam" / "stats.json")
    teach = _load(root / "teach" / "stats.json")
    review = _load(root / "review" / "stats.json")
    build = _load(root / "build" / "stats.json")
    train = _load(root / "train" / "stats.json")
    metrics = _load(root / "evaluate" / "metrics.json")
    out = [f"# FAIR run `{run.name}`", "", spec.description or "", ""]
    if metrics:
        base, tuned = metrics.get("base"), metrics.get("tuned")
        out += ["## Accuracy (paper Table 1)", ""]
        out += _table(["student", "correct / total", "accuracy"],
                      [[label, f"{m['correct']} / {m['total']}", _pct(m["accuracy"])]
                       for label, m in (("base", base), ("tuned", tuned)) if m])
        if metrics.get("note"):
            out += [f"Note: {metrics['note']}", ""]
    if exam:
        out += ["## Exam (paper Table 2)", ""]
        out += _table(["#wrong / #train", "no stated answer", "truncated"],
                      [[f"{exam['wrong']} / {exam['total']}", exam["invalid"], exam["truncated"]]])
    if teach:
        out += ["## Teachers: calls, tokens and cost (paper Table 5)", ""]
        rows = [[name, u["calls"], u["made"], u["cached"] + u["replayed"], u["input_tokens"],
                 u["output_tokens"], "-" if u["usd"] is None else f"${u['usd']:.4f}"]
                for name, u in teach["teachers"].items()]
        out += _table(["teacher", "calls", "paid now", "reused", "in tokens", "out tokens", "USD"], rows)
    if review:
        out += ["## Peer review: accepted rationales per teacher (paper Table 4)", ""]
        out += _table(["teacher", "accepted", "rationales"],
                      [[t, review["accepted_per_teacher"].get(t, 0), n]
                       for t, n in review["rationales_per_teacher"].items()])
        if review["enabled"]:
            out += [f"Reviews made: {review['reviews_made']}, saved by early exit: "
                    f"{review['reviews_saved_by_early_exit']}, invalid scores: "
                    f"{review['invalid_scores']}.", ""]
            matrix = review["mean_score_matrix"]
            authors = sorted({a for row in matrix.values() for a in row})
            out += ["Mean score given (rows: reviewer, columns: author):", ""]
            out += _table(["reviewer"] + authors,
                          [[r] + ["-" if row.get(a) is None else f"{row[a]:.2f}" for a in authors]
                           for r, row in matrix.items()])
        else:
            out += ["Peer review was off: every usable rationale was kept.", ""]
    if build:
        out += ["## Training set", "",
                f"{build['samples']} samples, {build['rationale_examples']} rationale and "
                f"{build['feedback_examples']} feedback examples (selection: {build['selection']}).", ""]
        if build["samples"] == 0:
            out += ["No mistake had both an accepted rationale and a feedback.", ""]
    if train:
        out += ["## Training", ""]
        if train.get("skipped"):
            out += [train["skipped"], ""]
        else:
            out += [f"{train['steps']} steps; loss {train['first_loss']} -> {train['last_loss']}; "
                    f"{train['truncated']} examples truncated.", ""]
    return "\n".join(out)


def run_report(spec: Spec, run: RunPlan, folder: Path) -> dict[str, Any]:
    started = time.time()
    folder.mkdir(parents=True, exist_ok=True)
    text = report_markdown(spec, run)
    atomic_write_text(folder / "report.md", text)
    page = ("<!doctype html><meta charset='utf-8'><title>" + html.escape(run.name)
            + "</title><pre style='font: 14px/1.4 monospace; max-width: 60em; margin: 2em auto'>"
            + html.escape(text) + "</pre>")
    atomic_write_text(folder / "report.html", page)
    write_manifest(folder, stage="report", fingerprint=run.stage("report").fingerprint, inputs={},
                   outputs=["report.md", "report.html"], counts={}, started=started)
    return {"report": str(folder / "report.md")}
