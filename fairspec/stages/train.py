"""The train stage (eq. 5-7): joint instruction tuning of the student on the built set.

One process trains in fairspec's own; several (``student.hardware.processes`` x
``nodes``) are started through ``torch.distributed.run`` or ``accelerate launch`` with
this environment's interpreter, their output going to ``work/launch.log``, their
progress coming back through ``work/progress.json``. On a node other than 0 the stage
only joins the training that node 0 started (:func:`join`).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any

from fairspec.artifacts import atomic_write_json, atomic_write_text, write_stats
from fairspec.cards import model_card
from fairspec.errors import TrainingFailed
from fairspec.plan.hardware import Rendezvous, TrainingLayout, format_command
from fairspec.plan.stage_settings import TrainSettings
from fairspec.progress import counter
from fairspec.stages.context import StageContext
from fairspec.stages.rounds import follows_round, student_after
from fairspec.stages.tracker import tracker_target
from fairspec.tracking import TrackerTarget, clear_trainer_events, trainer_environment
from fairspec.weights import resolve_model

log = logging.getLogger(__name__)

#: What the training process is given of the settings besides the hyperparameters: the
#: seed, where it runs, and (outside the fingerprint) how often it checkpoints, what it
#: keeps, the attention kernel, and precision (fingerprinted for half dtypes only).
RUN_KEYS = ("seed", "dtype", "device", "precision", "save_steps", "keep_checkpoints",
            "attn_implementation")
CHECKPOINTS = "checkpoints"
LAUNCH_LOG = "launch.log"
MODEL_CARD = "README.md"
#: How often the stage reads the training processes' progress file.
POLL_SECONDS = 0.5


def train_args(ctx: StageContext, settings: TrainSettings, target: TrackerTarget | None
               ) -> dict[str, Any]:
    """What the training process is given (``train_args.json``): settings and paths, and the
    trackers of ``target`` with the environment that points them at this run's tracker runs."""
    return {
        "report_to": list(target.report_to) if target else [],
        "run_name": target.run_name if target else ctx.run.name,
        "tracker_env": trainer_environment(target) if target else {},
        **settings.hyperparameters(),
        **{key: getattr(settings, key) for key in RUN_KEYS},
        # round k >= 2 with rounds.start_from: previous starts from round k-1's student
        "model_path": student_after(ctx) if follows_round(ctx)
        else resolve_model(settings.model, ctx.services.base_dir),
        "dataset": str(ctx.input("build", "dataset/")),
        "output_dir": str(ctx.folder),
        "work_dir": str(ctx.work_dir),
    }


def run(ctx: StageContext) -> dict[str, Any]:
    resumed = ctx.prepare()  # checkpoints (under work/) survive a crash
    settings = ctx.settings_as(TrainSettings)
    target = tracker_target(ctx, settings.tracking)
    if target is not None and not resumed:  # a training that starts afresh logs afresh
        clear_trainer_events(target.tensorboard_dir)
    args = train_args(ctx, settings, target)
    layout = settings.layout
    # what another node's launcher reads goes first: train_args.json, the file a joining
    # node waits for, is written last (join)
    write_launch_config(ctx, settings)
    atomic_write_json(ctx.output("train_args.json"), args)
    built = json.loads(ctx.input("build", "stats.json").read_text(encoding="utf-8"))
    if built["examples"] == 0:  # nothing was accepted: say so, keep the base student
        stats = {"examples": 0, "steps": 0, "truncated": 0, "resumed": resumed,
                 "skipped": "no training examples (no sample had an accepted rationale and a "
                            "feedback): the student is the one training would have started from "
                            "(train_args.json's model_path)"}
        write_stats(ctx.output("stats.json"), stats)
        ctx.finish({"examples": 0, "steps": 0, "truncated": 0})
        return stats
    if layout.launcher == "inline":
        from fairspec.training.launch import train

        stats = train(args, on_step=lambda total: counter(ctx.services.progress, ctx.label, total,
                                                          "steps"))
    else:
        stats = launch(ctx, layout, ctx.services.rendezvous or Rendezvous())
    stats["resumed"] = resumed
    write_model_card(ctx, settings, built, stats)
    write_stats(ctx.output("stats.json"), stats)
    ctx.finish({"examples": stats["examples"], "steps": stats["steps"],
                "truncated": stats["truncated"]})
    drop_checkpoints(ctx.work_dir, args["keep_checkpoints"])
    return stats


