"""Memory per device of training and of the exam, in closed form (the forms are in
:mod:`fairspec.plan.memory` and docs/spec.md), and the single changes that make training fit."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fairspec.plan.model_shape import ModelShape

GIB = 2**30
#: CUDA context, cuBLAS/NCCL workspaces and the caching allocator's slack, per GPU.
CUDA_OVERHEAD = int(1.5 * GIB)
#: DeepSpeed ZeRO-3's ``stage3_max_live_parameters`` default: gathered parameters at most.
ZERO3_LIVE_PARAMETERS = 10**9
#: Bytes per element of a dtype word.
ELEMENT = {"fp32": 4, "bf16": 2, "fp16": 2}
#: Optimizer state bytes per trainable parameter by the Trainer's optim name (adafactor:
#: factored, from the shapes); a name not here counts as AdamW's two fp32 moments.
OPTIMIZER_STATE = {
    "adamw_torch": 8, "adamw_torch_fused": 8, "paged_adamw_32bit": 8,
    "adamw_8bit": 2, "adamw_bnb_8bit": 2, "paged_adamw_8bit": 2,
    "lion_8bit": 1, "lion_32bit": 4, "paged_lion_8bit": 1, "paged_lion_32bit": 4,
    "sgd": 0, "adagrad": 4, "rmsprop": 4,
}


def optimizer_state_bytes(name: str) -> int:
    """Bytes of state per trainable fp32 parameter for the Trainer's optimizer ``name``."""
    if name in OPTIMIZER_STATE:
        return OPTIMIZER_STATE[name]
    if "8bit" in name:
        return 1 if "lion" in name else 2
    if "lion" in name or "rmsprop" in name or "adagrad" in name:
        return 4
    return 8


#: Optimizers whose step takes one fp32 temporary of every parameter on a GPU (torch's
#: foreach AdamW: the square root of the second moment); the others work tensor by tensor.
FOREACH = ("adamw_torch",)


@dataclass(frozen=True)
class Part:
    """One line of a memory total: what it is, its bytes, how they were counted."""

    name: str
    bytes: int
    how: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bytes": self.bytes, "gib": round(self.bytes / GIB, 2),
                "how": self.how}


@dataclass(frozen=True)
class TrainingSetup:
    """What decides training memory (a spec's values, or a candidate fix's)."""

    device: str
    dtype: str  # fp32 | bf16 | fp16 (bf16/fp16: fp32 master weights, autocast)
    strategy: str  # none | ddp | fsdp | deepspeed
    world_size: int
    batch_size: int  # per device
    max_seq_length: int
    optimizer: str = "adamw_torch"
    gradient_checkpointing: bool = False
    lora_r: int | None = None
    lora_targets: list[str] | str = "all-linear"
    lora_dropout: float = 0.0
    precision: str = "mixed"  # with a half dtype: mixed (fp32 master weights) or pure

    @property
    def shards(self) -> int:
        """How many processes share the weights, gradients and optimizer states."""
        return self.world_size if self.strategy in ("fsdp", "deepspeed") else 1

    def describe(self) -> str:
        how = {"none": "one process", "ddp": f"DDP over {self.world_size}",
               "fsdp": f"FSDP full shard over {self.world_size}",
               "deepspeed": f"ZeRO-3 over {self.world_size}"}[self.strategy]
        lora = f", LoRA r={self.lora_r}" if self.lora_r else ""
        ckpt = ", gradient checkpointing" if self.gradient_checkpointing else ""
        return (f"{how}{lora}{ckpt}, {self.dtype}, {self.optimizer}, batch {self.batch_size} x "
                f"{self.max_seq_length} tokens per device")


@dataclass(frozen=True)
class Estimate:
    """A memory total per device against what the device has."""

    parts: tuple[Part, ...]
    total: int
    available: int
    what: str

    @property
    def fits(self) -> bool:
        return self.total <= self.available

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "parts": [p.to_dict() for p in self.parts],
                "total_bytes": self.total, "total_gib": round(self.total / GIB, 2),
                "available_bytes": self.available,
                "available_gib": round(self.available / GIB, 2), "fits": self.fits}


