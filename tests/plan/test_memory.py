"""The memory plan: parameter counts, the closed-form training table, the refusal at validate
with the fixes that fit, ``plan --json``'s numbers, the batch said plainly, and the estimate
against accelerate's estimator and a measured CPU peak."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from fairspec.dsl import load_spec
from fairspec.plan import compile_plan
from fairspec.plan.environment import Environment
from fairspec.plan.memory import exam_setup, memory_plan
from fairspec.plan.memory_totals import GIB, TrainingSetup, exam_memory, training_memory
from fairspec.plan.model_shape import KNOWN_MODELS, ModelShape, model_shape

REPO = Path(__file__).resolve().parents[2]
LLAMA_7B = "meta-llama/Llama-2-7b-chat-hf"

SPEC = """\
fairspec: 1
name: mem
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini}}
  fields: {{question: question_concat, answer: Answer}}
student:
  model: {model}
  exam: {{engine: {engine}}}
  hardware:
    device: cuda
{hardware}
teachers:
  - {{name: a, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}}
  - {{name: b, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}}
training:
{training}
"""


def write_spec(folder: Path, *, hardware: str = "gpus: 1", training: str = "alpha: 0.5",
               model: str = LLAMA_7B, engine: str = "hf") -> Path:
    indent = "\n".join("    " + line for line in hardware.splitlines())
    body = "\n".join("  " + line for line in training.splitlines())
    path = folder / "spec.yaml"
    path.write_text(SPEC.format(model=model, engine=engine, hardware=indent, training=body))
    return path


def fairspec(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fairspec.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})


def safetensors_parameters(file: Path) -> int:
    """Elements of every tensor in a safetensors file, from its header (no torch)."""
    with file.open("rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(size))
    count = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        elements = 1
        for dim in info["shape"]:
            elements *= dim
        count += elements
    return count


def test_parameter_count_of_the_real_smollm2_is_exact(tiny_model):
    shape = model_shape(tiny_model, REPO)
    assert shape is not None and shape.source == "local folder"
    assert shape.parameters == safetensors_parameters(Path(tiny_model) / "model.safetensors")
    # the builtin alias resolves to the same converted folder's config
    builtin = model_shape("builtin:smollm2-135m-instruct", REPO)
    assert builtin is not None and builtin.parameters == shape.parameters


@pytest.mark.parametrize("name", sorted(KNOWN_MODELS))
def test_parameter_count_matches_accelerates_estimator_on_an_empty_model(name):
    """accelerate's estimate-memory builds an empty (meta) model from the config and sums
    its tensors; the config here is fairspec's table, so no hub is needed."""
    transformers = pytest.importorskip("transformers")
    from accelerate import init_empty_weights
    from accelerate.commands.estimate import estimate_training_usage
    from accelerate.utils import calculate_maximum_sizes

    values = dict(KNOWN_MODELS[name])
    model_type = values.pop("model_type", "llama")
    config = transformers.AutoConfig.for_model(model_type, **values)
    with init_empty_weights():
        model = transformers.AutoModelForCausalLM.from_config(config, dtype="float32")
    total, _ = calculate_maximum_sizes(model)
    shape = ModelShape.from_config(KNOWN_MODELS[name], name, "table")
    # accelerate walks module tensors: a tied lm_head counts twice, and the rotary
    # buffers (inv_freq and original_inv_freq, head_dim / 2 each) count too
    extra = (shape.embedding_parameters if shape.tied else 0) + shape.head_dim
    assert total == 4 * (shape.parameters + extra)
    total -= 4 * extra
    # AdamW in fp32: accelerate's weights + gradients + optimizer are the plan's
    usage = estimate_training_usage(total, "float32")
    plan = training_memory(shape, TrainingSetup("cpu", "fp32", "none", 1, 1, 1), 0)
    states = {p.name: p.bytes for p in plan.parts}
    assert usage["model"] + usage["gradients"] + usage["optimizer"] == \
        states["fp32 weights"] + states["gradients (fp32)"] + states["optimizer states (adamw_torch)"]
    # mixed precision: accelerate counts the half copies with the gradients (1.5 x fp32);
    # fused AdamW, whose step needs no fp32 temporary of every parameter
    usage = estimate_training_usage(total, "bfloat16")
    mixed = {p.name: p.bytes for p in training_memory(
        shape, TrainingSetup("cuda", "bf16", "none", 1, 1, 1, "adamw_torch_fused"), 0).parts}
    assert usage["model"] + usage["gradients"] + usage["optimizer"] == (
        mixed["fp32 master weights"] + mixed["gradients (fp32)"]
        + mixed["optimizer states (adamw_torch_fused)"]
        + mixed["autocast half copies of the weights"])


