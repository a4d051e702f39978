"""The memory plan: what the exam and the training need per GPU, from the student's shape.

Everything here is arithmetic on the student's ``config.json`` (a local folder, the hub
cache, the builtin model, else a table of the paper's students): no weights are read and
nothing is downloaded. The closed forms are in docs/spec.md ("Memory plan"):

* parameters: embedding + per layer (q, k, v, o with grouped key/value heads, the gated MLP,
  two norms) + final norm + lm_head when untied;
* training, per trainable parameter: fp32 weights 4 B (with bf16/fp16 they are the master
  copy), fp32 gradients 4 B, optimizer states (AdamW 8 B, 8-bit 2 B, ...); bf16/fp16 adds
  the autocast copies of the weights (2 B) while forward and backward run; FSDP and
  ZeRO-3 divide these by the processes; LoRA keeps the frozen base in the half dtype;
* activations: the tensors a Llama-style layer saves for its backward, counted the way
  Korthikanti et al. (2022, "Reducing Activation Recomputation in Large Transformer
  Models") count them, for sdpa attention (no s x s matrix stored), plus the logits;
* the exam: weights in the inference dtype + KV cache at the exam's sequences and length,
  against vLLM's ``gpu_memory_utilization`` share of the GPU.
"""


from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairspec.dsl.loader import template_ref
from fairspec.dsl.schema import Spec
from fairspec.plan.environment import Environment
from fairspec.plan.hardware import (
    resolve_device,
    resolve_dtype,
    resolve_engine,
    training_world_size,
)
from fairspec.plan.memory_totals import (
    GIB,
    Estimate,
    ExamSetup,
    Fix,
    TrainingSetup,
    exam_memory,
    training_fixes,
    training_memory,
)
from fairspec.plan.model_shape import ModelShape, model_shape
from fairspec.plan.sizes import TaskText, prompt_tokens
from fairspec.plan.stage_settings import DatasetRef

#: The card size assumed when the spec says none and this machine has no GPU to ask.
ASSUMED_GPU_GB = 80.0
#: vLLM's defaults: its share of each GPU, and the sequences it schedules at once.
VLLM_MEMORY_UTILIZATION = 0.9
VLLM_MAX_NUM_SEQS = 256


@dataclass(frozen=True)
class MemoryPlan:
    """A run's memory per device: the exam's and the training's, and the fixes that fit."""

    model: ModelShape | None
    device: str
    device_bytes: int
    device_source: str  # spec | torch | assumed | ram
    exam: Estimate | None = None
    exam_facts: dict[str, Any] = field(default_factory=dict)
    training: Estimate | None = None
    fixes: tuple[Fix, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        """A GPU run that cannot fit: its training, or vLLM cannot hold one longest sequence."""
        if self.device != "cuda":
            return False
        return (self.training is not None and not self.training.fits) or not self.exam_fits

    @property
    def exam_fits(self) -> bool:
        if self.exam is None:
            return True
        if self.exam.what.startswith("vLLM"):  # vLLM schedules fewer sequences when needed
            return bool(self.exam_facts.get("longest_fits", True))
        return self.exam.fits

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict() if self.model else None,
            "device": self.device, "device_bytes": self.device_bytes,
            "device_gib": round(self.device_bytes / GIB, 2), "device_source": self.device_source,
            "exam": None if self.exam is None else {**self.exam.to_dict(), **self.exam_facts,
                                                    "fits": self.exam_fits},
            "training": None if self.training is None else self.training.to_dict(),
            "fixes": [fix.to_dict() for fix in self.fixes], "refused": self.refused,
            "notes": list(self.notes),
        }


