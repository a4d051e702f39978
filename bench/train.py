"""Benchmarks a FAIR training step: fairspec's one mixed forward vs the authors' two (run by hand).

    python bench/train.py                                  # SmolLM2-135M, fp32, 10 steps of 8
    OMP_NUM_THREADS=2 python bench/train.py --steps 3 --warmup 1 --rounds 2   # a 2-core CPU
    python bench/train.py --data authors-record            # real teacher rationales and feedback
    python bench/train.py --device cuda --dtype bf16 --random-init qwen2.5-1.5b --batch-size 16

On 2 CPU cores one step of SmolLM2-135M at batch 8 (about 2,000 tokens) takes 20-60 s, so
there use few steps; the defaults are sized for a GPU.

The joint loss of eq. 7, L = alpha * L_feedback + (1 - alpha) * L_rationale, computed three ways
on the same examples, from the same weights, with the same optimizer (AdamW, lr 1e-5):

  packed   fairspec's default: as ``joint``, but ``CompletionCollator(pack=True,
           block_mask=True)`` packs the examples into rows no longer than the longest one
           (first-fit decreasing), each example with its own restarting positions and a
           block-diagonal causal mask; so short rationale examples stop being padded to the
           feedback examples' length.
  joint    fairspec without packing: the step's B examples (B/2 samples, each with its rationale and feedback
           example, in the order ``SampleGroupSampler`` yields them) are padded into one batch
           by ``CompletionCollator``; one forward; ``joint_loss_parts``; backward; step. This is
           what ``JointTrainer`` computes per optimizer step (no gradient accumulation), without
           the HF Trainer's own bookkeeping.
  authors  the paper authors' released code: the B/2 rationale examples padded together ->
           forward -> loss, the B/2 feedback examples padded together -> forward -> loss (the
           model's own token-mean loss), alpha * l_fb + (1 - alpha) * l_rt, one backward, step.
           Unlike their code, padding is labelled -100 here too, so both compute the same loss.

Each approach runs in its own child process (``--worker``), one after the other, so peak RSS is
its own and neither shares allocator caches with the other; ``--rounds R`` runs each R times in
ABBA order and sums the timed steps, which evens out a load that drifts (other processes).
Warm-up steps run first and are not timed; the first warm-up step's loss of the two must agree
within 1e-4 (fp32; 5e-2 in bf16), since both are per-kind token means over the same completion
tokens; the run fails otherwise.

Data (--data): ``svamp-mini`` (default) builds, from the 48 SVAMP rows shipped in
``fairspec/resources/data/svamp-mini/train.jsonl``, one rationale example (the Appendix C math
template, completion written from Equation/Answer) and one feedback example (the feedback
template with a made-up wrong student answer, completion a short explanation) per row.
``authors-record`` uses the authors' released SVAMP records (../shared/data/fair-authors-record):
the student's real wrong answers and GPT's real rationales and feedback, so lengths are those
of a real FAIR run.

Printed per approach: timed steps, wall seconds, process CPU seconds, real tokens (the
examples' own) and padded tokens (rows x T summed over forwards) per second, peak RSS (CPU) or
peak CUDA memory; then the joint/authors ratios and the loss check. Torch uses as many threads
as it is given: set OMP_NUM_THREADS (2 on the 2-core machine the first numbers came from).
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
AUTHORS_RECORD = REPO.parent / "shared" / "data" / "fair-authors-record"
APPROACHES = ("packed", "joint", "authors")
LOSS_TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2}

# Random-init shapes for GPU runs (weights are random; only the speed means anything).
RANDOM_INIT = {
    "qwen2.5-1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2},
    "qwen2.5-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                     "num_attention_heads": 14, "num_key_value_heads": 2},
    "qwen-tiny": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4,
                  "num_attention_heads": 4, "num_key_value_heads": 2},
}

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}
_SWAP = {"+": "-", "-": "+", "*": "/", "/": "*"}


# --- data -------------------------------------------------------------------------------------

def _evaluate(equation: str) -> float:
    """The value of an SVAMP equation such as ``( ( 7.0 + 3.0 ) - 2.0 )`` (+ - * / only)."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"unsupported equation {equation!r}")

    return value(ast.parse(equation, mode="eval").body)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"


def _pretty(equation: str) -> str:
    """``( 290.0 / 2.0 )`` -> ``290 / 2``."""
    words = [_number(float(w)) if w.replace(".", "", 1).isdigit() else w for w in equation.split()]
    text = " ".join(words).replace("( ", "(").replace(" )", ")")
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text