def _docs_row(setup: str) -> list[float]:
    """The numbers of one row of docs/spec.md's 7B table."""
    text = (REPO / "docs" / "spec.md").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith(f"| {setup} |"))
    cells = [c.strip() for c in line.strip("|").split("|")][1:]
    return [float("nan") if c == "-" else float(c) for c in cells]


@pytest.mark.parametrize(("row", "strategy", "world"), [("7B, one GPU", "none", 1),
                                                        ("7B, FSDP over 4", "fsdp", 4)])
def test_7b_full_finetune_matches_the_closed_form_table_in_the_docs(row, strategy, world):
    shape = model_shape(LLAMA_7B, REPO)
    assert shape is not None and shape.parameters == 6_738_415_616
    setup = TrainingSetup("cuda", "bf16", strategy, world, batch_size=8, max_seq_length=512)
    plan = training_memory(shape, setup, 80 * GIB)
    parts = {p.name: round(p.bytes / GIB, 1) for p in plan.parts}
    weights, grads, optimizer, copies, acts, total = _docs_row(row)
    assert parts["fp32 master weights"] == weights == round(4 * shape.parameters / world / GIB, 1)
    assert parts["gradients (fp32)"] == grads
    assert parts["optimizer states (adamw_torch)"] == optimizer == \
        round(8 * shape.parameters / world / GIB, 1)
    assert parts.get("autocast half copies of the weights", float("nan")) == copies or \
        (copies != copies and "autocast half copies of the weights" not in parts)
    assert parts["activations"] == acts
    assert round(plan.total / GIB, 1) == total
    assert plan.fits == (strategy == "fsdp")


def test_7b_on_one_80gb_gpu_is_refused_at_validate_with_the_fixes_that_fit(tmp_path):
    spec = write_spec(tmp_path, hardware="gpus: 1\ngpu_memory_gb: 80")
    result = fairspec("validate", str(spec))
    assert result.returncode == 2, result.stdout
    hardware_line = spec.read_text().splitlines().index("  hardware:") + 1
    found = re.search(rf"{re.escape(str(spec))}:{hardware_line}:\d+: student\.hardware: "
                      r"training needs about ([\d.]+) GiB per GPU .* a GPU has 80\.0 GiB",
                      result.stderr)
    assert found, result.stderr
    assert float(found.group(1)) > 80
    fixes = result.stderr.split("what would fit: ", 1)[1]
    assert "training.lora" in fixes and "strategy: fsdp" in fixes
    # neither checkpointing nor a smaller batch fits on its own (16 B a parameter is 100 GiB)
    assert "gradient_checkpointing" not in fixes and "batch_size" not in fixes


@pytest.mark.parametrize(("hardware", "training"), [
    ("gpus: 1\ngpu_memory_gb: 80", "lora: {r: 16}"),
    ("gpus: 4\nstrategy: fsdp\ngpu_memory_gb: 80", "alpha: 0.5"),
    ("gpus: 4\nstrategy: deepspeed\ngpu_memory_gb: 80", "alpha: 0.5"),
])
def test_the_same_7b_spec_with_lora_or_sharded_over_4_gpus_passes(tmp_path, hardware, training):
    result = fairspec("validate", str(write_spec(tmp_path, hardware=hardware, training=training)))
    assert result.returncode == 0, result.stderr
    assert ": ok (" in result.stdout


def test_a_cpu_spec_is_never_refused(tmp_path):
    spec = write_spec(tmp_path, training="batch_size: 64\nmax_seq_length: 4096")
    spec.write_text(spec.read_text().replace("device: cuda", "device: cpu"))
    result = fairspec("validate", str(spec))
    assert result.returncode == 0, result.stderr
    training_line = spec.read_text().splitlines().index("training:") + 1
    assert re.search(rf"warning: .*:{training_line}:\d+: training: training needs about [\d,.]+ "
                     r"GiB .* more than this machine's [\d,.]+ GiB of RAM", result.stderr), \
        result.stderr
    plan = memory_plan(load_spec(spec).spec, tmp_path, Environment())
    assert plan.device_source == "ram" and not plan.refused
    assert plan.training is not None and plan.training.total > 64 * 4096 * 32000  # the logits alone