def device_memory(spec: Spec, env: Environment) -> tuple[int, str]:
    """Bytes per device and where that number comes from: ``student.hardware.gpu_memory_gb``,
    the first CUDA device here, else 80 GiB assumed; on a CPU, this machine's RAM."""
    hw = spec.student.hardware
    if resolve_device(hw, env) != "cuda":
        return _ram_bytes(), "ram"
    if hw.gpu_memory_gb is not None:
        return int(hw.gpu_memory_gb * GIB), "spec"
    if env.cuda_devices > 0:
        try:
            import torch

            return int(torch.cuda.get_device_properties(0).total_memory), "torch"
        except Exception:  # noqa: BLE001 — a broken CUDA install: fall back to the assumption
            pass
    return int(ASSUMED_GPU_GB * GIB), "assumed"


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def training_setup(spec: Spec, env: Environment) -> TrainingSetup:
    hw, training = spec.student.hardware, spec.training
    lora = training.lora
    return TrainingSetup(
        device=resolve_device(hw, env), dtype=resolve_dtype(hw, env), strategy=hw.strategy,
        world_size=training_world_size(hw, env), batch_size=training.batch_size,
        max_seq_length=training.max_seq_length, optimizer=training.optimizer,
        gradient_checkpointing=training.gradient_checkpointing,
        lora_r=lora.r if lora else None,
        lora_targets=lora.target_modules if lora else "all-linear",
        lora_dropout=lora.dropout if lora else 0.0,
        precision=getattr(training, "precision", "mixed"))


def exam_setup(spec: Spec, base_dir: Path, env: Environment) -> ExamSetup | None:
    engine, _ = resolve_engine(spec, env)
    if engine not in ("vllm", "hf"):
        return None
    hw, exam = spec.student.hardware, spec.student.exam
    vllm = exam.vllm
    return ExamSetup(
        engine=engine, dtype=resolve_dtype(hw, env),
        tensor_parallel=hw.tensor_parallel if engine == "vllm" else 1,
        sequences=(vllm.max_num_seqs or VLLM_MAX_NUM_SEQS) if engine == "vllm" else exam.batch_size,
        prompt_tokens=_exam_prompt_tokens(spec, base_dir), new_tokens=exam.max_new_tokens,
        utilization=(vllm.gpu_memory_utilization or VLLM_MEMORY_UTILIZATION)
        if engine == "vllm" else 1.0,
        max_model_len=vllm.max_model_len)


def _exam_prompt_tokens(spec: Spec, base_dir: Path) -> int:
    """The exam prompt's typical length, as the call estimate renders it (256 if it cannot)."""
    try:
        ds = spec.task.dataset
        text = TaskText(spec.task.kind, spec.task.fields,
                        DatasetRef(split=ds.train_split, hf=ds.hf, path=ds.path), ds.limit.train, base_dir)
        return prompt_tokens(text, "prompts.exam", template_ref(spec, "prompts.exam"), {})
    except Exception:  # noqa: BLE001 — a template the estimate cannot render: a typical length
        return 256


def memory_plan(spec: Spec, base_dir: Path, env: Environment) -> MemoryPlan:
    """The memory plan of one run's spec on ``env`` (no weights read, nothing downloaded)."""
    device_bytes, source = device_memory(spec, env)
    hw = spec.student.hardware
    device = resolve_device(hw, env)
    shape = model_shape(spec.student.model, base_dir)
    notes: list[str] = []
    if source == "assumed":
        notes.append(f"GPU memory assumed {ASSUMED_GPU_GB:g} GiB per device (no GPU here): set "
                     "student.hardware.gpu_memory_gb to your card's")
    if shape is None:
        notes.append(f"no memory plan: the shape of {spec.student.model} is unknown here (its "
                     "config.json is in no local folder, not in the hub cache, and not in "
                     "fairspec's table); download it or give a local folder")
        return MemoryPlan(None, device, device_bytes, source, notes=tuple(notes))
    if device != "cuda":
        notes.append("on a CPU the estimate is against this machine's RAM, above the process's "
                     "memory after imports; a run that passes it is not refused")
    setup = training_setup(spec, env)
    training = training_memory(shape, setup, device_bytes)
    exam, facts = None, {}
    ex = exam_setup(spec, base_dir, env)
    if ex is not None and device == "cuda":
        exam, facts = exam_memory(shape, ex, device_bytes)
    fixes = () if training.fits else tuple(training_fixes(
        shape, setup, device_bytes, hw.gpus, hw.nodes, spec.training.gradient_accumulation_steps))
    return MemoryPlan(shape, device, device_bytes, source, exam, facts, training, fixes,
                      tuple(notes))