def _wrong_equation(equation: str, answer: float) -> tuple[str, float]:
    """The equation with one operator swapped (a typical student slip) and its value."""
    words = equation.split()
    for i, word in enumerate(words):
        if word in _SWAP:
            wrong = " ".join(words[:i] + [_SWAP[word]] + words[i + 1:])
            try:
                result = _evaluate(wrong)
            except ZeroDivisionError:
                continue
            if abs(result - answer) > 1e-9:
                return wrong, result
    return equation, answer + 1.0  # e.g. "x * 1": the student adds wrongly instead


def _svamp_mini_examples() -> list[tuple[str, str, str, str]]:
    """(rationale prompt, rationale, feedback prompt, feedback) per svamp-mini row."""
    from fairspec.resources import resource_root
    from fairspec.templates import make_environment

    env = make_environment()
    root = resource_root()
    rationale_t = env.from_string((root / "templates" / "math" / "rationale.j2").read_text())
    feedback_t = env.from_string((root / "templates" / "feedback.j2").read_text())
    lines = (root / "data" / "svamp-mini" / "train.jsonl").read_text().splitlines()
    examples = []
    for row in map(json.loads, filter(None, lines)):
        question, equation = row["question_concat"].strip(), row["Equation"]
        answer = _number(float(row["Answer"]))
        wrong_eq, wrong = _wrong_equation(equation, float(row["Answer"]))
        student = (f"We compute {_pretty(wrong_eq)} = {_number(wrong)}. "
                   f"The answer is {_number(wrong)}.")
        rationale = (f"We compute {_pretty(equation)} = {answer}. The answer is {answer}.")
        feedback = (f"The student's answer is incorrect. The student computed {_pretty(wrong_eq)}, "
                    f"but the question asks for {_pretty(equation)}. The correct calculation is "
                    f"{_pretty(equation)} = {answer}, so the answer is {answer}, not "
                    f"{_number(wrong)}.")
        examples.append((rationale_t.render(question=question), rationale,
                         feedback_t.render(question=question, student_answer=student), feedback))
    return examples


def _authors_record_examples(folder: Path) -> list[tuple[str, str, str, str]]:
    """The same tuples from the authors' SVAMP records: GPT's rationale and feedback."""
    from fairspec.resources import resource_root
    from fairspec.templates import make_environment

    env = make_environment()
    root = resource_root()
    rationale_t = env.from_string((root / "templates" / "math" / "rationale.j2").read_text())
    feedback_t = env.from_string((root / "templates" / "feedback.j2").read_text())
    rationales = json.loads((folder / "Llama-2-7b-chat-hf_svamp_rationale_round0.json").read_text())
    feedbacks = {r["id"]: r for r in json.loads(
        (folder / "Llama-2-7b-chat-hf_svamp_feedback_round0.json").read_text())}
    examples = []
    for row in rationales:
        fb = feedbacks.get(row["id"])
        if fb is None or not row.get("gpt_rationale") or not fb.get("gpt_feedback"):
            continue
        question = row["question"].strip()
        examples.append((rationale_t.render(question=question), row["gpt_rationale"][0].strip(),
                         feedback_t.render(question=question,
                                           student_answer=row["student_wrong_pred"].strip()),
                         fb["gpt_feedback"].strip()))
    return examples


def load_groups(args: argparse.Namespace, tokenizer: Any) -> list[list[dict[str, Any]]]:
    """One group per sample: its encoded rationale and feedback examples, with ``kind``."""
    from fairspec.training.tokenize import encode_example

    if args.data == "svamp-mini":
        texts = _svamp_mini_examples()
    else:
        if not args.authors_record.is_dir():
            raise SystemExit(f"no authors' record folder at {args.authors_record}")
        texts = _authors_record_examples(args.authors_record)

    def encode(prompt: str, completion: str, kind: str) -> dict[str, Any]:
        row = encode_example(tokenizer, prompt, completion, max_seq_length=args.max_seq_length,
                             use_chat_template=args.chat_template)
        return {**row, "kind": kind}

    return [[encode(rp, rc, "rationale"), encode(fp, fc, "feedback")]
            for rp, rc, fp, fc in texts]


def step_batches(groups: list[list[dict[str, Any]]], batch_size: int,
                 count: int, seed: int) -> list[list[dict[str, Any]]]:
    """``count`` batches of ``batch_size`` rows in ``SampleGroupSampler`` order (epochs repeat)."""
    from fairspec.training.trainer import SampleGroupSampler

    rows = [example for group in groups for example in group]
    sampler = SampleGroupSampler([i for i, group in enumerate(groups) for _ in group], seed)
    stream: list[int] = []
    while len(stream) < batch_size * count:
        stream.extend(sampler)
    return [[rows[i] for i in stream[s * batch_size:(s + 1) * batch_size]] for s in range(count)]


# --- model ------------------------------------------------------------------------------------