def test_plan_json_carries_the_memory_numbers_and_the_global_batch(tmp_path):
    spec = write_spec(tmp_path, hardware="gpus: 4\nstrategy: fsdp\ngpu_memory_gb: 40",
                      training="batch_size: 2\ngradient_accumulation_steps: 3")
    result = fairspec("plan", str(spec), "--json", "--mistakes", "10")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)["runs"][0]
    assert run["batch"] == {"per_device": 2, "accumulation": 3, "processes": 4, "global": 24,
                            "single_process": 6}
    memory = run["memory"]
    assert memory["device_bytes"] == 40 * GIB and memory["device_source"] == "spec"
    assert memory["model"]["parameters"] == 6_738_415_616
    training = memory["training"]
    assert training["total_bytes"] == sum(p["bytes"] for p in training["parts"])
    expected = memory_plan(load_spec(spec).spec, tmp_path, Environment())
    assert training["total_bytes"] == expected.training.total
    assert training["fits"] == (training["total_bytes"] <= 40 * GIB)
    # 16 B a parameter over 4 GPUs is 25 GiB, and a batch of 2 x 512 tokens adds 5 GiB
    assert training["fits"] and not memory["refused"] and memory["fixes"] == []
    exam = memory["exam"]
    assert [p["name"] for p in exam["parts"]][:2] == ["weights (fp16)", "KV cache"] or \
        [p["name"] for p in exam["parts"]][:2] == ["weights (bf16)", "KV cache"]
    assert exam["parts"][0]["bytes"] == 2 * 6_738_415_616


def test_plan_prints_per_device_x_accumulation_x_processes(tmp_path):
    several = write_spec(tmp_path, hardware="gpus: 4\nstrategy: fsdp",
                         training="batch_size: 8\ngradient_accumulation_steps: 2")
    text = fairspec("plan", str(several), "--mistakes", "10").stdout
    assert "Training batch: per device 8 x accumulation 2 x processes 4 = global 64" in text
    assert "one process would take 16" in text
    assert "training (FSDP full shard over 4" in text and "-> fits" in text
    assert "GPU memory assumed 80 GiB" in text  # no gpu_memory_gb and no GPU here
    one = tmp_path / "one"
    one.mkdir()
    single = write_spec(one, training="lora: {r: 8}\nbatch_size: 8\ngradient_accumulation_steps: 2")
    text = fairspec("plan", str(single), "--mistakes", "10").stdout
    assert "per device 8 x accumulation 2 x processes 1 = global 16" in text
    assert "one process would take" not in text


def test_vllm_exam_is_refused_when_one_longest_sequence_cannot_fit(tmp_path):
    mistral = "mistralai/Mistral-7B-Instruct-v0.2"  # 32k context, 128 KiB of KV a token
    small = load_spec(write_spec(tmp_path, model=mistral, engine="vllm",
                                 hardware="gpus: 1\ngpu_memory_gb: 20",
                                 training="lora: {r: 8}\nbatch_size: 1\nmax_seq_length: 128")).spec
    env = Environment()
    plan = memory_plan(small, tmp_path, env)
    assert plan.exam is not None and plan.exam_facts["longest_sequence"] == 32768
    assert not plan.exam_fits and plan.refused
    shape = model_shape(mistral, tmp_path)
    # the same with max_model_len 4096: the weights and one sequence fit in 0.9 x 20 GiB
    setup = exam_setup(small, tmp_path, env)
    from dataclasses import replace

    _, facts = exam_memory(shape, replace(setup, max_model_len=4096), 20 * GIB)
    assert facts["longest_fits"]


def test_run_preflight_refuses_training_that_cannot_fit_only_when_it_trains(tmp_path):
    from fairspec.run.preflight import memory

    loaded = load_spec(write_spec(tmp_path, hardware="gpus: 1\ngpu_memory_gb: 80"))
    plan = compile_plan(loaded, Environment())
    specs = {run.name: loaded.spec_for(run.variant) for run in plan.runs}
    problems = memory(plan.runs, ("exam", "train"), specs, loaded.base_dir, Environment())
    assert len(problems) == 1 and "student.hardware: training needs" in problems[0]
    assert "training.lora" in problems[0]
    assert memory(plan.runs, ("exam",), specs, loaded.base_dir, Environment()) == []


