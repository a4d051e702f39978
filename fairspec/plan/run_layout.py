"""Where a run's exam and training run, said for a person and a program: each node's
commands, the exam's devices and the training batch."""

from __future__ import annotations

from typing import Any

from fairspec.plan.graph import Plan, RunPlan
from fairspec.plan.hardware import LOCAL, Rendezvous, format_command
from fairspec.plan.kinds import settings_of
from fairspec.plan.stage_settings import ExamSettings, TrainSettings


def training_nodes(plan: Plan, run: RunPlan, rendezvous: Rendezvous = LOCAL
                   ) -> list[dict[str, Any]]:
    """What each node runs for ``run``'s training: the ``fairspec run`` to type there and
    the launch command it starts (empty when training runs in fairspec's own process)."""
    stage = run.stage("train")
    layout = settings_of(stage, TrainSettings).layout
    if layout.launcher == "inline":
        return []
    train_dir = f"{run.run_dir}/{stage.name}"
    config = f"{train_dir}/accelerate_config.yaml" if layout.launcher == "accelerate" else None
    nodes = []
    for rank in range(layout.nodes):
        here = Rendezvous(rank, rendezvous.master_addr, rendezvous.master_port)
        fairspec = ["fairspec", "run", plan.spec_file]
        if run.variant is not None:
            fairspec += ["--variant", run.variant]
        if layout.nodes > 1:
            fairspec += ["--node-rank", str(rank), "--master-addr", here.master_addr,
                         "--master-port", str(here.master_port)]
        nodes.append({
            "node_rank": rank,
            "runs": "every stage" if rank == 0 else "the train stage only (joins node 0)",
            "fairspec": format_command(fairspec),
            "launch": format_command(layout.command(f"{train_dir}/train_args.json",
                                                    config_file=config, rendezvous=here)),
        })
    return nodes


def exam_layout(run: RunPlan) -> dict[str, Any] | None:
    """The exam's and the evaluation's devices: vLLM's tensor x data parallel, or hf's
    ``data_parallel`` replicas of one device each (None: one hf engine, or recorded)."""
    exam = settings_of(run.stage("exam"), ExamSettings)
    vllm = exam.vllm
    if vllm:
        tp, dp = vllm["tensor_parallel_size"], vllm.get("data_parallel_size", 1)
    elif exam.engine == "hf" and exam.replicas is not None and exam.replicas.replicas > 1:
        tp, dp = 1, exam.replicas.replicas
    else:
        return None
    return {"engine": "vllm" if vllm else "hf", "tensor_parallel": tp, "data_parallel": dp,
            "gpus": tp * dp, "device": exam.device}


def training_batch(run: RunPlan) -> dict[str, Any]:
    """The training batch said plainly: ``training.batch_size`` is per device, so the global
    batch is per device x accumulation x processes (it grows with the processes)."""
    train = settings_of(run.stage("train"), TrainSettings)
    per_device, accumulation = train.batch_size, train.gradient_accumulation_steps
    processes = train.layout.world_size
    return {"per_device": per_device, "accumulation": accumulation, "processes": processes,
            "global": per_device * accumulation * processes,
            "single_process": per_device * accumulation}


def training_batch_line(run: RunPlan) -> str:
    """``Training batch: per device B x accumulation G x processes P = global N``, and what
    one process would take when that differs."""
    b = training_batch(run)
    line = (f"Training batch: per device {b['per_device']} x accumulation {b['accumulation']} x "
            f"processes {b['processes']} = global {b['global']}")
    if b["global"] != b["single_process"]:
        line += (f" (one process would take {b['single_process']}: training.batch_size is per "
                 "device, so the global batch grows with the processes)")
    return line
