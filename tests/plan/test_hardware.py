"""The generated accelerate config is one accelerate itself accepts, for every strategy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairspec.dsl import load_spec_text
from fairspec.plan import Environment, compile_plan

REPO = Path(__file__).resolve().parents[2]
GPU = Environment(cuda_devices=8, vllm=True)


def train_settings(strategy: str, gpus: int = 4, dtype: str = "bf16"):
    text = (REPO / "specs" / "gsm8k.yaml").read_text()
    text = text.replace("    gpus: 4", f"    gpus: {gpus}").replace("strategy: fsdp", f"strategy: {strategy}")
    text = text.replace("    dtype: fp16", f"    dtype: {dtype}")
    loaded = load_spec_text(text, base_dir=REPO / "specs")
    return compile_plan(loaded, GPU).runs[0].stage("train").settings


@pytest.mark.parametrize("strategy,kind",
                         [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed", "DEEPSPEED")])
def test_accelerate_parses_the_generated_config(tmp_path, strategy, kind):
    pytest.importorskip("accelerate")
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    settings = train_settings(strategy)
    path = tmp_path / "accelerate_config.yaml"
    path.write_text(json.dumps(settings["accelerate_config"]))  # JSON is YAML
    config = ClusterConfig.from_yaml_file(str(path))
    assert config.distributed_type.value == kind
    assert config.num_processes == 4
    assert config.mixed_precision.value == "bf16" if hasattr(config.mixed_precision, "value") \
        else config.mixed_precision == "bf16"
    options = {action.dest for action in launch_command_parser()._actions}
    nested = {**(config.fsdp_config or {}), **(config.deepspeed_config or {})}
    unknown = [key for key in nested if key not in options]
    assert not unknown, f"accelerate launch has no option for {unknown}"


def test_command_names_the_config_and_the_process_count():
    from accelerate.commands.launch import launch_command_parser

    from fairspec.plan.hardware import TrainingLayout

    settings = train_settings("ddp", gpus=2)
    assert settings["layout"] == {"launcher": "accelerate", "nodes": 1, "processes": 2,
                                  "world_size": 2}
    assert settings["world_size"] == 2
    command = TrainingLayout.from_settings(settings["layout"]).command(
        "run/train/train_args.json", config_file="run/train/accelerate_config.yaml",
        python="/env/bin/python")
    assert command[:3] == ["/env/bin/python", "-m", "accelerate.commands.launch"]
    parsed = launch_command_parser().parse_args(command[3:])
    assert parsed.config_file == "run/train/accelerate_config.yaml"
    assert parsed.num_processes == 2 and parsed.module
    assert parsed.training_script == "fairspec.training.launch"
    assert parsed.training_script_args == ["run/train/train_args.json"]


def test_one_gpu_or_no_strategy_trains_in_process():
    import sys

    from fairspec.plan.hardware import TrainingLayout

    settings = train_settings("none", gpus=1)
    assert settings["accelerate_config"] is None
    layout = TrainingLayout.from_settings(settings["layout"])
    assert layout.launcher == "inline" and layout.world_size == 1
    assert layout.command("a.json") == [sys.executable, "-m", "fairspec.training.launch", "a.json"]


def test_cpu_processes_and_nodes_go_through_torch_distributed_run():
    from torch.distributed.run import get_args_parser

    from fairspec.dsl.schema import Hardware
    from fairspec.plan.environment import Environment
    from fairspec.plan.hardware import Rendezvous, TrainingLayout, training_world_size

    cpu = Environment()
    assert training_world_size(Hardware(device="cpu", processes=2, strategy="ddp"), cpu) == 2
    assert training_world_size(Hardware(device="auto", gpus=4, strategy="ddp"), cpu) == 1
    assert training_world_size(Hardware(device="auto", gpus=4, strategy="ddp"),
                               Environment(cuda_devices=4)) == 4
    assert training_world_size(Hardware(device="cuda", gpus=8, nodes=2, strategy="fsdp"), cpu) == 16
    one = TrainingLayout("torchrun", 1, 2).command("a.json", python="py")
    two = TrainingLayout("torchrun", 2, 1).command("a.json", python="py",
                                                   rendezvous=Rendezvous(1, "10.1.2.3", 29700))
    for command in (one, two):
        assert command[:3] == ["py", "-m", "torch.distributed.run"]
        assert command[-3:] == ["-m", "fairspec.training.launch", "a.json"]
    args = get_args_parser().parse_args(one[3:])
    assert args.standalone and args.nproc_per_node == "2" and args.nnodes == "1"
    args = get_args_parser().parse_args(two[3:])
    assert (args.nnodes, args.node_rank, args.master_addr, args.master_port) == ("2", 1, "10.1.2.3",
                                                                                 29700)
    assert args.module and args.training_script == "fairspec.training.launch"


def test_the_rendezvous_comes_from_flags_then_the_environment(monkeypatch):
    from fairspec.errors import PlanError
    from fairspec.plan.hardware import Rendezvous

    monkeypatch.setenv("NODE_RANK", "3")
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.9")
    monkeypatch.setenv("MASTER_PORT", "29555")
    assert Rendezvous.from_env() == Rendezvous(3, "10.0.0.9", 29555)
    assert Rendezvous.from_env(1, "h", 1234) == Rendezvous(1, "h", 1234)
    for name in ("NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name)
    assert Rendezvous.from_env() == Rendezvous(0, "127.0.0.1", 29500)
    monkeypatch.setenv("NODE_RANK", "one")
    with pytest.raises(PlanError, match="NODE_RANK='one' is not a whole number"):
        Rendezvous.from_env()
    assert Rendezvous.from_env(node_rank=1).node_rank == 1  # a flag wins over the variable


def test_tensor_parallel_must_divide_the_local_models_attention_heads(tmp_path):
    from fairspec.dsl.rules import check_rules

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 12,
                                                   "num_key_value_heads": 4}))

    def findings(tp: int) -> list[str]:
        text = (REPO / "specs" / "gsm8k.yaml").read_text()
        loaded = load_spec_text(text, base_dir=REPO / "specs")
        hw = loaded.spec.student.hardware.model_copy(update={"gpus": 8, "tensor_parallel": tp})
        student = loaded.spec.student.model_copy(update={"model": str(model), "hardware": hw})
        spec = loaded.spec.model_copy(update={"student": student})
        return [f.message for f in check_rules(spec, tmp_path)
                if f.path == ("student", "hardware", "tensor_parallel")]

    assert findings(4) == [] and findings(2) == []
    assert findings(8) == ["tensor_parallel 8 does not divide the model's 12 attention heads "
                           "(vLLM refuses it)"]
    assert findings(6) == ["tensor_parallel 6 neither divides nor is a multiple of the "
                           "model's 4 key/value heads (vLLM refuses it)"]


def test_the_plan_says_when_it_could_not_check_the_heads():
    text = (REPO / "specs" / "gsm8k.yaml").read_text().replace("tensor_parallel: 1", "tensor_parallel: 2")
    assert "tensor_parallel: 2" in text
    loaded = load_spec_text(text.replace("engine: auto", "engine: vllm"), base_dir=REPO / "specs")
    notes = compile_plan(loaded, GPU).notes
    assert any(note.startswith("could not check that tensor_parallel 2 divides") for note in notes)
