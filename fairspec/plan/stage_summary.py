"""One line per stage of the plan's table: what the stage does, from its settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fairspec.dsl.schema import Spec
from fairspec.plan.graph import RunPlan
from fairspec.plan.stage_settings import ReviewScoring


def stage_summary(spec: Spec, run: RunPlan, stage_name: str) -> str:
    stage = run.stage(stage_name)
    if stage.settings.get("round", 1) > 1:
        return _round_summary(stage, stage_summary_of(spec, run, stage))
    return stage_summary_of(spec, run, stage)


def _round_summary(stage: Any, text: str) -> str:
    """A later round's stage: what it takes from the round before, then what it does."""
    s, before = stage.settings, f"round {stage.settings['round'] - 1}"
    if stage.kind == "exam":
        covers = "its mistakes" if any(i.artifact == "mistakes.jsonl" for i in stage.inputs) \
            else "the whole train split"
        return f"{before}'s tuned student on {covers}; " + text.split(" on ", 1)[-1]
    if stage.kind == "teach":
        again = ("a new rationale for every question (fresh_rationales)" if s.get("rationale_sample")
                 else "rationales of questions asked before come from the store")
        return f"{text}; {again}"
    if stage.kind == "build" and s.get("accumulate"):
        return f"{text}; with every earlier round's examples"
    if stage.kind == "train":
        start = f"from {before}'s student" if s.get("start_from") == "previous" else "from the base student"
        return f"{text}; {start}"
    return text


def stage_summary_of(spec: Spec, run: RunPlan, stage: Any) -> str:
    s, name = stage.settings, stage.kind
    if name == "exam" and s.get("recorded"):
        recorded = s["recorded"]
        only = ", only the wrong ones" if recorded["only_mistakes"] else ""
        return (f"answers recorded in {Path(recorded['path']).name} (column "
                f"{recorded['answer']}{only}), by {recorded['match']}")
    if name == "exam":
        sampling = s["sampling"]
        decode = (f"T={sampling['temperature']} top_p={sampling['top_p']} top_k={sampling['top_k']}"
                  if sampling["do_sample"] else "greedy")
        text = (f"{s['model']} on {s['engine']} ({s['engine_reason']}), {s['device']} {s['dtype']}, "
                f"{decode}, {sampling['max_new_tokens']} new tokens")
        if s["vllm"]:
            text += f"; vLLM tensor_parallel_size={s['vllm']['tensor_parallel_size']}"
        return text
    if name == "teach":
        return ", ".join(f"{t['name']} ({t['provider']} {t['model']})" for t in s["teachers"])
    if name == "review":
        if not s["enabled"]:
            return "off: every rationale is kept"
        p = s["policy"]
        scoring = ReviewScoring.of(s.get("scoring"))
        read = ("scores from log-probabilities (else " + ("the text" if scoring.fallback == "text"
                                                          else "none") + ")"
                if scoring.logprobs else "scores from the text")
        return (f"{p['aggregate']} of peer scores {p['accept']} {p['threshold']:g} "
                f"in [{p['score_range'][0]}, {p['score_range'][1]}]"
                f"{', exclude_self' if p['exclude_self'] else ''}, min_valid_scores {p['min_valid_scores']}"
                f"; {read}")
    if name == "build":
        check = (s.get("decontaminate") or {"mode": "off"})["mode"]
        return (f"selection {s['selection']}, templates {s['templates']['rationale']['ref']}"
                + ("" if check == "off" else f"; test questions in the examples: {check}"))
    if name == "train":
        lora = f", LoRA r={s['lora']['r']}" if s["lora"] else ""
        where = ("in process" if s["layout"]["launcher"] == "inline"
                 else f"{s['layout']['world_size']} processes ({s['strategy']})")
        return (f"alpha={s['alpha']:g}, {s['epochs']} epochs, batch {s['batch_size']}x"
                f"{s['gradient_accumulation_steps']}, lr {s['learning_rate']:g}, {s['dtype']}{lora}; "
                f"{where}")
    if name == "evaluate":
        mode = "sampled" if s["sampling"]["do_sample"] else "greedy"
        return f"{s['dataset']['split']} split, {mode}, base {'and tuned' if s['base'] else 'skipped; tuned'}"
    return "report.md, report.html"