def memory_lines(plan: MemoryPlan) -> list[str]:
    """The plan's memory section, one line each (``fairspec plan``)."""
    if plan.model is None:
        return [f"Memory: {note}" for note in plan.notes]
    where = {"spec": "student.hardware.gpu_memory_gb", "torch": "this machine's GPU",
             "assumed": "assumed", "ram": "this machine's RAM"}[plan.device_source]
    shape = plan.model
    lines = [f"Memory per {'GPU' if plan.device == 'cuda' else 'machine'}: "
             f"{_gib(plan.device_bytes)} ({where}); {shape.name}: {shape.parameters:,} "
             f"parameters ({shape.source})"]
    if plan.exam is not None:
        ex, facts = plan.exam, plan.exam_facts
        parts = " + ".join(f"{p.name} {_gib(p.bytes)}" for p in ex.parts)
        lines.append(f"  exam ({ex.what}): {parts} = {_gib(ex.total)} of {_gib(ex.available)}"
                     f" -> {'fits' if ex.fits else 'does not fit at once'}")
        if ex.what.startswith("vLLM") and not ex.fits:
            lines.append(f"    vLLM runs about {facts['sequences_that_fit']} sequences at once "
                         "instead")
        if not plan.exam_fits:
            lines.append(f"    one sequence of {facts['longest_sequence']} tokens (max_model_len) "
                         "does not fit its KV cache: vLLM refuses to start; set "
                         "student.exam.vllm.max_model_len, or tensor_parallel")
    if plan.training is not None:
        tr = plan.training
        lines.append(f"  training ({tr.what}):")
        for part in tr.parts:
            lines.append(f"    {part.name:<40} {_gib(part.bytes):>10}  {part.how}")
        verdict = "fits" if tr.fits else "DOES NOT FIT" if plan.device == "cuda" else \
            "more than this machine's RAM (a warning: a CPU run is not refused)"
        lines.append(f"    {'total per device':<40} {_gib(tr.total):>10}  of "
                     f"{_gib(tr.available)} -> {verdict}")
        if plan.fixes:
            lines.append("    what would fit: " + "; ".join(fix.words for fix in plan.fixes))
    lines += [f"  note: {note}" for note in plan.notes]
    return lines


def _gib(value: int) -> str:
    return f"{value / GIB:,.1f} GiB"


def memory_problems(spec: Spec, base_dir: Path, env: Environment) -> list[tuple[tuple, str, str]]:
    """(key path, message, hint) for a GPU spec that cannot fit (validate and ``run``)."""
    plan = memory_plan(spec, base_dir, env)
    if not plan.refused:
        return []
    out = []
    if plan.training is not None and not plan.training.fits:
        tr = plan.training
        hint = ("what would fit: " + "; or ".join(fix.words for fix in plan.fixes)) \
            if plan.fixes else \
            "no single change found that fits: a larger GPU (student.hardware.gpu_memory_gb)"
        out.append((("student", "hardware"),
                    f"training needs about {_gib(tr.total)} per GPU ({tr.what}) and a GPU has "
                    f"{_gib(tr.available)}", hint))
    exam = plan.exam
    if not plan.exam_fits and exam is not None and exam.what.startswith("vLLM"):
        out.append((("student", "exam"),
                    f"the exam's vLLM cannot hold one sequence of "
                    f"{plan.exam_facts['longest_sequence']} tokens in its KV cache beside the "
                    f"weights ({_gib(exam.parts[0].bytes)}) within {_gib(exam.available)}",
                    "student.exam.vllm.max_model_len: a shorter length, or "
                    "student.hardware.tensor_parallel over more GPUs"))
    elif not plan.exam_fits and exam is not None:
        out.append((("student", "exam"),
                    f"the exam ({exam.what}) needs about {_gib(exam.total)} per GPU and a GPU "
                    f"has {_gib(exam.available)}",
                    "a smaller student.exam.batch_size, or engine: vllm with tensor_parallel"))
    return out


def cpu_memory_warnings(spec: Spec, base_dir: Path, env: Environment
                        ) -> list[tuple[tuple, str, str]]:
    """(key path, message, hint) for a CPU training over this machine's RAM: a warning only
    (swap, or another machine, may still run it)."""
    plan = memory_plan(spec, base_dir, env)
    tr = plan.training
    if plan.device == "cuda" or tr is None or tr.fits or not tr.available:
        return []
    return [(("training",), f"training needs about {_gib(tr.total)} ({tr.what}), more than "
             f"this machine's {_gib(tr.available)} of RAM",
             "a smaller training.batch_size or max_seq_length, training.gradient_checkpointing, "
             "or training.lora")]
