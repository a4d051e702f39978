"""The tables of docs/experiments/svamp-authors.md, read from the run folders of
``specs/svamp-authors.yaml`` (``fairspec run`` it first; every variant, or some).

    python bench/authors_round.py RUNS_DIR > table.md

RUNS_DIR is the spec's output folder (``runs/`` beside it). Nothing is recomputed: each
number is read from a stage's stats.json, metrics.json or manifest.json; the intervals and
paired tests are the report's own (``fairspec.report.significance``, on scipy: the ``stats``
extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fairspec.report import significance

PAPER_TABLE_4 = {"gpt": 161, "gemini": 87, "mixtral": 117}  # one rationale drawn per sample
STAGES = ("exam", "teach", "review", "build", "train", "evaluate")


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


#: the spec's runs in its order: the main run, then its variants
ORDER = ("", "no-review", "only-gpt", "only-gemini", "only-mixtral", "alpha-0", "alpha-1", "gold-only",
         "gold-and-review")


def runs(root: Path) -> list[Path]:
    found = [p.parent for p in root.glob("svamp-authors*/run.json")]

    def rank(folder: Path) -> tuple[int, str]:
        variant = read(folder / "run.json").get("variant") or ""
        return (ORDER.index(variant) if variant in ORDER else len(ORDER), folder.name)
    return sorted(found, key=rank)


def changes(folder: Path) -> str:
    overrides = read(folder / "run.json").get("overrides") or {}
    return ", ".join(f"{k}: {v}" for k, v in overrides.items()) or "the spec (peer review on)"


def accuracy(metrics: dict, which: str) -> str:
    """``32 / 300 (10.67%, 7.66-14.67%)``: the count, the accuracy and its Wilson interval."""
    part = metrics.get(which) or {}
    if not part.get("total"):
        return "-"
    correct, total = int(part["correct"]), int(part["total"])
    interval = significance.interval_text(significance.wilson_interval(correct, total))
    return f"{correct} / {total} ({100 * correct / total:.2f}%" + (f", {interval})" if interval else ")")


def paired(table: significance.PairedTable | str) -> str:
    """A paired change: ``+34 / -12, p = 0.002, +7.33 (+2.92 to +11.91)``; or why there is none."""
    if isinstance(table, str):
        return table
    found = significance.compare(table)
    return (f"+{table.gained} / -{table.lost}, p = {significance.p_text(found.p_value)}, "
            f"{significance.points(table.difference)} ({significance.points_interval(found.interval)})")


def main(root: Path) -> None:
    folders = runs(root)
    if not folders:
        sys.exit(f"no svamp-authors run folders under {root}")
    main_run = folders[0]
    review = read(main_run / "review" / "stats.json")
    build = read(main_run / "build" / "stats.json")
    print("## Accepted rationales (paper Table 4)\n")
    print("| teacher | rationales kept (mean of the two scores > 3) | drawn for training "
          "(random_one, seed 42) | paper Table 4 |")
    print("|---|---|---|---|")
    per = build.get("per_teacher", {})
    for teacher, paper in PAPER_TABLE_4.items():
        kept = review.get("accepted_per_teacher", {}).get(teacher, "-")
        drawn = per.get(teacher, {}).get("rationale", "-")
        print(f"| {teacher} | {kept} | {drawn} | {paper} |")
    print(f"| total | {review.get('accepted', '-')} | {build.get('rationale_examples', '-')} | "
          f"{sum(PAPER_TABLE_4.values())} |\n")
    print(f"Questions with a kept rationale: {build.get('samples', '-')} of "
          f"{build.get('mistakes', '-')} mistakes; invalid recorded scores: "
          f"{review.get('invalid_scores', '-')}; training set: {build.get('examples', '-')} "
          f"examples ({build.get('rationale_examples', '-')} rationale + "
          f"{build.get('feedback_examples', '-')} feedback).\n")
    print("## Accuracy on SVAMP's 300 test questions, before and after tuning\n")
    print("95% Wilson intervals; each change paired by question (gained / lost, McNemar's "
          "exact p, Newcombe's 95% interval of the difference in points), as the report "
          "computes them (`fairspec.report.significance`).\n")
    print("| run | changes | training examples | base | tuned (95% CI) | vs base | "
          f"vs {main_run.name} | train steps | train loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    main_metrics = read(main_run / "evaluate" / "metrics.json")
    for folder in folders:
        metrics = read(folder / "evaluate" / "metrics.json")
        train = read(folder / "train" / "stats.json")
        built = read(folder / "build" / "stats.json")
        loss = train.get("train_loss")
        versus_main = "-" if folder == main_run else paired(
            significance.table_between(main_metrics, metrics) if metrics and main_metrics
            else "no per-question results")
        print(f"| {folder.name} | {changes(folder)} | {built.get('examples', '-')} | "
              f"{accuracy(metrics, 'base')} | {accuracy(metrics, 'tuned')} | "
              f"{paired(significance.table_from_metrics(metrics)) if metrics else '-'} | "
              f"{versus_main} | {train.get('steps', '-')} | "
              f"{'-' if loss is None else f'{loss:.3f}'} |")
    print("\n## Wall time per stage (seconds; a stage shared with an earlier run was copied)\n")
    print("| run | " + " | ".join(STAGES) + " |")
    print("|---|" + "---|" * len(STAGES))
    for folder in folders:
        cells = []
        for stage in STAGES:
            seconds = read(folder / stage / "manifest.json").get("seconds")
            cells.append("-" if seconds is None else f"{seconds:.1f}")
        print(f"| {folder.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs"))