PROBE = r"""
import json, sys
from pathlib import Path
import torch, transformers, datasets, accelerate  # noqa: F401
from transformers import AutoTokenizer
import fairspec.training.launch as launch
import fairspec.training.trainer, fairspec.training.tokenize, fairspec.training.packing  # noqa
model, changes = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from training_data import train_args
folder = Path(sys.argv[4])  # the test's own folder: the model and checkpoints go there
tokenizer = AutoTokenizer.from_pretrained(model)
# every example longer than max_seq_length: each packed row is one full-length example
long = " ".join(str(i) for i in range(4 * changes["max_seq_length"]))
rows = [{"sample": i, "kind": kind, "teacher": "t", "prompt": f"Question {i}: {long}",
         "completion": " = 1"} for i in range(changes["batch_size"]) for kind in ("rationale", "feedback")]
datasets.Dataset.from_list(rows).save_to_disk(str(folder / "dataset"))
def status(name):  # this process's own memory (ru_maxrss would count the parent's at fork)
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(name))
    return int(line.split()[1]) * 1024
base = status("VmRSS:")
launch.train(train_args(folder, model, **changes))
peak = status("VmHWM:")  # the high-water mark of this process's memory since its exec
print(json.dumps({"delta": peak - base}))
"""


@pytest.mark.slow
def test_training_estimate_is_within_15_percent_of_the_measured_cpu_peak(tiny_model, tmp_path):
    """fairspec's own train() of SmolLM2-135M on a CPU in fp32, in a subprocess: its peak
    resident memory above the baseline after imports against the plan's estimate. Read
    from /proc/self/status (VmHWM, VmRSS): ``ru_maxrss`` survives fork and exec, so a
    child of a large pytest process would start from its parent's size."""
    changes = {"epochs": 1, "batch_size": 4, "max_seq_length": 256, "gradient_accumulation_steps": 1,
               "optimizer": "adamw_torch", "dtype": "fp32", "device": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, tiny_model, json.dumps(changes), str(REPO / "tests" / "support"),
         str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])["delta"]
    shape = model_shape(tiny_model, tmp_path)
    setup = TrainingSetup("cpu", "fp32", "none", 1, batch_size=4, max_seq_length=256)
    estimate = training_memory(shape, setup, 0).total
    assert abs(estimate - measured) <= 0.15 * measured, (estimate / GIB, measured / GIB)


