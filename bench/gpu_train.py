"""The train stage's own code on a random-init paper student, on the GPUs of this machine.

    python bench/gpu_train.py                 # Qwen2.5-1.5B's full shape, bf16 mixed precision
    python bench/gpu_train.py --cpu-smoke     # a tiny model of the same family on the CPU
    python bench/gpu_train.py --precisions mixed,pure   # also pure bf16 weights, for contrast

What runs is fairspec's training launch (``fairspec.training.launch.train``: the JointTrainer,
packing, fp32 master weights under bf16 autocast), started the way the train stage starts it:
one process on one GPU (``python bench/gpu_train.py --worker ARGS``, which calls ``train`` as
``python -m fairspec.training.launch`` does), and on several GPUs ``accelerate launch`` with
the FSDP config and command that ``fairspec.plan.hardware`` writes for a spec with
``strategy: fsdp`` (the script swapped for this worker). No weights travel and there is no
hub: the model is a random-init ``Qwen2ForCausalLM`` of the paper student's shape (28 layers,
hidden 1536, 12 heads, 2 key/value heads, MLP 8960, vocabulary 151,936, tied embeddings),
saved in bf16 like the released checkpoint, with a word-level tokenizer built here from
svamp-mini's questions (each word one token, so the examples' lengths are set exactly); the
training set is the build stage's format (sample, kind, teacher, prompt, completion), every
example close to ``max_seq_length`` so the batch is what the memory plan assumes.

Printed (and written to ``$OUT/gpu_train.json`` when OUT is set), per precision:
tokens/s over the timed steps (all but the first), peak memory per GPU
(``torch.cuda.max_memory_allocated`` and ``..._reserved`` of rank 0 until the end of
training) beside the memory plan's estimate for the same settings
(``fairspec.plan.memory.training_memory`` with ``training_setup`` of the same spec; its total
includes a fixed 1.5 GiB of CUDA context the allocator does not see), the first and last
loss, and the share of the weights the steps changed at lr 1e-5 (Table 9): in fp32 and
counted in bf16 terms (a value whose bf16 rounding moved). With fp32 master weights nearly all
weights move; with pure bf16 weights most updates round away (the issue measured 1.7% on the
tiny model).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SVAMP = REPO / "fairspec/resources/data/svamp-mini/train.jsonl"
#: What the train path imports; a GPU image lacking one is told so before anything runs.
NEEDED = ("torch", "transformers", "accelerate", "datasets", "tokenizers", "safetensors",
          "fairspec.training.launch", "fairspec.plan.memory", "fairspec.dsl")

#: Qwen2.5-1.5B-Instruct's config.json (the paper's LogiQA student), sizes only.
QWEN25_15B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536,
    "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
    "hidden_act": "silu", "use_sliding_window": False,
}
#: The same family, small enough for a 2-core CPU.
TINY = {**QWEN25_15B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096}


def check_imports() -> list[str]:
    """The modules of the train path that do not import here, with why."""
    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 — any failure to import is what we report
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    return missing


# -- the inputs: tokenizer, model, training set ------------------------------------------------


def words() -> list[str]:
    text = " ".join(json.loads(line)["question_concat"] for line in SVAMP.read_text().splitlines())
    return re.findall(r"\w+|[^\w\s]", text)


def make_tokenizer(folder: Path) -> Any:
    """A word-level tokenizer over svamp-mini's words (plus specials): one token per word."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2}
    for word in [*words(), "###", "Instruction", "Input", "Response", "(wrong)", "wrong"]:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>",
                                        pad_token="<pad>", eos_token="</s>")
    tokenizer.save_pretrained(folder)
    return tokenizer


