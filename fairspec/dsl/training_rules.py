"""The rules of the ``training`` section that need more than its schema: the optimizer name
against the installed transformers, what ``precision: pure`` cannot do, and where
``attn_implementation: flash_attention_2`` cannot run."""

from __future__ import annotations

import difflib

from fairspec.dsl.schema import Spec
from fairspec.training.optimizers import known_optimizers

FieldPath = tuple[str | int, ...]
Found = tuple[FieldPath, str, str | None]


def training_findings(spec: Spec) -> list[Found]:
    """(path, message, hint) for each broken rule of the training section."""
    return [*_optimizer(spec), *_precision(spec), *_attention(spec)]


def _optimizer(spec: Spec) -> list[Found]:
    """``optimizer`` is a name the installed Trainer accepts (none to check against when
    transformers is not installed: the preflight's model check stops that run)."""
    name, known = spec.training.optimizer, known_optimizers()
    if not known or name in known:
        return []
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return [(("training", "optimizer"),
             f"{name!r} is not an optimizer of the installed transformers' Trainer",
             (f"did you mean {close[0]!r}? " if close else "")
             + "one of: " + ", ".join(known))]


def _precision(spec: Spec) -> list[Found]:
    """``precision: pure`` keeps the weights in the half dtype: not with fp16 (the gradient
    scaler refuses fp16 gradients) nor DeepSpeed (its ZeRO keeps fp32 weights anyway)."""
    training, hw = spec.training, spec.student.hardware
    if training.precision != "pure":
        return []
    path = ("training", "precision")
    if hw.dtype == "fp16":
        return [(path, "precision pure with dtype fp16 would train fp16 weights, and fp16 "
                       "training's gradient scaler cannot unscale fp16 gradients (torch raises "
                       "'Attempting to unscale FP16 gradients' at the first step)",
                 "precision: mixed (fp32 master weights, fp16 autocast), or "
                 "student.hardware.dtype: bf16")]
    if hw.strategy == "deepspeed":
        return [(path, "precision pure does not apply with strategy deepspeed: DeepSpeed's "
                       "ZeRO keeps fp32 master weights of its own",
                 "precision: mixed, or strategy: fsdp")]
    return []


def _attention(spec: Spec) -> list[Found]:
    """``flash_attention_2`` runs on a GPU, in fp16 or bf16 (flash-attn has no CPU kernel and
    no fp32 one; with dtype fp32 there is no autocast to give it half inputs). A device or
    dtype ``auto`` that resolves to cpu or fp32 is the preflight's to catch."""
    training, hw = spec.training, spec.student.hardware
    if training.attn_implementation != "flash_attention_2":
        return []
    path = ("training", "attn_implementation")
    if hw.device == "cpu":
        return [(path, "flash_attention_2 needs a GPU: flash-attn has no CPU kernel, and "
                       "student.hardware.device is cpu",
                 "attn_implementation: auto (sdpa) or eager on a CPU")]
    if hw.dtype == "fp32":
        return [(path, "flash_attention_2 computes in fp16 or bf16 only, and "
                       "student.hardware.dtype is fp32 (no autocast gives it half inputs)",
                 "student.hardware.dtype: bf16 (mixed precision keeps fp32 master weights), "
                 "or attn_implementation: auto")]
    return []
