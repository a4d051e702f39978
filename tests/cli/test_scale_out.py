"""Scale-out paths the plan offers, run for real on the CPU: the train stage on two processes
(torch.distributed.run over gloo), two "nodes" on 127.0.0.1 (two `fairspec run` launches,
ranks 0 and 1), and the plan's per-node commands for a 2-node x 8-GPU spec."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
from katan_runs import committee, compile_run, free_port, spec_text, write_spec
from training_data import generates, make_dataset

from fairspec.artifacts import atomic_write_json
from fairspec.run.executor import run_stage

FAIRSPEC = [sys.executable, "-m", "fairspec.cli"]
STUDENT = ("{model: %s, exam: {max_new_tokens: 32, do_sample: false},"
           " hardware: {device: cpu, %s}}")
BUILTIN = "builtin:smollm2-135m-instruct"
TRAINING = "{epochs: 1, batch_size: 2, gradient_accumulation_steps: 1, max_seq_length: 192}"


class Steps:
    """A CountProgress that remembers what the train stage reported."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []
        self.total = None

    def start_count(self, task: str, total: int, unit: str) -> None:
        self.total = total

    def count(self, task: str, done: int, note: str = "") -> None:
        self.seen.append((done, note))

    def finish(self, task: str) -> None:
        pass


@pytest.mark.slow
def test_the_train_stage_trains_on_two_cpu_processes(tmp_path, small_student):
    made = compile_run(spec_text(committee("http://127.0.0.1:9/v1"),
                                 student=STUDENT % (small_student, "processes: 2, strategy: ddp"),
                                 training=TRAINING), tmp_path)
    train = made.run.stage("train")
    assert train.settings["layout"] == {"launcher": "torchrun", "nodes": 1, "processes": 2,
                                        "world_size": 2}
    build = made.stage_dir("build")  # a built training set, as the build stage leaves it
    examples = make_dataset(build)
    atomic_write_json(build / "stats.json", {"examples": len(examples)})
    steps = Steps()
    stats = run_stage(made.run, "train", base_dir=tmp_path, progress=steps)
    assert stats["world_size"] == 2 and stats["steps"] == 3  # 6 samples / (2 ranks x 1)
    assert made.done("train")
    assert json.loads((made.stage_dir("train") / "stats.json").read_text())["world_size"] == 2
    assert steps.total == 3 and steps.seen[-1][0] == 3 and steps.seen[-1][1].startswith("loss ")
    assert generates(made.stage_dir("train") / "model", examples[0]["prompt"])
    launch_log = (made.stage_dir("train") / "work" / "launch.log").read_text()
    assert launch_log.startswith(f"$ {shlex.quote(sys.executable)} -m torch.distributed.run")


