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

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fairspec.dsl.rules import local_model_config
from fairspec.dsl.schema import Spec
from fairspec.plan.environment import Environment
from fairspec.plan.hardware import (
    resolve_device,
    resolve_dtype,
    resolve_engine,
    training_world_size,
)
from fairspec.resources import BUILTIN_MODELS, builtin_model_alias

GIB = 2**30
#: The card size assumed when the spec says none and this machine has no GPU to ask.
ASSUMED_GPU_GB = 80.0
#: CUDA context, cuBLAS/NCCL workspaces and the caching allocator's slack, per GPU.
CUDA_OVERHEAD = int(1.5 * GIB)
#: vLLM's defaults: its share of each GPU, and the sequences it schedules at once.
VLLM_MEMORY_UTILIZATION = 0.9
VLLM_MAX_NUM_SEQS = 256
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
class ModelShape:
    """A decoder-only (Llama-style) model's sizes, read from its ``config.json``."""

    name: str
    source: str  # where the config came from: local folder, hub cache, builtin table
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    attention_bias: bool = False
    max_positions: int = 4096

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str, source: str) -> ModelShape:
        hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        return cls(
            name=name, source=source, hidden=hidden, layers=int(config["num_hidden_layers"]),
            heads=heads, kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate=int(config["intermediate_size"]), vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
            attention_bias=bool(config.get("attention_bias", False))
            or config.get("model_type") == "qwen2",  # Qwen2 has q/k/v biases, unsaid
            max_positions=int(config.get("max_position_embeddings") or 4096),
        )

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> dict[str, tuple[int, int]]:
        """Each linear of one layer: name -> (in features, out features)."""
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
                "o_proj": (self.q_dim, h), "gate_proj": (h, i), "up_proj": (h, i),
                "down_proj": (i, h)}

    @property
    def layer_parameters(self) -> int:
        bias = self.q_dim + 2 * self.kv_dim if self.attention_bias else 0
        return sum(a * b for a, b in self.linears().values()) + bias + 2 * self.hidden

    @property
    def embedding_parameters(self) -> int:
        return self.vocab * self.hidden

    @property
    def parameters(self) -> int:
        """Embedding + layers + final norm + lm_head (when not tied to the embedding)."""
        head = 0 if self.tied else self.embedding_parameters
        return self.embedding_parameters + self.layers * self.layer_parameters + self.hidden + head

    @property
    def largest_tensor(self) -> int:
        return max(self.embedding_parameters, *(a * b for a, b in self.linears().values()))

    def kv_bytes_per_token(self, element: int, tensor_parallel: int = 1) -> int:
        """K and V of every layer for one token on one GPU (heads split over the shards,
        replicated when there are fewer key/value heads than shards)."""
        heads = max(1, self.kv_heads // tensor_parallel)
        return 2 * self.layers * heads * self.head_dim * element

    def lora_parameters(self, r: int, targets: list[str] | str) -> int:
        linears = self.linears()
        names = list(linears) if targets == "all-linear" else [t for t in targets if t in linears]
        return self.layers * sum(r * (linears[n][0] + linears[n][1]) for n in names)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "parameters": self.parameters,
                "hidden_size": self.hidden, "num_hidden_layers": self.layers,
                "num_attention_heads": self.heads, "num_key_value_heads": self.kv_heads,
                "head_dim": self.head_dim, "intermediate_size": self.intermediate,
                "vocab_size": self.vocab, "tie_word_embeddings": self.tied}


def _llama(hidden: int, layers: int, heads: int, kv: int, inter: int, vocab: int,
           tied: bool = False, positions: int = 4096, **more: Any) -> dict[str, Any]:
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "intermediate_size": inter, "vocab_size": vocab,
            "tie_word_embeddings": tied, "max_position_embeddings": positions, **more}


