"""Mixed precision through fairspec's own ``train()``: fp32 master weights under bf16 or fp16
autocast, so updates at Table 9's learning rate are not rounded away and the gradient
scaler never meets half-precision gradients; half weights only with ``precision: pure``."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from training_data import make_dataset, train_args

#: Table 9's learning rate: small enough that a bf16 weight rounds most updates away.
PAPER_LR = 1e-5


def weights_watch() -> Any:
    """A TrainerCallback that keeps the weights at the start and counts, at the end, the
    share of weights training changed (in the dtype the model trains them in)."""
    from transformers import TrainerCallback

    class WeightsWatch(TrainerCallback):
        before: dict[str, Any] = {}
        changed = 0.0
        dtypes: set[Any] = set()

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                           **kwargs: Any) -> None:
            self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
            self.dtypes = {p.dtype for p in model.parameters()}

        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None,
                         **kwargs: Any) -> None:
            moved = total = 0
            for name, param in model.named_parameters():
                moved += int((param.detach() != self.before[name]).sum())
                total += param.numel()
            self.changed = moved / total

    return WeightsWatch()


def scaler_probe() -> Any:
    """A TrainerCallback that, before each optimizer step, unscales the step's gradients with
    torch's GradScaler as accelerate does for fp16 on a GPU (on a CPU accelerate makes no
    scaler): it raises "Attempting to unscale FP16 gradients" when the weights are fp16."""
    import torch
    from transformers import TrainerCallback

    class ScalerProbe(TrainerCallback):
        steps = 0
        grad_dtypes: set[Any] = set()

        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any,
                                  optimizer: Any = None, **kwargs: Any) -> None:
            scaler = torch.amp.GradScaler("cpu", init_scale=1.0)  # 1.0: the step is unchanged
            scaler.scale(torch.ones(()))  # the scale tensor is made on first use
            scaler.unscale_(optimizer)
            self.grad_dtypes |= {p.grad.dtype for group in optimizer.param_groups
                                 for p in group["params"] if p.grad is not None}
            self.steps += 1

    return ScalerProbe()


@pytest.mark.slow
def test_bf16_mixed_precision_changes_the_weights_at_the_paper_learning_rate(tmp_path, tiny_model):
    """3 steps at lr 1e-5 with bf16 autocast (CPU): the fp32 master weights move almost all
    (pure bf16 weights, the old path, moved 1.7%: most updates were below bf16's resolution)."""
    import torch
    from safetensors import safe_open

    from fairspec.training.launch import train

    make_dataset(tmp_path)
    watch = weights_watch()
    stats = train(train_args(tmp_path, tiny_model, dtype="bf16", learning_rate=PAPER_LR, epochs=1),
                  callbacks=[watch])
    assert stats["steps"] == 3
    assert watch.dtypes == {torch.float32}  # the master copy
    assert watch.changed >= 0.9, f"only {watch.changed:.1%} of the weights changed"
    model = next((tmp_path / "train" / "model").glob("*.safetensors"))
    with safe_open(str(model), framework="pt") as saved:  # saved as trained: fp32
        assert {saved.get_slice(k).get_dtype() for k in saved.keys()} == {"F32"}


@pytest.mark.slow
def test_fp16_training_keeps_fp32_master_weights_so_the_grad_scaler_can_unscale(tmp_path,
                                                                               tiny_model):
    """fp16 is fp16 autocast over fp32 weights: the scaler unscales fp32 gradients. With fp16
    weights (the old path) the first step raised in ``GradScaler.unscale_``."""
    import torch

    from fairspec.training.launch import train

    make_dataset(tmp_path)
    probe = scaler_probe()
    stats = train(train_args(tmp_path, tiny_model, dtype="fp16", learning_rate=PAPER_LR, epochs=1),
                  callbacks=[probe])
    assert probe.steps == stats["steps"] == 3
    assert probe.grad_dtypes == {torch.float32}


@pytest.mark.slow
def test_pure_bf16_trains_half_weights_and_rounds_small_updates_away(tmp_path, tiny_model):
    """``precision: pure`` is the explicit choice of bf16 weights: the documented cost is
    that most updates at lr 1e-5 are below bf16's resolution."""
    import torch

    from fairspec.training.launch import train

    make_dataset(tmp_path)
    watch = weights_watch()
    train(train_args(tmp_path, tiny_model, dtype="bf16", precision="pure", learning_rate=PAPER_LR,
                     epochs=1), callbacks=[watch])
    assert watch.dtypes == {torch.bfloat16}
    assert watch.changed < 0.2, f"{watch.changed:.1%} of the bf16 weights changed"


def paper_train_stage(dtype: str, training: str = "", strategy: str = "fsdp") -> Any:
    """The train stage of the paper's gsm8k spec (4 GPUs) with ``dtype`` and extra training keys."""
    from pathlib import Path

    from fairspec.dsl import load_spec_text
    from fairspec.plan import Environment, compile_plan

    specs = Path(__file__).resolve().parents[2] / "specs"
    text = (specs / "gsm8k.yaml").read_text().replace("    dtype: fp16", f"    dtype: {dtype}")
    text = text.replace("strategy: fsdp", f"strategy: {strategy}")
    text = re.sub(r"^(training:.*\n)", lambda found: found.group(1) + training, text,
                  count=1, flags=re.M)
    plan = compile_plan(load_spec_text(text, base_dir=specs), Environment(cuda_devices=8, vllm=True))
    return plan.runs[0].stage("train")


def test_the_paper_specs_fp16_is_fp16_autocast_over_fp32_weights_on_every_launcher():
    """FSDP and DeepSpeed get mixed precision from the same setting; nothing casts the
    parameters themselves to half (``pure`` alone turns the autocast off)."""
    for strategy in ("fsdp", "deepspeed"):
        stage = paper_train_stage("fp16", strategy=strategy)
        config = stage.settings["accelerate_config"]
        assert stage.settings["precision"] == stage.identity["precision"] == "mixed"
        assert config["mixed_precision"] == "fp16"
        nested = json.dumps({**config.get("fsdp_config", {}), **config.get("deepspeed_config", {})})
        assert "dtype" not in nested and "precision" not in nested
    pure = paper_train_stage("bf16", "  precision: pure\n")
    assert pure.settings["accelerate_config"]["mixed_precision"] == "no"
    assert pure.identity["precision"] == "pure"


def test_precision_is_fingerprinted_for_half_dtypes_only_and_checkpoint_keys_never():
    fp32 = paper_train_stage("fp32")
    assert "precision" not in fp32.identity  # an fp32 run's fingerprint is as it was
    mixed, pure = paper_train_stage("bf16"), paper_train_stage("bf16", "  precision: pure\n")
    assert mixed.fingerprint != pure.fingerprint
    kept = paper_train_stage("bf16", "  save_steps: 50\n  keep_checkpoints: all\n")
    assert kept.fingerprint == mixed.fingerprint
    assert (kept.settings["save_steps"], kept.settings["keep_checkpoints"]) == (50, "all")
