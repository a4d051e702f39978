"""Maps a spec's hardware section onto engines: the exam's vLLM/HF settings, accelerate for training."""

from __future__ import annotations

import shlex
from typing import Any

from fairspec.dsl.schema import Hardware, Spec
from fairspec.dtypes import dtype_name
from fairspec.plan.environment import Environment


def resolve_device(hardware: Hardware, env: Environment) -> str:
    if hardware.device != "auto":
        return hardware.device
    return "cuda" if env.cuda_devices > 0 else "cpu"


def resolve_dtype(hardware: Hardware, env: Environment) -> str:
    """bf16/fp16/fp32; auto is bf16 on a GPU and fp32 on a CPU (CPUs here lack bf16 units)."""
    if hardware.dtype != "auto":
        return hardware.dtype
    return "bf16" if resolve_device(hardware, env) == "cuda" else "fp32"


def resolve_engine(spec: Spec, env: Environment) -> tuple[str, str]:
    """(engine, why) for the exam: auto picks vllm when it imports and a GPU is present."""
    requested = spec.student.exam.engine
    device = resolve_device(spec.student.hardware, env)
    if requested == "hf":
        return "hf", "requested"
    if requested == "vllm":
        why = "requested" if env.vllm else "requested (vllm is not installed on this machine)"
        return "vllm", why
    if device == "cuda" and env.vllm:
        return "vllm", "auto: vllm imports and a GPU is present"
    if device == "cuda":
        return "hf", "auto: no vllm installed"
    return "hf", "auto: no GPU"


def vllm_settings(spec: Spec, env: Environment) -> dict[str, Any]:
    """The arguments ``vllm.LLM`` gets from the spec's hardware."""
    hw = spec.student.hardware
    return {
        "tensor_parallel_size": hw.tensor_parallel,
        "dtype": dtype_name(resolve_dtype(hw, env)),
        "seed": spec.seed,
    }


def training_world_size(hardware: Hardware) -> int:
    """Processes training runs on: all GPUs with a strategy, else one."""
    return hardware.gpus if hardware.strategy != "none" and hardware.gpus > 1 else 1


def accelerate_config(spec: Spec, env: Environment) -> dict[str, Any] | None:
    """The ``accelerate launch --config_file`` contents for training on > 1 GPU, else None."""
    hw = spec.student.hardware
    if training_world_size(hw) == 1:
        return None
    dtype = resolve_dtype(hw, env)
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "machine_rank": 0,
        "num_machines": 1,
        "num_processes": hw.gpus,
        "gpu_ids": "all",
        "mixed_precision": {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[dtype],
        "rdzv_backend": "static",
        "same_network": True,
        "main_training_function": "main",
        "use_cpu": False,
    }
    if hw.strategy == "ddp":
        config["distributed_type"] = "MULTI_GPU"
    elif hw.strategy == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_activation_checkpointing": spec.training.gradient_checkpointing,
        }
    else:  # deepspeed ZeRO-3
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {
            "zero_stage": 3,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": True,
            "zero3_save_16bit_model": True,
            "gradient_accumulation_steps": spec.training.gradient_accumulation_steps,
            "gradient_clipping": spec.training.max_grad_norm,
        }
    return config


def training_command(run_dir: str, spec: Spec) -> list[str]:
    """The exact command that runs the train stage (accelerate launch for > 1 GPU)."""
    args = ["-m", "fairspec.training.launch", f"{run_dir}/train/train_args.json"]
    world = training_world_size(spec.student.hardware)
    if world == 1:
        return ["python", *args]
    return [
        "accelerate", "launch",
        "--config_file", f"{run_dir}/train/accelerate_config.yaml",
        "--num_processes", str(world),
        *args,
    ]


def format_command(command: list[str]) -> str:
    return shlex.join(command)