def training_memory(shape: ModelShape, setup: TrainingSetup, available: int) -> Estimate:
    """Peak memory per device of training: the states that live throughout (weights,
    gradients, optimizer), plus the larger of what forward and backward hold (activations,
    autocast copies, gathered shards) and what the optimizer step holds (its scratch)."""
    n, shards = shape.parameters, setup.shards
    half_dtype = setup.dtype in ("bf16", "fp16")
    mixed = half_dtype and setup.precision != "pure"
    half = 2 if half_dtype else 4
    w = half if half_dtype and not mixed else 4  # bytes of a trained weight and its gradient
    word = "fp32" if w == 4 else setup.dtype
    lora = setup.lora_r is not None
    trainable = shape.lora_parameters(setup.lora_r, setup.lora_targets) if lora else n
    parts: list[Part] = []
    if lora:
        parts.append(Part("frozen base weights", _div(n * half, shards),
                          f"{n:,} params x {half} B ({setup.dtype})" + _over(shards)))
    weights = "fp32 master weights" if mixed else f"{word} weights"
    parts.append(Part(f"trainable {weights}" if lora else weights, _div(trainable * w, shards),
                      f"{trainable:,} params x {w} B" + _over(shards)))
    parts.append(Part(f"gradients ({word})", _div(trainable * w, shards),
                      f"{trainable:,} x {w} B" + _over(shards)))
    states, how = _optimizer_bytes(shape, setup.optimizer, trainable, lora, w)
    parts.append(Part(f"optimizer states ({setup.optimizer})", _div(states, shards), how + _over(shards)))
    if setup.strategy == "ddp":
        parts.append(Part("DDP gradient buckets", trainable * w,
                          "a second copy of the gradients (gradient_as_bucket_view off)"))
    # forward and backward
    transient: list[Part] = []
    if mixed and shards == 1:  # sharded strategies gather the weights in the half dtype
        copies = trainable if lora else n
        transient.append(Part("autocast half copies of the weights", copies * 2,
                              f"{copies:,} x 2 B, alive from forward to backward"))
    gathered = _gathered(shape, setup, half)
    if gathered:
        transient.append(gathered)
    transient.append(activations(shape, setup))
    # the optimizer step
    scratch = _step_scratch(shape, setup, trainable, w)
    during = sum(p.bytes for p in transient)
    if scratch.bytes > during:
        parts.append(Part(scratch.name, scratch.bytes,
                          scratch.how + "; the step's peak is above forward and backward's"))
    else:
        parts.extend(transient)
    if setup.device == "cuda":
        parts.append(Part("CUDA and framework overhead", CUDA_OVERHEAD,
                          "context, cuBLAS/NCCL workspaces, allocator slack (fixed)"))
    total = sum(p.bytes for p in parts)
    return Estimate(tuple(parts), total, available, setup.describe())


