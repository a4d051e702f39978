"""The FAIR joint training loss: L = alpha * L_feedback + (1 - alpha) * L_rationale (eq. 5-7).

Each training example is of one kind: a *rationale* example (question -> teacher rationale,
eq. 5) or a *feedback* example (question + the student's wrong rationale -> teacher feedback,
eq. 6). Both are causal-LM completions whose prompt tokens carry the label -100. One forward pass
over a mixed batch and one token-level cross-entropy give both parts; each part is the mean over
its own kind's completion tokens, and eq. 7 weighs the two means.

Batches that lack one kind. The part of the missing kind contributes 0 and the present part keeps
its own coefficient (alpha or 1 - alpha); it is *not* renormalised to weight 1. When batches are
drawn at random from a set that pairs each question's rationale with its feedback, a batch lacks a
kind with some probability q, the same for both kinds; the expected weights are then
alpha * (1 - q) and (1 - alpha) * (1 - q), which keeps the alpha : (1 - alpha) balance of eq. 7
(only the overall scale shrinks, like a slightly smaller learning rate). Renormalising would give
an all-feedback batch the weight 1 and pull the effective balance towards 0.5.

Gradient accumulation. Pass ``num_feedback_tokens`` and ``num_rationale_tokens``: the counts of
each kind's completion tokens over *all* micro-batches of one optimizer step (see
``count_completion_tokens``). Each part is then its summed cross-entropy divided by that total, so
the sum of the micro-batch losses equals the loss of the whole accumulated batch exactly, per kind.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch

__all__ = ["IGNORE_INDEX", "JointLoss", "count_completion_tokens", "joint_loss", "joint_loss_parts"]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""The label of a token that no loss covers (prompt tokens, padding), as in transformers."""


class JointLoss(NamedTuple):
    """The joint loss and its parts, for the backward pass and for logging.

    ``feedback_loss`` and ``rationale_loss`` are the unweighted parts (token means, or token sums
    over the given totals); a part whose token count is 0 is 0 and should not be logged as a loss.
    ``feedback_tokens`` and ``rationale_tokens`` count the completion tokens of this batch.
    """

    loss: torch.Tensor
    feedback_loss: torch.Tensor
    rationale_loss: torch.Tensor
    feedback_tokens: torch.Tensor
    rationale_tokens: torch.Tensor


def _shifted_labels(labels: torch.Tensor) -> torch.Tensor:
    """Labels aligned with the logits: position t holds the label of token t + 1."""
    import torch.nn.functional as F

    # Shift the labels, not the logits: slicing logits[:, :-1] would copy the largest tensor.
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def _check_labels(labels: torch.Tensor, is_feedback: torch.Tensor) -> None:
    import torch

    if not isinstance(labels, torch.Tensor) or labels.dim() != 2:
        raise ValueError(f"labels must be a [B, T] tensor, got {_describe(labels)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must hold integer token ids, got dtype {labels.dtype}")
    if not isinstance(is_feedback, torch.Tensor) or is_feedback.dtype != torch.bool:
        raise ValueError(f"is_feedback must be a bool tensor, got {_describe(is_feedback)}")
    if is_feedback.shape != labels.shape[:1] and is_feedback.shape != labels.shape:
        raise ValueError(
            f"is_feedback must have shape [B] = [{labels.shape[0]}] (one kind per row) or "
            f"[B, T] = {list(labels.shape)} (one per token, for packed rows), got "
            f"{list(is_feedback.shape)}"
        )