#: The paper's students (and the builtin one) when their config.json is not on this machine:
#: the values of their hub config.json files.
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "meta-llama/llama-2-7b-hf": _llama(4096, 32, 32, 32, 11008, 32000),
    "meta-llama/llama-2-7b-chat-hf": _llama(4096, 32, 32, 32, 11008, 32000),
    "mistralai/mistral-7b-instruct-v0.2": _llama(4096, 32, 32, 8, 14336, 32000, positions=32768),
    "qwen/qwen2.5-1.5b-instruct": _llama(1536, 28, 12, 2, 8960, 151936, tied=True,
                                         positions=32768, model_type="qwen2"),
    "huggingfacetb/smollm2-135m-instruct": _llama(576, 30, 9, 3, 1536, 49152, tied=True,
                                                  positions=8192),
}


def model_shape(model: str, base_dir: Path) -> ModelShape | None:
    """The student's shape: its config.json here (a folder, a converted builtin), in the hub
    cache, or the builtin table; None when none of them knows it."""
    config = local_model_config(model, base_dir)
    alias = builtin_model_alias(model)
    if config is not None:
        return _shape(config, model, "builtin model" if alias else "local folder")
    hub_id = BUILTIN_MODELS[alias].hub_id if alias in BUILTIN_MODELS else None
    repo = hub_id or model
    if alias is None:
        cached = _hub_cached_config(repo)
        if cached is not None:
            return _shape(cached, model, "hub cache")
    known = KNOWN_MODELS.get((repo or "").lower())
    return _shape(known, model, "fairspec's table of the paper's students") if known else None


def _shape(config: dict[str, Any], name: str, source: str) -> ModelShape | None:
    try:
        return ModelShape.from_config(config.get("text_config", config), name, source)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _hub_cached_config(repo: str) -> dict[str, Any] | None:
    """config.json of ``repo`` when the hub cache holds it (never the network)."""
    if repo.startswith((".", "/", "~")) or repo.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    path = try_to_load_from_cache(repo, "config.json")
    if not isinstance(path, str):
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
    from fairspec.plan.estimate import _prompt_tokens  # the same rendering as the call estimate

    try:
        return _prompt_tokens(spec, base_dir, "prompts.exam", {})
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
        own = gpus * nodes
        for size in sorted({own, *_FSDP_SIZES} - {1}):
            fsdp = replace(setup, strategy="fsdp", world_size=size)
            if size < own or not training_memory(shape, fsdp, available).fits:
                continue
            if size == own:
                candidates.append(Fix(f"student.hardware.strategy: fsdp (FSDP full shard over "
                                      f"its {size} GPUs)", {"student.hardware.strategy": "fsdp"},
                                      fsdp))
            elif nodes == 1:
                candidates.append(Fix(f"student.hardware: {{strategy: fsdp, gpus: {size}}} (FSDP "
                                      f"full shard over {size} GPUs)",
                                      {"student.hardware.strategy": "fsdp",
                                       "student.hardware.gpus": size}, fsdp))
            else:
                candidates.append(Fix(f"student.hardware.strategy: fsdp over {size} GPUs in all "
                                      "(nodes x gpus)", {"student.hardware.strategy": "fsdp"},
                                      fsdp))
            break
    for largest in range(setup.batch_size - 1, 0, -1):
        if training_memory(shape, replace(setup, batch_size=largest), available).fits:
            total = setup.batch_size * accumulation
            # a divisor of the global batch keeps it, unless that halves the batch again
            batch = next(b for b in range(largest, 0, -1) if total % b == 0)
            batch = batch if 2 * batch >= largest else largest
            smaller = replace(setup, batch_size=batch)
            changes: dict[str, Any] = {"training.batch_size": batch}
            if total % batch == 0:
                changes["training.gradient_accumulation_steps"] = total // batch
                keep = (f", gradient_accumulation_steps: {total // batch} (the same global "
                        "batch)")
            else:
                keep = " (raise gradient_accumulation_steps to keep the global batch)"
            candidates.append(Fix(f"training.batch_size: {batch}{keep}", changes, smaller))
            break
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


def _combine(base: TrainingSetup, a: TrainingSetup, b: TrainingSetup) -> TrainingSetup:
    """``base`` with what ``a`` and what ``b`` change."""
    changes = {name: getattr(b, name) for name in base.__dataclass_fields__
               if getattr(b, name) != getattr(base, name)}
    return replace(a, **changes)


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