def load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """The tokenizer and the model, in train mode, on the device, in the dtype."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from fairspec.weights import resolve_model

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.tokenizer or args.model))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(args.seed)
    if args.random_init:
        config = Qwen2Config(
            **RANDOM_INIT[args.random_init], vocab_size=151936, max_position_embeddings=32768,
            rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu",
            rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"},
            attention_dropout=0.0, use_cache=False)
        if tokenizer.vocab_size > config.vocab_size:
            raise SystemExit(f"tokenizer vocabulary {tokenizer.vocab_size} > {config.vocab_size}")
        with torch.device(args.device):
            model = AutoModelForCausalLM.from_config(config)
        model = model.to(dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=dtype)
        model = model.to(args.device)
    model.config.use_cache = False
    model.train()
    return tokenizer, model


# --- the two steps ----------------------------------------------------------------------------

def _to(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _real(features: list[dict[str, Any]]) -> int:
    return sum(len(f["input_ids"]) for f in features)


def packed_step(model: Any, collator: Any, features: list[dict[str, Any]], alpha: float,
                device: str) -> tuple[Any, int, int]:
    """fairspec's default: packed rows, one forward, eq. 7 with per-token kinds."""
    from fairspec.training.loss import joint_loss_parts
    from fairspec.training.tokenize import additive_mask

    batch = _to(collator(features, pack=True), device)
    mask = additive_mask(batch["attention_mask"], next(model.parameters()).dtype)
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                   attention_mask=mask, use_cache=False).logits
    loss = joint_loss_parts(logits, batch["labels"], batch["is_feedback"], alpha).loss
    return loss, _real(features), batch["input_ids"].numel()


def joint_step(model: Any, collator: Any, features: list[dict[str, Any]], alpha: float,
               device: str) -> tuple[Any, int, int]:
    """fairspec without packing: one mixed padded batch, one forward, eq. 7."""
    from fairspec.training.loss import joint_loss_parts

    batch = _to(collator(features), device)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   use_cache=False).logits
    loss = joint_loss_parts(logits, batch["labels"], batch["is_feedback"], alpha).loss
    return loss, _real(features), batch["input_ids"].numel()


def authors_step(model: Any, collator: Any, features: list[dict[str, Any]], alpha: float,
                 device: str) -> tuple[Any, int, int]:
    """The authors: rationale and feedback examples padded apart, one forward and loss each."""
    padded, losses = 0, {}
    for kind in ("rationale", "feedback"):
        batch = _to(collator([f for f in features if f["kind"] == kind]), device)
        batch.pop("is_feedback")
        losses[kind] = model(**batch, use_cache=False).loss  # token mean over labels != -100
        padded += batch["input_ids"].numel()
    return alpha * losses["feedback"] + (1.0 - alpha) * losses["rationale"], _real(features), padded


STEPS = {"packed": packed_step, "joint": joint_step, "authors": authors_step}


def worker(args: argparse.Namespace) -> None:
    """Train one approach for warm-up + N steps; write timings, tokens and losses as JSON."""
    import torch

    from fairspec.training.tokenize import CompletionCollator

    cuda = args.device.startswith("cuda")
    tokenizer, model = load_model(args)
    groups = load_groups(args, tokenizer)
    batches = step_batches(groups, args.batch_size, args.warmup + args.steps, args.seed)
    padded_rows = CompletionCollator(tokenizer.pad_token_id)
    packed_rows = CompletionCollator(tokenizer.pad_token_id, pack=True, block_mask=True)

    def collator(features: list[dict[str, Any]], pack: bool = False) -> dict[str, Any]:
        return (packed_rows if pack else padded_rows)(features)

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    step = STEPS[args.worker]

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    losses, seconds, cpu_seconds, real, padded = [], [], [], [], []
    for features in batches:
        sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        loss, real_tokens, padded_tokens = step(model, collator, features, args.alpha, args.device)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())  # a sync on a GPU, as any loss logging is
        sync()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        losses.append(value)
        real.append(real_tokens)
        padded.append(padded_tokens)

    result = {
        "losses": losses, "seconds": seconds, "cpu_seconds": cpu_seconds,
        "real_tokens": real, "padded_tokens": padded,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "threads": torch.get_num_threads(), "examples": sum(len(g) for g in groups),
        "truncated": sum(int(e["truncated"]) for g in groups for e in g),
    }
    args.out.write_text(json.dumps(result))


# --- driver -----------------------------------------------------------------------------------

