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
    settings = train_settings("ddp", gpus=2)
    assert settings["command"].split()[:6] == [
        "accelerate", "launch", "--config_file",
        settings["command"].split()[3], "--num_processes", "2"]
    assert settings["command"].endswith("train/train_args.json")
    assert settings["world_size"] == 2


def test_one_gpu_or_no_strategy_trains_in_process():
    settings = train_settings("none", gpus=1)
    assert settings["accelerate_config"] is None
    assert settings["command"].startswith("python -m fairspec.training.launch ")
