"""The tables of docs/experiments/svamp-authors.md, read from the run folders of
``specs/svamp-authors.yaml`` (``fairspec run`` it first; every variant, or some).

    python bench/authors_round.py RUNS_DIR > table.md

RUNS_DIR is the spec's output folder (``runs/`` beside it). Nothing is recomputed: each
number is read from a stage's stats.json, metrics.json or manifest.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PAPER_TABLE_4 = {"gpt": 161, "gemini": 87, "mixtral": 117}  # one rationale drawn per sample
STAGES = ("exam", "teach", "review", "build", "train", "evaluate")


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


#: the spec's runs in its order: the main run, then its variants
ORDER = ("", "no-review", "only-gpt", "only-gemini", "only-mixtral", "alpha-0", "alpha-1")


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
    part = metrics.get(which) or {}
    if not part.get("total"):
        return "-"
    return f"{part['correct']} / {part['total']} ({100 * part['correct'] / part['total']:.2f}%)"


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
    print("| run | changes | training examples | base | tuned | train steps | train loss |")
    print("|---|---|---|---|---|---|---|")
    for folder in folders:
        metrics = read(folder / "evaluate" / "metrics.json")
        train = read(folder / "train" / "stats.json")
        built = read(folder / "build" / "stats.json")
        loss = train.get("train_loss")
        print(f"| {folder.name} | {changes(folder)} | {built.get('examples', '-')} | "
              f"{accuracy(metrics, 'base')} | "
              f"{accuracy(metrics, 'tuned')} | {train.get('steps', '-')} | "
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