def _target_kinds(is_feedback: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` bool: whether the target at each position (label t + 1) is a feedback token."""
    import torch.nn.functional as F

    if is_feedback.dim() == 1:
        return is_feedback[:, None].expand_as(targets)
    return F.pad(is_feedback[:, 1:], (0, 1), value=False)


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None:
        return type(value).__name__
    return f"{type(value).__name__} of shape {list(shape)} and dtype {dtype}"


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if not math.isfinite(alpha) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return float(alpha)


def _check_total(name: str, value: int | torch.Tensor | None) -> None:
    import torch

    if value is None:
        return
    if isinstance(value, torch.Tensor):
        # No .item(): reading a device tensor's value would synchronise every step.
        if value.numel() != 1 or value.dtype == torch.bool:
            raise ValueError(f"{name} must be a scalar count, got {_describe(value)}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a token count, got {value!r}")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def count_completion_tokens(
    labels: torch.Tensor, is_feedback: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count the predicted completion tokens of each kind: (feedback, rationale).

    Counts ``labels[:, 1:] != -100``, the tokens the shifted cross-entropy covers, so summing it
    over the micro-batches of one optimizer step gives the totals that ``joint_loss`` takes.
    """
    _check_labels(labels, is_feedback)
    targets = _shifted_labels(labels)
    used = targets != IGNORE_INDEX
    kinds = _target_kinds(is_feedback.to(used.device), targets)
    return (used & kinds).sum(), (used & ~kinds).sum()


def joint_loss_parts(
    logits: torch.Tensor,
    labels: torch.Tensor,
    is_feedback: torch.Tensor,
    alpha: float,
    *,
    num_feedback_tokens: int | torch.Tensor | None = None,
    num_rationale_tokens: int | torch.Tensor | None = None,
) -> JointLoss:
    """Compute the joint loss of eq. 7 and its two parts.

    Args:
        logits: ``[B, T, V]`` causal-LM logits, any float dtype; the cross-entropy runs in
            float32. ``logits[:, t]`` predicts ``labels[:, t + 1]``.
        labels: ``[B, T]`` token ids, unshifted, exactly as given to a causal LM; ``-100`` marks
            tokens no loss covers (prompt, padding).
        is_feedback: ``[B]`` bool, True for a feedback example (eq. 6), False for a rationale
            example (eq. 5); or ``[B, T]``, the kind of each token, when a row packs several
            examples (see ``CompletionCollator(pack=True)``).
        alpha: the weight of the feedback part, in [0, 1]. A part whose coefficient is 0 is left
            out of the loss (no ``0 * part``): its logits cannot change the loss and get a zero
            gradient; the part is still returned, detached, for logging.
        num_feedback_tokens: the feedback completion tokens of the whole accumulated batch; None
            means this batch's own count (a plain token mean).
        num_rationale_tokens: the same for rationale tokens.

    Returns:
        ``JointLoss(loss, feedback_loss, rationale_loss, feedback_tokens, rationale_tokens)``.
        A kind with no completion tokens (missing from the batch, or all masked) contributes 0
        and the other part keeps its coefficient; see the module docstring for why.

    Raises:
        ValueError: a malformed argument, named in the message.
    """
    import torch
    import torch.nn.functional as F

    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"logits must be a [B, T, V] tensor, got {_describe(logits)}")
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be floating point, got dtype {logits.dtype}")
    _check_labels(labels, is_feedback)
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"labels shape {list(labels.shape)} does not match logits [B, T] = "
            f"{list(logits.shape[:2])}"
        )
    alpha = _check_alpha(alpha)
    _check_total("num_feedback_tokens", num_feedback_tokens)
    _check_total("num_rationale_tokens", num_rationale_tokens)

    is_feedback = is_feedback.to(logits.device)
    targets = _shifted_labels(labels.to(device=logits.device, dtype=torch.long))
    used = targets != IGNORE_INDEX
    kinds = _target_kinds(is_feedback, targets)
    feedback_mask = used & kinds
    rationale_mask = used & ~kinds
    feedback_tokens = feedback_mask.sum()
    rationale_tokens = rationale_mask.sum()

    vocab = logits.shape[-1]
    token_ce = F.cross_entropy(
        logits.reshape(-1, vocab).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view_as(targets)
    zero = token_ce.new_zeros(())
    feedback_sum = torch.where(feedback_mask, token_ce, zero).sum()
    rationale_sum = torch.where(rationale_mask, token_ce, zero).sum()

    feedback_loss = feedback_sum / _denominator(num_feedback_tokens, feedback_tokens)
    rationale_loss = rationale_sum / _denominator(num_rationale_tokens, rationale_tokens)

    # A part whose coefficient is 0 stays out of the graph (no 0 * x, so no 0 * NaN) and is
    # returned detached, for logging only.
    if alpha == 0.0:
        loss = rationale_loss
        feedback_loss = feedback_loss.detach()
    elif alpha == 1.0:
        loss = feedback_loss
        rationale_loss = rationale_loss.detach()
    else:
        loss = alpha * feedback_loss + (1.0 - alpha) * rationale_loss
    return JointLoss(loss, feedback_loss, rationale_loss, feedback_tokens, rationale_tokens)


def _denominator(total: int | torch.Tensor | None, own: torch.Tensor) -> torch.Tensor:
    """The divisor of a part's token sum; at least 1, as a sum over no tokens is 0 anyway."""
    import torch

    count = own if total is None else torch.as_tensor(total, device=own.device).reshape(())
    return count.to(torch.float32).clamp(min=1.0)


def joint_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    is_feedback: torch.Tensor,
    alpha: float,
    *,
    num_feedback_tokens: int | torch.Tensor | None = None,
    num_rationale_tokens: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Return the scalar joint loss ``alpha * L_feedback + (1 - alpha) * L_rationale`` (eq. 7).

    The arguments are those of ``joint_loss_parts``, which also returns the two parts.
    """
    return joint_loss_parts(
        logits,
        labels,
        is_feedback,
        alpha,
        num_feedback_tokens=num_feedback_tokens,
        num_rationale_tokens=num_rationale_tokens,
    ).loss