@pytest.mark.slow
def test_two_nodes_on_localhost_train_once(tmp_path, katan, katan_key, small_student):
    spec = write_spec(tmp_path, spec_text(
        committee(katan.openai_url, names=("alpha", "beta")), limit="{train: 4, test: 2}",
        student=STUDENT % (small_student, "nodes: 2, processes: 1, strategy: ddp"), training=TRAINING,
        review="{enabled: false}", output_dir=str(tmp_path / "runs")))
    port = str(free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    nodes = [subprocess.Popen([*FAIRSPEC, "run", str(spec), "--until", "train",
                               "--node-rank", str(rank), "--master-port", port],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (1, 0)]  # the joining node first: it waits for node 0
    main = nodes[1].communicate(timeout=900)[0]
    if nodes[1].returncode != 0:  # node 1 would wait for node 0's training arguments in vain
        nodes[0].kill()
    joined = nodes[0].communicate(timeout=900)[0]
    assert [node.returncode for node in nodes] == [0, 0], f"{joined}\n---\n{main}"
    assert "katan-test train: trained with node 0" in joined
    assert "exam" not in joined and "teach" not in joined  # node 1 ran no other stage
    assert "katan-test train: done" in main
    train = tmp_path / "runs" / "katan-test" / "train"
    stats = json.loads((train / "stats.json").read_text())
    assert stats["world_size"] == 2 and stats["steps"] >= 1
    assert sorted(p.name for p in (train / "work").iterdir()
                  if p.name.startswith("launch")) == ["launch-node1.log", "launch.log"]
    saved = [p for p in tmp_path.rglob("model.safetensors") if "checkpoints" not in p.parts]
    assert saved == [train / "model" / "model.safetensors"]  # saved once, by rank 0
    assert generates(train / "model", "What is 2 + 3?")


def test_the_plan_shows_every_nodes_command_and_the_exam_layout(tmp_path):
    from accelerate.commands.launch import launch_command_parser

    spec = write_spec(tmp_path, spec_text(
        committee("http://127.0.0.1:9/v1", names=("alpha", "beta")),
        student="{model: Qwen/Qwen2.5-7B-Instruct, exam: {engine: vllm}, hardware: {device: cuda,"
                " gpus: 8, nodes: 2, strategy: fsdp, dtype: bf16, tensor_parallel: 2,"
                " data_parallel: 4}}"))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    shown = subprocess.run([*FAIRSPEC, "plan", str(spec), "--master-addr", "10.0.0.5"],
                           env=env, capture_output=True, text=True, check=True).stdout
    data = json.loads(subprocess.run([*FAIRSPEC, "plan", str(spec), "--json", "--master-addr",
                                      "10.0.0.5", "--master-port", "29611"], env=env,
                                     capture_output=True, text=True, check=True).stdout)
    run = data["runs"][0]
    assert run["exam_layout"] == {"engine": "vllm", "tensor_parallel": 2, "data_parallel": 4,
                                  "gpus": 8, "device": "cuda"}
    assert "4 replica(s) x tensor_parallel 2 = 8 GPU(s)" in shown
    nodes = run["training_nodes"]
    assert [n["node_rank"] for n in nodes] == [0, 1]
    for rank, node in enumerate(nodes):
        assert node["fairspec"] == (f"fairspec run {spec} --node-rank {rank} "
                                    "--master-addr 10.0.0.5 --master-port 29611")
        launch = shlex.split(node["launch"])
        assert launch[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
        parsed = launch_command_parser().parse_args(launch[3:])
        assert (parsed.num_processes, parsed.num_machines, parsed.machine_rank) == (16, 2, rank)
        assert parsed.main_process_ip == "10.0.0.5" and parsed.main_process_port == 29611
        assert parsed.module and parsed.training_script == "fairspec.training.launch"
        assert f"node {rank} (" in shown and f"--node-rank {rank} --master-addr 10.0.0.5" in shown
    train = next(s for s in run["stages"] if s["name"] == "train")
    assert train["settings"]["accelerate_config"]["num_machines"] == 2


def test_a_node_rank_past_the_spec_is_refused(tmp_path):
    spec = write_spec(tmp_path, spec_text(
        committee("http://127.0.0.1:9/v1", names=("alpha", "beta")),
        student=STUDENT % (BUILTIN, "nodes: 2, strategy: ddp"), output_dir=str(tmp_path / "runs")))
    done = subprocess.run([*FAIRSPEC, "run", str(spec), "--node-rank", "2"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert "node rank 2 is not below the spec's student.hardware.nodes" in done.stderr
    assert not (tmp_path / "runs" / "katan-test" / "exam").exists()  # nothing ran


def test_a_joining_node_waits_for_the_accelerate_config_as_well_as_the_args(tmp_path):
    """Node 1's launcher reads accelerate_config.yaml: with node 0's files appearing in the
    racy order (train_args.json first, the config 0.6 s later), node 1 waits for both."""
    import threading
    import time

    from fairspec.plan.hardware import Rendezvous, TrainingLayout
    from fairspec.stages.context import Services, StageContext
    from fairspec.stages.train import launch_inputs, wait_for_node_0

    made = compile_run(spec_text(committee("http://127.0.0.1:9/v1"), student=(
        "{model: builtin:smollm2-135m-instruct, hardware: {device: cuda, gpus: 1, nodes: 2,"
        " strategy: ddp}}"), training=TRAINING), tmp_path)
    stage = made.run.stage("train")
    layout = TrainingLayout.from_settings(stage.settings["layout"])
    assert layout.launcher == "accelerate" and layout.world_size == 2
    services = Services(base_dir=tmp_path, cache_dir=tmp_path / "cache",
                        rendezvous=Rendezvous(node_rank=1))
    node0, node1 = (StageContext(stage, made.run, services) for _ in range(2))
    config, args = launch_inputs(node1, layout)
    assert (config.name, args.name) == ("accelerate_config.yaml", "train_args.json")
    build = made.stage_dir("build")
    build.mkdir(parents=True)
    atomic_write_json(build / "stats.json", {"examples": 6})
    node0.prepare()

    def node_0_in_the_racy_order() -> None:
        atomic_write_json(args, {"written": "first"})
        time.sleep(0.6)
        config.write_text("{}")

    writer = threading.Thread(target=node_0_in_the_racy_order)
    writer.start()
    try:
        assert wait_for_node_0(node1, layout, Rendezvous(node_rank=1), poll=0.05, timeout=30)
        assert config.is_file(), "node 1 would have started its launcher without its config"
    finally:
        writer.join()


def test_node_0_writes_the_accelerate_config_before_the_args_file(tmp_path, monkeypatch):
    """The file a joining node waits for last (train_args.json) is the one node 0 writes last."""
    from fairspec.artifacts import atomic_write_json as real_write_json
    from fairspec.run.executor import run_stage as run_train
    from fairspec.stages import train

    made = compile_run(spec_text(committee("http://127.0.0.1:9/v1"), student=(
        "{model: builtin:smollm2-135m-instruct, hardware: {device: cuda, gpus: 1, nodes: 2,"
        " strategy: ddp}}"), training=TRAINING), tmp_path)
    build = made.stage_dir("build")
    make_dataset(build)
    atomic_write_json(build / "stats.json", {"examples": 0})  # node 0 stops before launching
    config = made.stage_dir("train") / "accelerate_config.yaml"
    seen: list[bool] = []

    def noting(path, data):
        if path.name == "train_args.json":
            seen.append(config.is_file())
        return real_write_json(path, data)

    monkeypatch.setattr(train, "atomic_write_json", noting)
    run_train(made.run, "train", base_dir=tmp_path)
    assert seen == [True]


def test_the_plan_warns_of_an_auto_exam_on_hf_and_shows_its_replicas(tmp_path):
    """A 2-node x 8-GPU spec with engine auto, planned where vllm does not import: a loud
    warning with the install command, and the hf replicas the exam will run on."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm imports here: auto picks it")
    spec = write_spec(tmp_path, spec_text(
        committee("http://127.0.0.1:9/v1", names=("alpha", "beta")),
        student="{model: Qwen/Qwen2.5-7B-Instruct, hardware: {device: cuda, gpus: 8, nodes: 2,"
                " strategy: fsdp, dtype: bf16, data_parallel: 8}}"))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "300"}
    shown = subprocess.run([*FAIRSPEC, "plan", str(spec)], env=env, capture_output=True,
                           text=True, check=True).stdout
    assert "Exam and evaluation on hf: 8 replica(s), one GPU each = 8 GPU(s)" in shown
    flat = " ".join(shown.split())
    assert ("warning: student.exam.engine is auto on cuda and vllm does not import here: the exam "
            "and the evaluation will run on hf (8 replica(s), one GPU each)") in flat
    assert "pip install vllm" in flat
    data = json.loads(subprocess.run([*FAIRSPEC, "plan", str(spec), "--json"], env=env,
                                     capture_output=True, text=True, check=True).stdout)
    assert data["runs"][0]["exam_layout"] == {"engine": "hf", "tensor_parallel": 1,
                                              "data_parallel": 8, "gpus": 8, "device": "cuda"}