def _apply(spec: Path, changes: dict) -> None:
    """The spec with dotted keys set (written back as JSON, which is YAML)."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(spec.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    spec.write_text(json.dumps(data))


@pytest.mark.parametrize(("model", "hardware", "training"), [
    (LLAMA_7B, "gpus: 1\ngpu_memory_gb: 80", "alpha: 0.5"),
    ("Qwen/Qwen2.5-1.5B-Instruct", "gpus: 1\ngpu_memory_gb: 40", "batch_size: 16"),
    ("Qwen/Qwen2.5-1.5B-Instruct", "gpus: 1\ngpu_memory_gb: 24", "batch_size: 16"),
])
def test_every_fix_listed_makes_the_spec_pass_validate(tmp_path, model, hardware, training):
    spec = write_spec(tmp_path, model=model, hardware=hardware, training=training)
    plan = memory_plan(load_spec(spec).spec, tmp_path, Environment())
    assert plan.refused and plan.fixes
    for i, fix in enumerate(plan.fixes):
        fixed = tmp_path / f"fix{i}"
        fixed.mkdir()
        fixed_spec = write_spec(fixed, model=model, hardware=hardware, training=training)
        _apply(fixed_spec, fix.changes)
        result = fairspec("validate", str(fixed_spec))
        assert result.returncode == 0, (fix.words, result.stderr)
        if "training.gradient_accumulation_steps" in fix.changes:  # the global batch is kept
            new = load_spec(fixed_spec).spec.training
            old = load_spec(spec).spec.training
            assert new.batch_size * new.gradient_accumulation_steps == \
                old.batch_size * old.gradient_accumulation_steps


def test_pure_half_precision_and_8bit_adamw_change_the_per_parameter_bytes():
    shape = model_shape(LLAMA_7B, REPO)
    n = shape.parameters
    mixed = {p.name: p.bytes for p in training_memory(
        shape, TrainingSetup("cuda", "bf16", "none", 1, 8, 512), 0).parts}
    pure = {p.name: p.bytes for p in training_memory(
        shape, TrainingSetup("cuda", "bf16", "none", 1, 8, 512, precision="pure"), 0).parts}
    assert (mixed["fp32 master weights"], pure["bf16 weights"]) == (4 * n, 2 * n)
    assert (mixed["gradients (fp32)"], pure["gradients (bf16)"]) == (4 * n, 2 * n)
    assert (mixed["optimizer states (adamw_torch)"], pure["optimizer states (adamw_torch)"]) == \
        (8 * n, 4 * n)
    assert "autocast half copies of the weights" in mixed
    assert "autocast half copies of the weights" not in pure
    eight = {p.name: p.bytes for p in training_memory(
        shape, TrainingSetup("cuda", "bf16", "none", 1, 8, 512, "paged_adamw_8bit"), 0).parts}
    assert eight["optimizer states (paged_adamw_8bit)"] == 2 * n


def test_plan_of_a_spec_that_cannot_fit_says_so_with_its_fixes(tmp_path):
    spec = write_spec(tmp_path, hardware="gpus: 1\ngpu_memory_gb: 80")
    result = fairspec("plan", str(spec), "--mistakes", "10")
    assert result.returncode == 0, result.stderr  # plan shows; validate and run refuse
    assert "DOES NOT FIT" in result.stdout and "Memory per GPU: 80.0 GiB (student.hardware." \
        "gpu_memory_gb)" in result.stdout
    fixes = result.stdout.split("what would fit: ", 1)[1].splitlines()[0]
    assert "training.lora" in fixes and "strategy: fsdp" in fixes
    for name in ("fp32 master weights", "gradients (fp32)", "optimizer states (adamw_torch)",
                 "activations"):
        assert f"    {name}" in result.stdout
    data = json.loads(fairspec("plan", str(spec), "--json", "--mistakes", "10").stdout)
    memory = data["runs"][0]["memory"]
    assert memory["refused"] and not memory["training"]["fits"]
    assert [fix["say"] for fix in memory["fixes"]] == fixes.split("; ")
    assert {"training.lora", "student.hardware.strategy"} <= \
        {key for fix in memory["fixes"] for key in fix["set"]}


def test_the_shape_comes_from_the_hub_cache_without_the_network(tmp_path):
    """A hub id whose config.json is in the Hugging Face cache (HF_HUB_CACHE) is planned from
    it: a made-up repository the hub and fairspec's table do not know."""
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-student"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    config = {**KNOWN_MODELS["huggingfacetb/smollm2-135m-instruct"], "num_hidden_layers": 2}
    (snapshot / "config.json").write_text(json.dumps(config))
    spec = write_spec(tmp_path, model="acme/tiny-student")
    result = subprocess.run(
        [sys.executable, "-m", "fairspec.cli", "plan", str(spec), "--json", "--mistakes", "1"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_CACHE": str(cache),
             "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["runs"][0]["memory"]["model"]
    assert model["source"] == "hub cache" and model["num_hidden_layers"] == 2
    assert model["parameters"] == ModelShape.from_config(config, "x", "y").parameters


def test_a_variant_that_cannot_fit_is_refused_by_name(tmp_path):
    spec = write_spec(tmp_path, hardware="gpus: 4\nstrategy: fsdp\ngpu_memory_gb: 80")
    spec.write_text(spec.read_text() + "variants:\n  - {name: long, set: {training.batch_size: 64,"
                    " training.max_seq_length: 2048}}\n")
    result = fairspec("validate", str(spec))
    assert result.returncode == 2
    (line,) = [x for x in result.stderr.splitlines() if "student.hardware" in x]
    assert "variant long: training needs about" in line
    assert "batch 64 x 2048 tokens per device" in line
    # the logits of 64 x 2048 tokens alone pass 40 GiB: a smaller batch, the global one kept
    found = re.search(r"training\.batch_size: (\d+), gradient_accumulation_steps: (\d+) "
                      r"\(the same global batch\)", line)
    assert found and int(found.group(1)) * int(found.group(2)) == 64 * 2