def _div(value: int, by: int) -> int:
    return -(-value // by)


def _over(shards: int) -> str:
    return f" / {shards} processes" if shards > 1 else ""


def _optimizer_bytes(shape: ModelShape, optimizer: str, trainable: int, lora: bool,
                     weight: int = 4) -> tuple[int, str]:
    """States for ``trainable`` parameters of ``weight`` bytes (torch's states follow the
    weights' dtype; bitsandbytes' 8-bit ones do not)."""
    if optimizer == "adafactor" and not lora:
        factored = shape.layers * sum(weight * (a + b) for a, b in shape.linears().values())
        rest = weight * (trainable - shape.layers * sum(a * b for a, b in shape.linears().values()))
        return factored + rest, f"factored second moments: {weight} B x (rows + cols) per matrix"
    per = 4 if optimizer == "adafactor" else optimizer_state_bytes(optimizer)
    if "8bit" not in optimizer:
        per = per * weight // 4
    return trainable * per, f"{trainable:,} x {per} B"


def _gathered(shape: ModelShape, setup: TrainingSetup, element: int) -> Part | None:
    """FSDP's and ZeRO-3's unsharded weights while a layer runs."""
    if setup.shards == 1:
        return None
    if setup.strategy == "fsdp":
        root = shape.embedding_parameters * (1 if shape.tied else 2)
        count = root + 2 * shape.layer_parameters
        return Part("gathered weights (FSDP)", count * element + shape.layer_parameters * 4,
                    "embedding and lm_head (root unit) + two layers (one prefetched) "
                    f"x {element} B, one layer's unsharded fp32 gradients")
    count = min(shape.parameters, ZERO3_LIVE_PARAMETERS)
    return Part("gathered weights (ZeRO-3)", count * element,
                f"up to stage3_max_live_parameters ({count:,}) x {element} B")


def activations(shape: ModelShape, setup: TrainingSetup) -> Part:
    """What forward saves for backward on one device, per micro-batch of
    ``batch_size`` x ``max_seq_length`` tokens (docs/spec.md gives the closed form)."""
    e = ELEMENT[setup.dtype]
    tokens = setup.batch_size * setup.max_seq_length
    h, kv, inter = shape.hidden, shape.kv_dim, shape.intermediate
    per_layer = e * tokens * (7 * h + 2 * kv + 4 * inter)
    if setup.lora_r is not None and setup.lora_dropout > 0:
        linears = shape.linears()
        names = list(linears) if setup.lora_targets == "all-linear" else \
            [t for t in setup.lora_targets if t in linears]
        per_layer += (e + 1) * tokens * sum(linears[name][0] for name in names)
    if setup.gradient_checkpointing:
        layers = shape.layers * e * tokens * h + per_layer
        how = f"layer inputs {shape.layers} x {e} B x {tokens} tokens x {h} + one layer recomputed"
    else:
        layers = shape.layers * per_layer
        how = f"{shape.layers} layers x {e} B x {tokens} tokens x (7h + 2kv + 4i)"
    logits = tokens * shape.vocab * (e + 8) + 2 * e * tokens * h
    return Part("activations" + (" (gradient checkpointing)" if setup.gradient_checkpointing else ""),
                layers + logits, how + f"; logits {tokens} x {shape.vocab} x ({e} + 8) B")


def _step_scratch(shape: ModelShape, setup: TrainingSetup, trainable: int, weight: int = 4
                  ) -> Part:
    if setup.device == "cuda" and setup.optimizer in FOREACH:
        return Part("optimizer step scratch", _div(trainable * weight, setup.shards),
                    "foreach AdamW: a temporary of every parameter" + _over(setup.shards))
    largest = min(shape.largest_tensor, trainable)
    return Part("optimizer step scratch", 2 * weight * largest,
                f"two temporaries of the largest tensor ({largest:,})")


@dataclass(frozen=True)
class ExamSetup:
    """What decides the exam's memory per GPU."""

    engine: str  # vllm | hf
    dtype: str
    tensor_parallel: int
    sequences: int
    prompt_tokens: int
    new_tokens: int
    utilization: float = 1.0
    max_model_len: int | None = None


def exam_memory(shape: ModelShape, setup: ExamSetup, device_bytes: int) -> tuple[Estimate, dict]:
    """The exam per GPU: weights in the inference dtype + the KV cache of ``sequences``
    sequences of prompt + answer tokens, against vLLM's share of the GPU (all of it for hf).
    Also: how many sequences fit at once and whether one of ``max_model_len`` does (vLLM
    refuses to start otherwise)."""
    e, tp = ELEMENT[setup.dtype], setup.tensor_parallel
    weights = _div(shape.parameters * e, tp)
    per_token = shape.kv_bytes_per_token(e, tp)
    length = setup.prompt_tokens + setup.new_tokens
    kv = per_token * length * setup.sequences
    overhead = CUDA_OVERHEAD
    available = int(device_bytes * setup.utilization)
    shard = f" / tensor_parallel {tp}" if tp > 1 else ""
    parts = (Part(f"weights ({setup.dtype})", weights, f"{shape.parameters:,} x {e} B{shard}"),
             Part("KV cache", kv, f"{setup.sequences} sequences x {length} tokens (prompt ~"
                                  f"{setup.prompt_tokens} + {setup.new_tokens} new) x "
                                  f"{per_token:,} B"),
             Part("CUDA and framework overhead", overhead, "fixed"))
    room = available - weights - overhead
    longest = setup.max_model_len or (shape.max_positions if setup.engine == "vllm" else length)
    what = (f"vLLM, gpu_memory_utilization {setup.utilization:g}" if setup.engine == "vllm"
            else "hf generate")
    facts = {"sequences_that_fit": max(0, room // max(per_token * length, 1)),
             "longest_sequence": longest,
             "longest_fits": room >= per_token * longest,
             "kv_bytes_per_token": per_token}
    return Estimate(parts, sum(p.bytes for p in parts), available, what), facts


#: The GPU counts a fix may propose for FSDP.
_FSDP_SIZES = (2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Fix:
    """A change to the spec that makes training fit: in words, and as dotted keys."""

    words: str
    changes: dict[str, Any]
    setup: TrainingSetup

    def to_dict(self) -> dict[str, Any]:
        return {"say": self.words, "set": dict(self.changes)}


def training_fixes(shape: ModelShape, setup: TrainingSetup, available: int, gpus: int = 1,
                   nodes: int = 1, accumulation: int = 1) -> list[Fix]:
    """The single changes that make training fit, each checked with ``training_memory``;
    when none does alone, the pairs that do."""
    candidates: list[Fix] = []
    if not setup.gradient_checkpointing:
        candidates.append(Fix("training.gradient_checkpointing: true",
                              {"training.gradient_checkpointing": True},
                              replace(setup, gradient_checkpointing=True)))
    if setup.lora_r is None:
        candidates.append(Fix("training.lora: {r: 16} (LoRA adapters instead of a full "
                              "fine-tune)", {"training.lora": {"r": 16}},
                              replace(setup, lora_r=16, lora_dropout=0.05)))
    if setup.strategy not in ("fsdp", "deepspeed") and setup.device == "cuda":
        candidates += _fsdp_fix(shape, setup, available, gpus * nodes, nodes)
    candidates += _batch_fix(shape, setup, available, accumulation)
    fits = [fix for fix in candidates if training_memory(shape, fix.setup, available).fits]
    if fits:
        return fits
    pairs = []
    for i, first in enumerate(candidates):
        for second in candidates[i + 1:]:
            both = _combine(setup, first.setup, second.setup)
            if training_memory(shape, both, available).fits:
                pairs.append(Fix(f"{first.words} and {second.words}",
                                 {**first.changes, **second.changes}, both))
    return pairs


def _fsdp_fix(shape: ModelShape, setup: TrainingSetup, available: int, own: int, nodes: int
              ) -> list[Fix]:
    """FSDP over the fewest GPUs, no fewer than the spec's ``own``, that fit (none or one)."""
    for size in sorted({own, *_FSDP_SIZES} - {1}):
        fsdp = replace(setup, strategy="fsdp", world_size=size)
        if size < own or not training_memory(shape, fsdp, available).fits:
            continue
        if size == own:
            return [Fix(f"student.hardware.strategy: fsdp (FSDP full shard over its {size} GPUs)",
                        {"student.hardware.strategy": "fsdp"}, fsdp)]
        if nodes == 1:
            return [Fix(f"student.hardware: {{strategy: fsdp, gpus: {size}}} (FSDP full shard "
                        f"over {size} GPUs)",
                        {"student.hardware.strategy": "fsdp", "student.hardware.gpus": size}, fsdp)]
        return [Fix(f"student.hardware.strategy: fsdp over {size} GPUs in all (nodes x gpus)",
                    {"student.hardware.strategy": "fsdp"}, fsdp)]
    return []


def _batch_fix(shape: ModelShape, setup: TrainingSetup, available: int, accumulation: int
               ) -> list[Fix]:
    """The largest smaller batch per device that fits, keeping the global batch where it
    can (none or one)."""
    for largest in range(setup.batch_size - 1, 0, -1):
        if training_memory(shape, replace(setup, batch_size=largest), available).fits:
            total = setup.batch_size * accumulation
            # a divisor of the global batch keeps it, unless that halves the batch again
            batch = next(b for b in range(largest, 0, -1) if total % b == 0)
            batch = batch if 2 * batch >= largest else largest
            changes: dict[str, Any] = {"training.batch_size": batch}
            if total % batch == 0:
                changes["training.gradient_accumulation_steps"] = total // batch
                keep = (f", gradient_accumulation_steps: {total // batch} (the same global "
                        "batch)")
            else:
                keep = " (raise gradient_accumulation_steps to keep the global batch)"
            return [Fix(f"training.batch_size: {batch}{keep}", changes,
                        replace(setup, batch_size=batch))]
    return []


def _combine(base: TrainingSetup, a: TrainingSetup, b: TrainingSetup) -> TrainingSetup:
    """``base`` with what ``a`` and what ``b`` change."""
    changes = {name: getattr(b, name) for name in base.__dataclass_fields__
               if getattr(b, name) != getattr(base, name)}
    return replace(a, **changes)
