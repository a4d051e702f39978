"""The joint trainer: the HF Trainer with eq. 7 as its loss, and batches that keep a
sample's rationale and feedback examples together.

Gradient accumulation stays exact per kind: before each optimizer step the trainer
counts the completion tokens of each kind over all the step's micro-batches (and all
processes), and every micro-batch divides its summed losses by those totals, so the
accumulated gradient is that of one big batch (see ``joint_loss_parts``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler
from transformers import Trainer

from fairspec.training.loss import count_completion_tokens, joint_loss_parts
from fairspec.training.tokenize import additive_mask


class SampleGroupSampler(Sampler[int]):
    """Yields dataset rows group by group (one group = one training sample's examples),
    with the groups shuffled anew each epoch from ``seed + epoch``.

    The Trainer calls ``set_epoch`` before each epoch, so a run resumed from a checkpoint
    sees the order the uninterrupted run saw; used alone, each pass moves to the next epoch.
    """

    def __init__(self, groups: Sequence[int], seed: int) -> None:
        order: dict[int, list[int]] = {}
        for row, group in enumerate(groups):
            order.setdefault(group, []).append(row)
        self.groups = list(order.values())
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        for i in torch.randperm(len(self.groups), generator=generator).tolist():
            yield from self.groups[i]


class JointTrainer(Trainer):
    """``Trainer`` whose loss is alpha * L_feedback + (1 - alpha) * L_rationale."""

    def __init__(self, *args: Any, alpha: float, sample_groups: Sequence[int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alpha = alpha
        self.sample_groups = sample_groups
        self.loss_is_scaled_for_ga = True  # our totals already cover the accumulation
        self._step_totals: tuple[torch.Tensor, torch.Tensor] | None = None
        self._parts = {"feedback_loss": [0.0, 0], "rationale_loss": [0.0, 0]}

    def _get_train_sampler(self, train_dataset=None):  # noqa: ANN001 — HF's signature
        if self.sample_groups is None:
            return super()._get_train_sampler(train_dataset)
        return SampleGroupSampler(self.sample_groups, self.args.seed)

    def get_batch_samples(self, epoch_iterator, num_batches, device):  # noqa: ANN001
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        feedback = torch.zeros((), dtype=torch.long)
        rationale = torch.zeros((), dtype=torch.long)
        for batch in batches:
            fb, rt = count_completion_tokens(batch["labels"], batch["is_feedback"])
            feedback, rationale = feedback + fb.cpu(), rationale + rt.cpu()
        totals = torch.stack([feedback, rationale]).to(device)
        if self.args.world_size > 1:
            totals = self.accelerator.gather(totals.unsqueeze(0)).sum(dim=0)
        self._step_totals = (totals[0], totals[1])
        for name, total in (("feedback_loss", totals[0]), ("rationale_loss", totals[1])):
            self._parts[name][1] += int(total > 0)
        return batches, num_items

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        labels = inputs.pop("labels")
        is_feedback = inputs.pop("is_feedback")
        mask = inputs.get("attention_mask")
        if mask is not None and mask.dim() == 4:  # packed rows' block mask, in the model's dtype
            inputs["attention_mask"] = additive_mask(mask, next(model.parameters()).dtype)
        # no KV cache in training (and packed rows need none); a flat batch's varlen boundaries
        # (cu_seq_lens_q, max_length_q, ...) go on to flash attention with the rest
        outputs = model(**inputs, use_cache=False)
        training = model.training and self._step_totals is not None
        totals = self._step_totals if training else (None, None)
        parts = joint_loss_parts(outputs.logits, labels, is_feedback, self.alpha,
                                 num_feedback_tokens=totals[0], num_rationale_tokens=totals[1])
        loss = parts.loss
        if training and self.args.world_size > 1:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients over processes
        if training:  # each micro-batch's part is its share of the step's mean: sum them
            self._parts["feedback_loss"][0] += float(parts.feedback_loss.detach())
            self._parts["rationale_loss"][0] += float(parts.rationale_loss.detach())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Adds the two parts of the loss (mean per optimizer step since the last log)."""
        if "loss" in logs:
            sums = [total for total, _ in self._parts.values()]
            if self.args.world_size > 1:  # each rank holds its share of the global mean
                sums = self.accelerator.reduce(
                    torch.tensor(sums, dtype=torch.float64, device=self.args.device),
                    reduction="sum").tolist()
            for (name, (_, count)), total in zip(self._parts.items(), sums, strict=True):
                if count:
                    logs[name] = round(total / count, 6)
            self._parts = {name: [0.0, 0] for name in self._parts}
        super().log(logs, *args, **kwargs)