def drop_checkpoints(work: Path, keep: str) -> None:
    """With ``keep_checkpoints: none``, delete ``work/checkpoints/`` once the stage is done
    (its manifest written): a resume needs them only until then, and each holds the weights
    with their optimizer state (about 12 bytes a parameter for AdamW). ``last`` and ``all``
    keep what the Trainer kept (the newest, or every one)."""
    folder = work / CHECKPOINTS
    if keep == "none" and folder.is_dir():
        shutil.rmtree(folder)
        log.info("deleted the training checkpoints in %s (training.keep_checkpoints: none)",
                 folder)


#: The settings a model card lists under Training.
CARD_KEYS = ("alpha", "epochs", "batch_size", "gradient_accumulation_steps", "learning_rate",
             "warmup_ratio", "max_seq_length", "optimizer", "max_grad_norm", "weight_decay",
             "lora", "gradient_checkpointing", "chat_template", "dtype", "seed")


def write_model_card(ctx: StageContext, settings: TrainSettings, built: dict[str, Any],
                     stats: dict[str, Any]) -> None:
    """``model/README.md``: the tuned model's card (the evaluate stage adds its results)."""
    folder = ctx.folder / "model"
    if not folder.is_dir() or settings.card is None:
        return
    card = {**settings.card, "fingerprint": ctx.fingerprint}
    hyperparameters = {key: getattr(settings, key) for key in CARD_KEYS
                       if getattr(settings, key) is not None}
    atomic_write_text(folder / MODEL_CARD, model_card(card, hyperparameters=hyperparameters,
                                                      data=built, training=stats))


def write_launch_config(ctx: StageContext, settings: TrainSettings) -> None:
    """Node 0 writes ``accelerate_config.yaml`` (accelerate only), before ``train_args.json``."""
    if settings.layout.launcher == "accelerate":
        config = settings.accelerate_config
        atomic_write_text(ctx.output("accelerate_config.yaml"), json.dumps(config, indent=2))


def launch_inputs(ctx: StageContext, layout: TrainingLayout) -> list[Path]:
    """The files a node's launcher and training processes read that node 0 writes: the
    accelerate config (accelerate only) and ``train_args.json`` (the training set is the
    build stage's, finished before node 0 writes either)."""
    files = [ctx.output("accelerate_config.yaml")] if layout.launcher == "accelerate" else []
    return [*files, ctx.output("train_args.json")]


def launch_command(ctx: StageContext, layout: TrainingLayout, rendezvous: Rendezvous) -> list[str]:
    """This node's command (node 0 wrote the accelerate config it names: run)."""
    config_file = (str(ctx.output("accelerate_config.yaml")) if layout.launcher == "accelerate"
                   else None)
    return layout.command(str(ctx.output("train_args.json")), config_file=config_file,
                          rendezvous=rendezvous)


def launch(ctx: StageContext, layout: TrainingLayout, rendezvous: Rendezvous) -> dict[str, Any]:
    """Run this node's share of a multi-process training; node 0 returns the results."""
    from fairspec.training.launch import PROGRESS_FILE, RESULT_FILE

    work = ctx.work_dir
    result, progress_file = work / RESULT_FILE, work / PROGRESS_FILE
    if rendezvous.node_rank == 0:
        result.unlink(missing_ok=True)
        progress_file.unlink(missing_ok=True)
    command = launch_command(ctx, layout, rendezvous)
    log_path = work / (LAUNCH_LOG if rendezvous.node_rank == 0
                       else f"launch-node{rendezvous.node_rank}.log")
    log.info("training on %d process(es) over %d node(s): %s", layout.world_size, layout.nodes,
             format_command(command))
    update = None
    seen = None
    with log_path.open("ab") as out:
        out.write(f"$ {format_command(command)}\n".encode())
        out.flush()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        try:
            while process.poll() is None:
                time.sleep(POLL_SECONDS)
                seen, update = _report(progress_file, seen, update, ctx)
            seen, update = _report(progress_file, seen, update, ctx)
        except BaseException:  # Ctrl-C or an error here: the training processes stop too
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if process.returncode != 0:
        raise TrainingFailed(_failure(process.returncode, command, log_path, work))
    if rendezvous.node_rank != 0:
        return {}
    if not result.is_file():
        raise TrainingFailed(f"training exited cleanly but wrote no {result}; read {log_path}")
    return json.loads(result.read_text(encoding="utf-8"))