def _timed(runs: list[dict[str, Any]], warmup: int, key: str) -> float:
    """The sum of ``key`` over the timed steps (after warm-up) of all rounds."""
    return float(sum(sum(r[key][warmup:]) for r in runs))


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> int:
    """Print the table, the ratios and the loss check; 1 when the first-step losses differ."""
    w = args.warmup
    first = next(iter(results.values()))[0]
    model = f"random-init {args.random_init}" if args.random_init else args.model
    print(f"model {model}, data {args.data} ({first['examples']} examples, "
          f"{first['truncated']} truncated), device {args.device}, dtype {args.dtype}, "
          f"torch threads {first['threads']} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")
    print(f"batch {args.batch_size} ({args.batch_size // 2} rationale + {args.batch_size // 2} "
          f"feedback), {args.steps} timed steps after {w} warm-up, {args.rounds} round(s), "
          f"max_seq_length {args.max_seq_length}, alpha {args.alpha}, AdamW lr {args.lr}, "
          f"seed {args.seed}")
    memory = "cuda MiB" if args.device.startswith("cuda") else "RSS MiB"
    print(f"{'approach':8s} {'steps':>5s} {'wall s':>8s} {'s/step':>7s} {'cpu s':>8s} "
          f"{'real tok':>9s} {'padded tok':>10s} {'real tok/s':>10s} {'pad tok/s':>10s} "
          f"{'peak ' + memory:>14s}")
    rates = {}
    for name, runs in results.items():
        wall, cpu = _timed(runs, w, "seconds"), _timed(runs, w, "cpu_seconds")
        real, padded = _timed(runs, w, "real_tokens"), _timed(runs, w, "padded_tokens")
        steps = sum(len(r["seconds"][w:]) for r in runs)
        rates[name] = (wall, real / wall, padded / wall, padded)
        peaks = [r["peak_cuda_mib"] if r["peak_cuda_mib"] is not None else r["peak_rss_mib"]
                 for r in runs]
        print(f"{name:8s} {steps:5d} {wall:8.2f} {wall / steps:7.3f} {cpu:8.2f} {real:9.0f} "
              f"{padded:10.0f} {real / wall:10.1f} {padded / wall:10.1f} {max(peaks):14.0f}")
    if "authors" not in results or len(results) < 2:
        return 0
    authors = rates["authors"]
    for name in (n for n in results if n != "authors"):
        ours = rates[name]
        print(f"{name}/authors: real tokens/s {ours[1] / authors[1]:.3f}x, padded tokens/s "
              f"{ours[2] / authors[2]:.3f}x, wall {ours[0] / authors[0]:.3f}x, "
              f"padded tokens {ours[3] / authors[3]:.3f}x")
    tolerance = LOSS_TOLERANCE[args.dtype]
    al = results["authors"][0]["losses"]
    ok = True
    for name in (n for n in results if n != "authors"):
        jl = results[name][0]["losses"]
        diff = abs(jl[0] - al[0])
        drift = max(abs(a - b) for a, b in zip(jl, al, strict=True))
        ok = ok and diff <= tolerance
        print(f"first-step loss: {name} {jl[0]:.6f}, authors {al[0]:.6f}, |diff| {diff:.2e} "
              f"(tolerance {tolerance:g}) {'OK' if diff <= tolerance else 'MISMATCH'}; max |diff| "
              f"over all {len(jl)} steps {drift:.2e}")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step, even")
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", choices=sorted(LOSS_TOLERANCE), default="fp32")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", default="builtin:smollm2-135m-instruct", help="path or builtin:")
    model.add_argument("--random-init", choices=sorted(RANDOM_INIT),
                       help="a randomly initialised Qwen2 of this shape (for GPU runs)")
    parser.add_argument("--tokenizer", help="tokenizer path (default: the model's, or SmolLM2's "
                        "with --random-init; its ids fit Qwen's vocabulary)")
    parser.add_argument("--data", choices=["svamp-mini", "authors-record"], default="svamp-mini")
    parser.add_argument("--authors-record", type=Path, default=AUTHORS_RECORD)
    parser.add_argument("--chat-template", action="store_true",
                        help="render prompts with the tokenizer's chat template")
    parser.add_argument("--approaches", nargs="+", choices=APPROACHES, default=list(APPROACHES),
                        help="which to run, in this order")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs per approach, in ABBA order (evens out load drift)")
    parser.add_argument("--worker", choices=APPROACHES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_size < 2 or args.batch_size % 2:
        parser.error(f"--batch-size must be even and >= 2, got {args.batch_size}")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1 (the loss check uses the first step)")
    if args.random_init and args.tokenizer is None:
        args.tokenizer = "builtin:smollm2-135m-instruct"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in args.approaches}
    passed = argv if argv is not None else sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = args.approaches if round_ % 2 == 0 else args.approaches[::-1]
            for name in order:
                out = Path(tmp) / f"{name}-{round_}.json"
                command = [sys.executable, __file__, *passed, "--worker", name, "--out", str(out)]
                subprocess.run(command, check=True)
                results[name].append(json.loads(out.read_text()))
    return report(args, results)


if __name__ == "__main__":
    sys.exit(main())
