"""Maps a spec's hardware section onto engines: the exam's vLLM/HF settings, accelerate for training."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any

from fairspec.dsl.schema import Hardware, Spec
from fairspec.dtypes import dtype_name
from fairspec.errors import PlanError
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


#: Why an auto exam engine is hf on GPUs (:func:`exam_engine_warning` looks for it).
AUTO_WITHOUT_VLLM = "auto: no vllm installed"


def resolve_engine(spec: Spec, env: Environment, *, recorded: bool = True) -> tuple[str, str]:
    """(engine, why) for the exam: auto picks vllm when it imports and a GPU is present.
    A recorded exam reads its answers from a file (``recorded=False``: the engine that
    generates instead, as auto picks it, for the evaluation)."""
    requested = spec.student.exam.engine
    device = resolve_device(spec.student.hardware, env)
    if requested == "recorded" and recorded:
        return "recorded", "requested: the answers come from student.exam.recorded"
    if requested == "recorded":
        requested = "auto"
    if requested == "hf":
        return "hf", "requested"
    if requested == "vllm":
        why = "requested" if env.vllm else "requested (vllm is not installed on this machine)"
        return "vllm", why
    if device == "cuda" and env.vllm:
        return "vllm", "auto: vllm imports and a GPU is present"
    if device == "cuda":
        return "hf", AUTO_WITHOUT_VLLM
    return "hf", "auto: no GPU"


def vllm_settings(spec: Spec, env: Environment) -> dict[str, Any]:
    """What the vLLM exam engine gets: ``vllm.LLM``'s arguments from the spec's hardware
    and ``student.exam.vllm`` (the options left null are vLLM's defaults), and how many
    replicas (``data_parallel_size``) answer the split side by side."""
    hw = spec.student.hardware
    options = {key: value for key, value in spec.student.exam.vllm.model_dump().items()
               if value is not None}
    return {
        "tensor_parallel_size": hw.tensor_parallel,
        "data_parallel_size": hw.data_parallel,
        "dtype": dtype_name(resolve_dtype(hw, env)),
        "seed": spec.seed,
        **options,
    }


def exam_replicas(hardware: Hardware, engine: str) -> dict[str, int]:
    """How the exam and the evaluation spread over devices: ``replicas`` engine processes
    side by side (``student.hardware.data_parallel``), each on ``per_replica`` GPUs
    (vLLM: ``tensor_parallel``; hf: one, as hf does not split a model). One replica is one
    engine in fairspec's process; a recorded exam runs none."""
    if engine == "vllm":
        return {"replicas": hardware.data_parallel, "per_replica": hardware.tensor_parallel}
    if engine == "hf":
        return {"replicas": hardware.data_parallel, "per_replica": 1}
    return {"replicas": 1, "per_replica": 1}


def exam_engine_warning(engine: str, engine_reason: str, replicas: int) -> str | None:
    """The loud line for an exam (its compiled ``engine``, why, and its hf ``replicas``) whose
    ``engine: auto`` fell back to hf on GPUs because vllm does not import where the plan was
    compiled (None otherwise): a paper-sized exam on hf is hours slower, and it is what the
    plan will run."""
    if engine != "hf" or engine_reason != AUTO_WITHOUT_VLLM:
        return None
    return (f"student.exam.engine is auto on cuda and vllm does not import here: the exam and "
            f"the evaluation will run on hf ({replicas} replica(s), one GPU each), far slower "
            "than vLLM; install it (pip install vllm) and plan again, or say engine: hf to "
            "accept this")


def training_processes(hardware: Hardware, env: Environment) -> int:
    """Training processes per node: as set, else one per GPU on cuda and one on a CPU."""
    if hardware.processes is not None:
        return hardware.processes
    return hardware.gpus if resolve_device(hardware, env) == "cuda" else 1


def training_world_size(hardware: Hardware, env: Environment) -> int:
    """All training processes, over every node: one without a strategy."""
    if hardware.strategy == "none":
        return 1
    return hardware.nodes * training_processes(hardware, env)


def accelerate_config(spec: Spec, env: Environment) -> dict[str, Any] | None:
    """The ``accelerate launch --config_file`` contents for training on several GPUs, else None.

    The node's rank and the rendezvous address are not in it: each node's launch command
    passes its own (``--machine_rank``, ``--main_process_ip``, ``--main_process_port``).
    """
    hw = spec.student.hardware
    if training_launcher(spec, env) != "accelerate":
        return None
    dtype = resolve_dtype(hw, env)
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "machine_rank": 0,
        "num_machines": hw.nodes,
        "num_processes": training_world_size(hw, env),
        "gpu_ids": "all",
        # autocast over fp32 weights (FSDP keeps its sharded parameters in fp32 and computes
        # in the half dtype; DeepSpeed's bf16/fp16 mode keeps fp32 master weights); pure
        # half-precision weights need no autocast
        "mixed_precision": "no" if spec.training.precision == "pure"
        else {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[dtype],
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
            # each rank saves its shard in checkpoints (resume); the final model is
            # gathered to rank 0 by Trainer.save_model (launch.save_final_model)
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


def training_launcher(spec: Spec, env: Environment) -> str:
    """inline (one process, in fairspec's own), torchrun (torch.distributed.run: CPU
    processes over gloo; accelerate runs one process on a CPU) or accelerate (GPUs)."""
    hw = spec.student.hardware
    if training_world_size(hw, env) == 1:
        return "inline"
    return "accelerate" if resolve_device(hw, env) == "cuda" else "torchrun"


#: Where node 0 listens for the other nodes when neither a flag nor the environment says.
DEFAULT_MASTER_ADDR = "127.0.0.1"
DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class Rendezvous:
    """Which node this is and where node 0 is: from ``fairspec run --node-rank/--master-addr/
    --master-port``, else the environment (NODE_RANK, MASTER_ADDR, MASTER_PORT)."""

    node_rank: int = 0
    master_addr: str = DEFAULT_MASTER_ADDR
    master_port: int = DEFAULT_MASTER_PORT

    @classmethod
    def from_env(cls, node_rank: int | None = None, master_addr: str | None = None,
                 master_port: int | None = None) -> Rendezvous:
        env = os.environ
        return cls(
            node_rank=node_rank if node_rank is not None else _env_int("NODE_RANK", 0),
            master_addr=master_addr or env.get("MASTER_ADDR") or DEFAULT_MASTER_ADDR,
            master_port=master_port or _env_int("MASTER_PORT", DEFAULT_MASTER_PORT),
        )


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise PlanError(f"environment variable {name}={value!r} is not a whole number >= 0")
    return int(value)


#: Node 0 at the default address (a single node's rendezvous).
LOCAL = Rendezvous()


@dataclass(frozen=True)
class TrainingLayout:
    """How the train stage starts its processes (the train stage's ``layout`` setting)."""

    launcher: str  # inline | torchrun | accelerate
    nodes: int = 1
    processes: int = 1

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes

    @classmethod
    def of(cls, spec: Spec, env: Environment) -> TrainingLayout:
        launcher = training_launcher(spec, env)
        if launcher == "inline":
            return cls("inline")
        hw = spec.student.hardware
        return cls(launcher, hw.nodes, training_processes(hw, env))

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> TrainingLayout:
        return cls(settings["launcher"], settings["nodes"], settings["processes"])

    def to_dict(self) -> dict[str, Any]:
        return {"launcher": self.launcher, "nodes": self.nodes, "processes": self.processes,
                "world_size": self.world_size}

    def command(self, args_file: str, *, config_file: str | None = None,
                rendezvous: Rendezvous = LOCAL, python: str | None = None) -> list[str]:
        """The exact command one node runs; ``python``: this environment's interpreter."""
        python = python or sys.executable
        script = ["-m", "fairspec.training.launch", args_file]
        if self.launcher == "inline":
            return [python, *script]
        if self.launcher == "torchrun":
            where = (["--standalone"] if self.nodes == 1 else
                     ["--node_rank", str(rendezvous.node_rank),
                      "--master_addr", rendezvous.master_addr,
                      "--master_port", str(rendezvous.master_port)])
            return [python, "-m", "torch.distributed.run", "--nnodes", str(self.nodes),
                    "--nproc_per_node", str(self.processes), *where, *script]
        if config_file is None:
            raise ValueError("an accelerate launch needs its config file")
        where = ([] if self.nodes == 1 else
                 ["--num_machines", str(self.nodes), "--machine_rank", str(rendezvous.node_rank),
                  "--main_process_ip", rendezvous.master_addr,
                  "--main_process_port", str(rendezvous.master_port)])
        return [python, "-m", "accelerate.commands.launch", "--config_file", config_file,
                "--num_processes", str(self.world_size), *where, *script]


def format_command(command: list[str]) -> str:
    return shlex.join(command)
