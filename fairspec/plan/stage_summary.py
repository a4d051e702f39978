"""One line per stage of the plan's table: what the stage does, from its typed settings."""

from __future__ import annotations

from pathlib import Path

from fairspec.plan.graph import RunPlan, Stage
from fairspec.plan.kinds import round_of, settings_of
from fairspec.plan.stage_settings import (
    BuildSettings,
    EvaluateSettings,
    ExamSettings,
    ReviewSettings,
    TeachSettings,
    TrainSettings,
)


def stage_summary(run: RunPlan, stage_name: str) -> str:
    stage = run.stage(stage_name)
    if round_of(stage.name) > 1:
        return _round_summary(stage, stage_summary_of(stage))
    return stage_summary_of(stage)


def _round_summary(stage: Stage, text: str) -> str:
    """A later round's stage: what it takes from the round before, then what it does."""
    before = f"round {round_of(stage.name) - 1}"
    if stage.kind == "exam":
        covers = "its mistakes" if any(i.artifact == "mistakes.jsonl" for i in stage.inputs) \
            else "the whole train split"
        return f"{before}'s tuned student on {covers}; " + text.split(" on ", 1)[-1]
    if stage.kind == "teach":
        again = ("a new rationale for every question (fresh_rationales)"
                 if settings_of(stage, TeachSettings).rationale_sample
                 else "rationales of questions asked before come from the store")
        return f"{text}; {again}"
    if stage.kind == "build" and settings_of(stage, BuildSettings).accumulate:
        return f"{text}; with every earlier round's examples"
    if stage.kind == "train":
        start = (f"from {before}'s student" if settings_of(stage, TrainSettings).start_from == "previous"
                 else "from the base student")
        return f"{text}; {start}"
    return text


def _exam(s: ExamSettings) -> str:
    if s.recorded is not None:
        recorded = s.recorded
        only = ", only the wrong ones" if recorded.only_mistakes else ""
        return (f"answers recorded in {Path(recorded.path).name} (column "
                f"{recorded.answer}{only}), by {recorded.match}")
    sampling = s.sampling
    decode = (f"T={sampling.temperature} top_p={sampling.top_p} top_k={sampling.top_k}"
              if sampling.do_sample else "greedy")
    text = (f"{s.model} on {s.engine} ({s.engine_reason}), {s.device} {s.dtype}, "
            f"{decode}, {sampling.max_new_tokens} new tokens")
    if s.vllm:
        text += f"; vLLM tensor_parallel_size={s.vllm['tensor_parallel_size']}"
    return text


def _review(s: ReviewSettings) -> str:
    if not s.enabled or s.policy is None:
        return "off: every rationale is kept"
    p = s.policy
    scoring = s.scoring
    read = ("scores from log-probabilities (else " + ("the text" if scoring.fallback == "text"
                                                      else "none") + ")"
            if scoring is not None and scoring.logprobs else "scores from the text")
    return (f"{p.aggregate} of peer scores {p.accept} {p.threshold:g} "
            f"in [{p.score_range[0]}, {p.score_range[1]}]"
            f"{', exclude_self' if p.exclude_self else ''}, min_valid_scores {p.min_valid_scores}"
            f"; {read}")


def _train(s: TrainSettings) -> str:
    lora = f", LoRA r={s.lora['r']}" if s.lora else ""
    where = ("in process" if s.layout.launcher == "inline"
             else f"{s.layout.world_size} processes ({s.strategy})")
    return (f"alpha={s.alpha:g}, {s.epochs} epochs, batch {s.batch_size}x"
            f"{s.gradient_accumulation_steps}, lr {s.learning_rate:g}, {s.dtype}{lora}; "
            f"{where}")


def stage_summary_of(stage: Stage) -> str:
    name = stage.kind
    if name == "exam":
        return _exam(settings_of(stage, ExamSettings))
    if name == "teach":
        return ", ".join(f"{t.name} ({t.provider} {t.model})"
                         for t in settings_of(stage, TeachSettings).teachers)
    if name == "review":
        return _review(settings_of(stage, ReviewSettings))
    if name == "build":
        s = settings_of(stage, BuildSettings)
        check = s.decontaminate.mode
        return (f"selection {s.selection}, templates {s.templates['rationale'].ref}"
                + ("" if check == "off" else f"; test questions in the examples: {check}"))
    if name == "train":
        return _train(settings_of(stage, TrainSettings))
    if name == "evaluate":
        e = settings_of(stage, EvaluateSettings)
        mode = "sampled" if e.sampling.do_sample else "greedy"
        return f"{e.dataset.split} split, {mode}, base {'and tuned' if e.base else 'skipped; tuned'}"
    return "report.md, report.html"