def _report(path: Path, seen: str | None, update: Any, ctx: StageContext) -> tuple[str | None, Any]:
    """Pass a changed progress file on to the progress display."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return seen, update
    if text == seen:
        return seen, update
    try:
        step = json.loads(text)
    except ValueError:  # replaced atomically, so only a foreign file reads badly
        return seen, update
    if update is None:
        update = counter(ctx.services.progress, ctx.label, step["total"], "steps")
    if update is not None:
        update(step["done"], step["total"], step.get("note", ""))
    return text, update


def _failure(code: int, command: list[str], log_path: Path, work: Path) -> str:
    """What went wrong, from the launch log: the first traceback's error, and the tail."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    first = next((line for line in lines
                  if line.strip() and not line.startswith((" ", "\t", "$", "Traceback", "[rank"))
                  and ("Error" in line or "Exception" in line)), None)
    tail = "\n".join(deque(lines, maxlen=15))
    checkpoints = sorted(p.name for p in (work / CHECKPOINTS).glob("checkpoint-*"))
    kept = (f"; checkpoints kept for resume: {', '.join(checkpoints)}" if checkpoints
            else "")
    return (f"training exited with status {code}; read {log_path}{kept}\n"
            f"command: {format_command(command)}\n"
            + (f"first error of a rank: {first}\n" if first else "")
            + f"last lines of the log:\n{tail}")


def join(ctx: StageContext, rendezvous: Rendezvous, *, poll: float = 2.0,
         timeout: float | None = None) -> dict[str, Any]:
    """On a node other than 0: wait until node 0 has written everything this node's
    launcher reads (:func:`wait_for_node_0`), then run this node's processes."""
    layout = ctx.settings_as(TrainSettings).layout
    if not wait_for_node_0(ctx, layout, rendezvous, poll=poll, timeout=timeout):
        return {"joined": False, "why": "node 0 had already finished training"}
    launch(ctx, layout, rendezvous)
    return {"joined": True, "node_rank": rendezvous.node_rank}


def wait_for_node_0(ctx: StageContext, layout: TrainingLayout, rendezvous: Rendezvous, *,
                    poll: float = 2.0, timeout: float | None = None) -> bool:
    """Wait until the train folder is this fingerprint's (node 0 prepared it; the output
    folder is shared), the build stage is done with examples, and every file of
    :func:`launch_inputs` is there; False when node 0 had already finished training."""
    from fairspec.artifacts import is_done

    files = launch_inputs(ctx, layout)
    started = time.monotonic()
    while True:
        if is_done(ctx.folder, ctx.fingerprint):
            return False
        missing = [path for path in files if not path.is_file()]
        if not missing and _owned(ctx) and _has_examples(ctx):
            return True
        if timeout is not None and time.monotonic() - started > timeout:
            raise TrainingFailed(f"node {rendezvous.node_rank}: node 0 did not start training "
                                 f"{ctx.run.name} within {timeout:.0f} s (waited for "
                                 f"{', '.join(map(str, missing or files))})")
        time.sleep(poll)


def _has_examples(ctx: StageContext) -> bool:
    """Whether node 0 will launch (with no example it finishes without training)."""
    stats = ctx.input("build", "stats.json")
    return stats.is_file() and json.loads(stats.read_text(encoding="utf-8"))["examples"] > 0


def _owned(ctx: StageContext) -> bool:
    """Whether the train folder belongs to this fingerprint (node 0 prepared it)."""
    from fairspec.artifacts import OWNER_FILE

    owner = ctx.folder / OWNER_FILE
    return owner.is_file() and owner.read_text(encoding="utf-8").strip() == ctx.fingerprint
