"""What a stage of round k >= 2 takes from round k-1 (declared inputs of `stage_parts.ROUND_READS`).

The student round k-1 leaves is its train stage's tuned model; a train stage that had no
example trains nothing, and leaves the student it would have started from (its
``train_args.json`` names it).
"""

from __future__ import annotations

import json

from fairspec.artifacts import read_jsonl
from fairspec.stages.context import StageContext


def follows_round(ctx: StageContext) -> bool:
    """Whether this stage takes its student from an earlier round's training."""
    return ctx.declared_input("train", "model/") is not None and ctx.stage.kind != "evaluate"


def student_after(ctx: StageContext) -> str:
    """The weights the earlier round's train stage (a declared input) leaves."""
    model = ctx.input("train", "model/")
    if (model / "config.json").is_file():
        return str(model)
    args = json.loads(ctx.input("train", "train_args.json").read_text(encoding="utf-8"))
    return args["model_path"]


def earlier_mistakes(ctx: StageContext) -> set[int] | None:
    """The questions round k-1's exam got wrong, when this exam covers only those."""
    if ctx.stage.kind != "exam" or ctx.declared_input("exam", "mistakes.jsonl") is None:
        return None
    return {row["index"] for row in read_jsonl(ctx.input("exam", "mistakes.jsonl"))}