def make_model(folder: Path, shape: dict[str, Any], device: str) -> dict[str, Any]:
    """A random-init model of ``shape`` saved in bf16 (as released checkpoints are)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(**{k: v for k, v in shape.items() if k != "architectures"},
                         architectures=shape["architectures"], bos_token_id=2, eos_token_id=2,
                         pad_token_id=1)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return config.to_dict()


def make_dataset(folder: Path, samples: int, length: int) -> int:
    """``samples`` samples of the build stage's format, each a rationale and a feedback
    example of about ``length`` tokens; returns the training set's token count."""
    from datasets import Dataset

    pool = [w for w in words() if w != "###"]
    rows, tokens = [], 0
    for i in range(samples):
        start = (i * 37) % len(pool)
        body = [pool[(start + j) % len(pool)] for j in range(length)]
        prompt_words = int(length * 0.6) - 8
        prompt = ("### Instruction : Answer the question . ### Input : "
                  + " ".join(body[:prompt_words]) + " ### Response : ")
        completion = " ".join(body[prompt_words:length - 12])
        rows.append({"sample": i, "kind": "rationale", "teacher": "t", "prompt": prompt,
                     "completion": completion})
        rows.append({"sample": i, "kind": "feedback", "teacher": "t", "prompt": prompt + "wrong",
                     "completion": completion})
    Dataset.from_list(rows).save_to_disk(str(folder))
    for row in rows:  # one token a word (plus the end of sequence)
        tokens += len((row["prompt"] + " " + row["completion"]).split()) + 1
    return tokens


# -- one training ------------------------------------------------------------------------------

SPEC = """
fairspec: 1
name: gpu-bench
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini}}
  fields: {{question: question_concat, answer: Answer}}
student:
  model: {model}
  hardware: {{device: {device}, gpus: {gpus}, dtype: {dtype}, strategy: {strategy}}}
teachers:
  - {{name: a, provider: openai, model: m, base_url: "http://127.0.0.1:9/v1", api_key_env: NO_KEY}}
review: {{enabled: false}}
training: {{epochs: 1, batch_size: {batch}, gradient_accumulation_steps: 1, learning_rate: 1.0e-5,
           max_seq_length: {length}, warmup_ratio: 0.0, optimizer: adamw_torch,
           precision: {precision}}}
"""


def plan_for(model: Path, device: str, gpus: int, batch: int, length: int, precision: str,
             work: Path) -> tuple[Any, Any, str]:
    """The spec fairspec would plan for this run, its environment and the dtype word."""
    from fairspec.dsl import load_spec_text
    from fairspec.plan.environment import Environment

    dtype = "bf16"  # on the CPU too: the same autocast path, on CPU kernels
    strategy = "fsdp" if gpus > 1 else "none"
    text = SPEC.format(model=model, device=device, gpus=gpus, dtype=dtype, strategy=strategy,
                       batch=batch, length=length, precision=precision)
    loaded = load_spec_text(text, base_dir=work)
    return loaded.spec, Environment(cuda_devices=gpus if device == "cuda" else 0), dtype


def estimate(spec: Any, env: Any, model: Path, available: int) -> dict[str, Any]:
    """The memory plan's training estimate per GPU for these settings."""
    from fairspec.plan.memory import ModelShape, training_memory, training_setup

    config = json.loads((model / "config.json").read_text())
    shape = ModelShape.from_config(config, "random-init", str(model))
    found = training_memory(shape, training_setup(spec, env), available)
    return {"total_gib": round(found.total / 2**30, 2), "what": found.what,
            "parts": {p.name: round(p.bytes / 2**30, 2) for p in found.parts},
            "parameters": shape.parameters}


