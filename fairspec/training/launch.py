"""Runs one training job from its arguments file: ``python -m fairspec.training.launch ARGS.json``.

The train stage writes ``train_args.json`` and runs this module: in its own process on
one device, else through ``torch.distributed.run`` (CPU processes over gloo) or
``accelerate launch`` (GPUs, with FSDP or DeepSpeed), once per node; the plan shows each
node's command. Global rank 0 alone writes the results and the progress file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fairspec.dtypes import torch_dtype

log = logging.getLogger(__name__)

#: What rank 0 of a training subprocess leaves in the stage's work folder.
RESULT_FILE = "train_result.json"
PROGRESS_FILE = "progress.json"


def last_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` folder with a trainer state, to resume from."""
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def step_reporter(on_step: Callable[[int], Callable[..., None] | None]) -> Any:
    """A TrainerCallback that reports each optimizer step, with the last logged loss, to what
    ``on_step(total)`` returns: ``update(done, total, note)``."""
    from transformers import TrainerCallback

    class StepReporter(TrainerCallback):
        update: Callable[..., None] | None = None
        note = ""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.update = on_step(state.max_steps)
            self.on_step_end(args, state, control)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.update is not None:
                self.update(state.global_step, state.max_steps, self.note)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                kinds = [f"{short} {float(logs[f'{kind}_loss']):.3f}"
                         for kind, short in (("feedback", "fb"), ("rationale", "rt"))
                         if f"{kind}_loss" in logs]
                self.note = f"loss {float(logs['loss']):.3f}" + (f" ({', '.join(kinds)})" if kinds else "")
                self.on_step_end(args, state, control)

    return StepReporter()


def encode_dataset(dataset: Any, tokenizer: Any, *, max_seq_length: int, chat_template: bool) -> Any:
    """Tokenised examples (completion-only labels) with ``kind`` and ``sample`` kept."""
    from fairspec.training.tokenize import encode_example

    def encode(example: dict[str, Any]) -> dict[str, Any]:
        return encode_example(tokenizer, example["prompt"], example["completion"],
                              max_seq_length=max_seq_length, use_chat_template=chat_template)

    # in memory: a cache file would be written into the build stage's dataset folder
    return dataset.map(encode, remove_columns=["prompt", "completion", "teacher"], keep_in_memory=True)


def train(args: dict[str, Any], on_step: Callable[[int], Callable[..., None] | None] | None = None,
          callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Fine-tune, save the final model and tokenizer to ``args['output_dir']/model``.

    ``on_step(total_steps)`` may return an ``update(done, total, note)`` called after each
    optimizer step and log (``note``: the last losses) (the CLI's progress display);
    ``callbacks`` are more ``TrainerCallback`` objects (the tests watch the weights with one).
    A bf16 or fp16 ``dtype`` trains fp32 weights under autocast unless ``precision`` is
    ``pure`` (:func:`weights_dtype`).
    """
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from fairspec.training.packing import attention_of, packed_collator, packing_is_exact
    from fairspec.training.tokenize import CompletionCollator
    from fairspec.training.trainer import JointTrainer

    started = time.time()
    out = Path(args["output_dir"])
    checkpoints = Path(args.get("work_dir") or out) / "checkpoints"
    tokenizer = AutoTokenizer.from_pretrained(args["model_path"])
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype, precision = args["dtype"], args.get("precision", "mixed")
    # LoRA trains adapters only: peft keeps them in fp32 (its autocast_adapter_dtype), so
    # the frozen base stays in the half dtype; a full fine-tune keeps fp32 master weights
    model = AutoModelForCausalLM.from_pretrained(
        args["model_path"], dtype=torch_dtype(dtype if args.get("lora") else weights_dtype(args)),
        **attention_argument(args))
    if args.get("lora"):
        from peft import LoraConfig, get_peft_model

        lora = args["lora"]
        model = get_peft_model(model, LoraConfig(
            r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"], task_type="CAUSAL_LM"))
    dataset = encode_dataset(load_from_disk(args["dataset"]), tokenizer,
                             max_seq_length=args["max_seq_length"], chat_template=args["chat_template"])
    truncated = int(sum(dataset["truncated"]))
    dataset = dataset.remove_columns(["truncated"])
    training_args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=args["epochs"],
        per_device_train_batch_size=args["batch_size"],
        gradient_accumulation_steps=args["gradient_accumulation_steps"],
        learning_rate=args["learning_rate"],
        warmup_steps=args["warmup_ratio"],  # a float in [0, 1) is a ratio in transformers 5
        max_grad_norm=args["max_grad_norm"],
        weight_decay=args["weight_decay"],
        optim=args["optimizer"],
        seed=args["seed"],
        # autocast (and for fp16 the gradient scaler) over fp32 weights: mixed precision
        bf16=dtype == "bf16" and precision == "mixed",
        fp16=dtype == "fp16" and precision == "mixed",
        use_cpu=args["device"] == "cpu",
        activation_checkpointing=args["gradient_checkpointing"],
        logging_steps=args.get("logging_steps", 1),
        save_strategy="steps" if args.get("save_steps") else "epoch",
        save_steps=args.get("save_steps") or 500,  # 500: transformers' default, unused per epoch
        # the newest complete checkpoint is all a resume needs (an older one is deleted only
        # after the newer one's trainer_state.json is written); `all` keeps every one
        save_total_limit=None if args.get("keep_checkpoints") == "all" else 1,
        remove_unused_columns=False,
        report_to=list(args.get("report_to") or []),
        run_name=args.get("run_name"),
        disable_tqdm=True,
    )
    with tracker_environment(args.get("tracker_env") or {}):  # read as callbacks are made
        # flash attention packs a batch into one row, the others into rows with a block mask
        collator = packed_collator(model, tokenizer.pad_token_id)
        trainer = JointTrainer(
            model=model, args=training_args, train_dataset=dataset, data_collator=collator,
            alpha=args["alpha"], sample_groups=dataset["sample"],
        )
        # checked where the Trainer put the model (its device: flash attention runs on a GPU
        # only), under the autocast training computes in
        autocast = torch_dtype(dtype) if training_args.bf16 or training_args.fp16 else None
        pack = args.get("packing", True) and packing_is_exact(trainer.model, len(tokenizer), collator,
                                                              autocast=autocast)
        if not pack:
            trainer.data_collator = CompletionCollator(tokenizer.pad_token_id)
        # the Trainer prints each log dict when its tqdm bar is off: the loss goes to the
        # progress line (on_step) and to trainer_state.json / the report instead
        trainer.remove_callback(PrinterCallback)
        if on_step is not None:
            trainer.add_callback(step_reporter(on_step))
        for callback in callbacks:
            trainer.add_callback(callback)
        result = trainer.train(resume_from_checkpoint=last_checkpoint(checkpoints))
    save_final_model(trainer, tokenizer, out / "model", args)
    if trainer.is_world_process_zero():
        trainer.state.save_to_json(str(out / "trainer_state.json"))
    losses = [e for e in trainer.state.log_history if "loss" in e]
    return {
        "examples": len(dataset),
        "truncated": truncated,
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "first_loss": losses[0]["loss"] if losses else None,
        "last_loss": losses[-1]["loss"] if losses else None,
        "log": losses,
        "packed": pack,
        "attention": attention_of(model),
        "world_size": trainer.args.world_size,
        "seconds": round(time.time() - started, 2),
    }


@contextmanager
def tracker_environment(env: dict[str, str]) -> Iterator[None]:
    """The trackers' variables (their TensorBoard folder, MLflow run) set while training:
    the Trainer's integrations read them from the environment, as they read the user's own
    (``MLFLOW_TRACKING_URI``, ``WANDB_PROJECT``, ...), which stay as they are."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def attention_argument(args: dict[str, Any]) -> dict[str, str]:
    """``from_pretrained``'s ``attn_implementation`` for ``args['attn_implementation']``: none
    for ``auto`` (what transformers picks: sdpa where the model has it, else eager)."""
    name = args.get("attn_implementation", "auto")
    return {} if name == "auto" else {"attn_implementation": name}


def weights_dtype(args: dict[str, Any]) -> str:
    """The dtype the trained weights are kept in: fp32 under mixed precision (the master
    copy; autocast computes in ``args['dtype']``), the half dtype itself with ``precision:
    pure`` (updates below its resolution round away)."""
    return args["dtype"] if args.get("precision", "mixed") == "pure" else "fp32"


def save_final_model(trainer: Any, tokenizer: Any, folder: Path, args: dict[str, Any]) -> None:
    """The tuned model as one Hugging Face folder, written once (by global rank 0), in the
    dtype it was trained in (:func:`weights_dtype`): rounding fp32 master weights to bf16
    would undo most of what a run at lr 1e-5 learned, and a later round goes on from them.

    Through ``Trainer.save_model``, which gathers the weights as each strategy needs: the
    DDP module, FSDP's full state dict (checkpoints keep sharded state; the final save asks
    for the full one), DeepSpeed ZeRO-3's consolidated 16-bit weights (the one case saved in
    the half dtype). A LoRA run saves its adapter the same way, then rank 0 merges it into
    the base weights, loaded in that dtype.
    """
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if trainer.is_fsdp_enabled and plugin is not None:
        plugin.set_state_dict_type("FULL_STATE_DICT")
    target = Path(args.get("work_dir") or folder.parent) / "adapter" if args.get("lora") else folder
    trainer.save_model(str(target))
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    if args.get("lora"):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(args["model_path"],
                                                    dtype=torch_dtype(weights_dtype(args)))
        PeftModel.from_pretrained(base, str(target)).merge_and_unload().save_pretrained(folder)
    (folder / "training_args.bin").unlink(missing_ok=True)  # the Trainer's pickle: not a model file
    tokenizer.save_pretrained(folder)


def progress_writer(path: Path) -> Callable[[int], Callable[..., None]]:
    """``on_step`` for a training subprocess: each update replaces ``path`` (JSON with
    done, total, note), which the train stage polls for its progress line."""
    def on_step(total: int) -> Callable[..., None]:
        def update(done: int, total: int, note: str = "") -> None:
            partial = path.with_name(path.name + ".tmp")
            partial.write_text(json.dumps({"done": done, "total": total, "note": note}),
                               encoding="utf-8")
            os.replace(partial, path)
        return update
    return on_step


def is_global_rank_zero() -> bool:
    """Rank 0 of all training processes (``RANK`` is set by torch.distributed.run)."""
    return int(os.environ.get("RANK", "0")) == 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m fairspec.training.launch TRAIN_ARGS.json")
    path = Path(argv[0])
    args = json.loads(path.read_text(encoding="utf-8"))
    work = Path(args.get("work_dir") or path.parent)
    rank_zero = is_global_rank_zero()
    stats = train(args, on_step=progress_writer(work / PROGRESS_FILE) if rank_zero else None)
    if rank_zero:  # one writer of the results
        result = work / RESULT_FILE
        partial = result.with_name(result.name + ".tmp")
        partial.write_text(json.dumps(stats, indent=2), encoding="utf-8")
        os.replace(partial, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