def train_once(*, model: Path, dataset: Path, tokens: int, work: Path, device: str, gpus: int,
               batch: int, length: int, precision: str, timeout: float) -> dict[str, Any]:
    from fairspec.plan.hardware import TrainingLayout, accelerate_config

    spec, env, dtype = plan_for(model, device, gpus, batch, length, precision, work)
    run_dir = work / f"train-{precision}"
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "work").mkdir(parents=True)
    args = {"model_path": str(model), "dataset": str(dataset), "output_dir": str(run_dir),
            "work_dir": str(run_dir / "work"), "alpha": 0.5, "epochs": 1, "batch_size": batch,
            "learning_rate": 1e-5, "warmup_ratio": 0.0, "max_seq_length": length,
            "optimizer": "adamw_torch", "gradient_accumulation_steps": 1, "max_grad_norm": 1.0,
            "weight_decay": 0.0, "lora": None, "gradient_checkpointing": False,
            "chat_template": False, "seed": 1, "dtype": dtype, "device": device,
            "precision": precision, "report_to": [], "run_name": "gpu-bench", "tracker_env": {}}
    args_file = run_dir / "train_args.json"
    args_file.write_text(json.dumps(args, indent=2))
    layout = TrainingLayout.of(spec, env)
    config = accelerate_config(spec, env)
    config_file = None
    if config is not None:
        config_file = run_dir / "accelerate_config.yaml"
        config_file.write_text(json.dumps(config, indent=2))
    command = layout.command(str(args_file), config_file=str(config_file) if config_file else None)
    script = command.index("fairspec.training.launch") - 1  # "-m fairspec.training.launch ARGS"
    if layout.launcher == "inline":
        command = [sys.executable, __file__, "--worker", str(args_file)]
    else:
        command = [*command[:script], __file__, "--worker", str(args_file)]
    print(f"-- {precision}: {' '.join(command)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    (work / f"launch-{precision}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise SystemExit(f"training ({precision}) failed with status {done.returncode}:\n{tail}")
    meter = json.loads((run_dir / "work" / "bench-rank0.json").read_text())
    stats = json.loads((run_dir / "work" / "bench-stats.json").read_text())
    steps = meter["step_ends"]
    timed = steps[-1] - steps[0] if len(steps) > 1 else None
    tokens_per_step = tokens / max(1, stats["steps"])
    changed = weights_changed(model, run_dir / "model", device)
    available = (__import__("torch").cuda.get_device_properties(0).total_memory
                 if device == "cuda" else 0)
    plan = estimate(spec, env, model, available)
    return {
        "precision": precision, "dtype": dtype, "launcher": layout.launcher,
        "world_size": layout.world_size, "strategy": spec.student.hardware.strategy,
        "steps": stats["steps"], "packed": stats.get("packed"), "attention": stats.get("attention"),
        "first_loss": stats["first_loss"], "last_loss": stats["last_loss"],
        "tokens": tokens, "seconds_wall": round(wall, 1),
        "tokens_per_s": round(tokens_per_step * (len(steps) - 1) / timed, 1) if timed else None,
        "tokens_per_s_per_gpu": (round(tokens_per_step * (len(steps) - 1) / timed
                                       / layout.world_size, 1) if timed else None),
        "peak_allocated_gib": meter["peak_allocated_gib"],
        "peak_reserved_gib": meter["peak_reserved_gib"],
        "plan_estimate_gib": plan["total_gib"],
        "plan_without_cuda_overhead_gib": round(plan["total_gib"] - 1.5, 2)
        if device == "cuda" else plan["total_gib"],
        "plan": plan,
        **changed,
    }


def weights_changed(initial: Path, final: Path, device: str) -> dict[str, float]:
    """The share of weights that differ after training, in fp32 and in bf16 terms."""
    import torch
    from safetensors import safe_open

    def tensors(folder: Path) -> dict[str, Path]:
        out = {}
        for file in sorted(folder.glob("*.safetensors")):
            with safe_open(str(file), "pt") as handle:
                out.update({key: file for key in handle.keys()})  # noqa: SIM118
        return out

    before, after = tensors(initial), tensors(final)
    total = changed = changed_bf16 = 0
    for key, file in before.items():
        if key not in after:
            continue
        where = "cuda:0" if device == "cuda" else "cpu"
        with safe_open(str(file), "pt", device=where) as a, \
                safe_open(str(after[key]), "pt", device=where) as b:
            old, new = a.get_tensor(key).float(), b.get_tensor(key).float()
        total += old.numel()
        changed += int((new != old).sum())
        changed_bf16 += int((new.to(torch.bfloat16) != old.to(torch.bfloat16)).sum())
    return {"weights_compared": total, "changed_share": round(changed / max(1, total), 4),
            "changed_share_bf16": round(changed_bf16 / max(1, total), 4)}


# -- the worker: fairspec's train(), watched ---------------------------------------------------


def worker(args_file: str) -> int:
    """One training process: ``fairspec.training.launch.train`` as ``python -m
    fairspec.training.launch`` runs it, with a callback that times the steps and reads the
    peak memory, and without the epoch-end checkpoint (12 B a parameter of disk, no result)."""
    import torch
    from transformers import TrainerCallback

    from fairspec.training.launch import is_global_rank_zero, train

    args = json.loads(Path(args_file).read_text())
    work = Path(args["work_dir"])

    class Meter(TrainerCallback):
        def __init__(self) -> None:
            self.step_ends: list[float] = []
            self.peak: tuple[float, float] | None = None  # GiB; none on a CPU

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.step_ends.append(time.perf_counter())

        def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            control.should_save = False
            return control

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if torch.cuda.is_available():
                self.peak = (torch.cuda.max_memory_allocated() / 2**30,
                             torch.cuda.max_memory_reserved() / 2**30)

    meter = Meter()
    stats = train(args, callbacks=[meter])
    rank = int(os.environ.get("RANK", "0"))
    (work / f"bench-rank{rank}.json").write_text(json.dumps({
        "step_ends": meter.step_ends,
        "peak_allocated_gib": round(meter.peak[0], 2) if meter.peak else None,
        "peak_reserved_gib": round(meter.peak[1], 2) if meter.peak else None}))
    if is_global_rank_zero():
        (work / "bench-stats.json").write_text(json.dumps(stats, default=str))
    return 0


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="a tiny model on the CPU, a few steps: proves the script runs")
    parser.add_argument("--precisions", default="mixed",
                        help="comma-separated: mixed (fp32 master weights), pure (bf16 weights)")
    parser.add_argument("--samples", type=int, help="training samples (2 examples each)")
    parser.add_argument("--batch-size", type=int, help="per device")
    parser.add_argument("--max-seq-length", type=int)
    parser.add_argument("--work", default=os.environ.get("BENCH_WORK", "/tmp/fairspec-gpu-bench"))
    parser.add_argument("--timeout", type=float, default=240.0, help="per training, seconds")
    options = parser.parse_args()
    if options.worker:
        return worker(options.worker)

    missing = check_imports()
    if missing:
        print("cannot run fairspec's train path here; these do not import:\n  "
              + "\n  ".join(missing), file=sys.stderr)
        return 3
    import torch

    smoke = options.cpu_smoke or not torch.cuda.is_available()
    device = "cpu" if smoke else "cuda"
    gpus = 1 if smoke else torch.cuda.device_count()
    shape = TINY if smoke else QWEN25_15B
    samples = options.samples or (4 if smoke else 160)
    batch = options.batch_size or (2 if smoke else 4)  # 4 x 1024: about 40 GiB by the plan
    length = options.max_seq_length or (64 if smoke else 1024)
    if smoke and not options.cpu_smoke:
        print("no CUDA device: running the CPU smoke mode", flush=True)
    work = Path(options.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    model = work / "model"
    tokenizer = make_tokenizer(model)
    shape = {**shape, "vocab_size": max(shape["vocab_size"], len(tokenizer))}
    make_model(model, shape, device)
    tokens = make_dataset(work / "dataset", samples, length)
    prepared = time.perf_counter() - started
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "gpus": gpus, "torch": torch.__version__,
        "transformers": importlib.import_module("transformers").__version__,
        "shape": {k: shape[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                        "num_key_value_heads", "intermediate_size", "vocab_size")},
        "samples": samples, "examples": 2 * samples, "batch_size": batch, "max_seq_length": length,
        "learning_rate": 1e-5, "prepare_seconds": round(prepared, 1), "runs": []}
    out = Path(os.environ["OUT"]) / "gpu_train.json" if os.environ.get("OUT") else None
    print(f"prepared a random-init {shape['num_hidden_layers']}-layer Qwen2 ({device}, "
          f"{gpus} GPU(s)) and {2 * samples} examples of ~{length} tokens in {prepared:.0f} s",
          flush=True)
    for precision in options.precisions.split(","):
        run = train_once(model=model, dataset=work / "dataset", tokens=tokens, work=work,
                         device=device, gpus=gpus, batch=batch, length=length,
                         precision=precision, timeout=options.timeout)
        result["runs"].append(run)
        print(f"{precision}: {run['steps']} steps ({run['launcher']}, {run['world_size']} "
              f"process(es), {run['strategy']}), loss {run['first_loss']} -> {run['last_loss']}; "
              f"{run['tokens_per_s']} tokens/s; peak allocated {run['peak_allocated_gib']} GiB, "
              f"reserved {run['peak_reserved_gib']} GiB; plan {run['plan_estimate_gib']} GiB "
              f"({run['plan_without_cuda_overhead_gib']} GiB without its CUDA overhead); "
              f"weights changed {run['changed_share']:.1%} (bf16 terms "
              f"{run['changed_share_bf16']:.1%})", flush=True)
        if out is not None:  # after each run: a timeout later keeps what was measured
            out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
