"""Tests of the eq. 7 joint loss against a plain per-token reference computation."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from fairspec.training import (  # noqa: E402
    IGNORE_INDEX,
    count_completion_tokens,
    joint_loss,
    joint_loss_parts,
)


def random_batch(seed: int, batch: int = 6, length: int = 9, vocab: int = 11):
    """Random logits, labels padded with -100 runs on both sides, and mixed kinds."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64) * 3
    labels = torch.randint(0, vocab, (batch, length), generator=generator)
    for row in range(batch):
        left = int(torch.randint(0, length // 2, (1,), generator=generator))
        right = int(torch.randint(0, length // 2, (1,), generator=generator))
        labels[row, :left] = IGNORE_INDEX
        labels[row, length - right :] = IGNORE_INDEX
    is_feedback = torch.rand(batch, generator=generator) < 0.5
    is_feedback[0], is_feedback[1] = True, False
    return logits, labels, is_feedback


def reference_loss(logits, labels, is_feedback, alpha: float) -> float:
    """eq. 7 written out: a token mean of -log p per kind, by loops over examples and tokens."""
    sums = {True: 0.0, False: 0.0}
    counts = {True: 0, False: 0}
    for row in range(labels.shape[0]):
        kind = bool(is_feedback[row])
        log_probs = torch.log_softmax(logits[row].double(), dim=-1)
        for position in range(1, labels.shape[1]):
            target = int(labels[row, position])
            if target == IGNORE_INDEX:
                continue
            sums[kind] -= float(log_probs[position - 1, target])
            counts[kind] += 1
    feedback = sums[True] / counts[True] if counts[True] else 0.0
    rationale = sums[False] / counts[False] if counts[False] else 0.0
    return alpha * feedback + (1 - alpha) * rationale


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_joint_loss_matches_reference(seed: int, alpha: float) -> None:
    logits, labels, is_feedback = random_batch(seed)
    expected = reference_loss(logits, labels, is_feedback, alpha)
    # float32 logits: the function's own precision; the reference runs in float64.
    got = joint_loss(logits.float(), labels, is_feedback, alpha)
    assert got.dim() == 0
    assert got.item() == pytest.approx(expected, abs=1e-6, rel=1e-6)


def test_parts_are_the_per_kind_token_means() -> None:
    logits, labels, is_feedback = random_batch(7)
    parts = joint_loss_parts(logits.float(), labels, is_feedback, 0.3)
    assert parts.feedback_loss.item() == pytest.approx(
        reference_loss(logits, labels, is_feedback, 1.0), abs=1e-6
    )
    assert parts.rationale_loss.item() == pytest.approx(
        reference_loss(logits, labels, is_feedback, 0.0), abs=1e-6
    )
    used = labels[:, 1:] != IGNORE_INDEX
    assert parts.feedback_tokens.item() == int(used[is_feedback].sum())
    assert parts.rationale_tokens.item() == int(used[~is_feedback].sum())


def test_bfloat16_logits_are_scored_in_float32() -> None:
    logits, labels, is_feedback = random_batch(4)
    low = logits.to(torch.bfloat16)
    got = joint_loss(low, labels, is_feedback, 0.5)
    assert got.dtype == torch.float32
    # The reference sees the same rounded logits, so only the CE's own precision differs.
    assert got.item() == pytest.approx(
        reference_loss(low.double(), labels, is_feedback, 0.5), abs=1e-5
    )


def test_gradient_reaches_exactly_the_positions_that_predict_a_label() -> None:
    logits, labels, is_feedback = random_batch(5)
    logits = logits.float().requires_grad_(True)
    joint_loss(logits, labels, is_feedback, 0.5).backward()
    row_grad = logits.grad.abs().sum(dim=-1)
    predicts_label = torch.zeros_like(labels, dtype=torch.bool)
    predicts_label[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    assert bool((row_grad[predicts_label] > 0).all())
    assert bool((row_grad[~predicts_label] == 0).all())


@pytest.mark.parametrize("alpha, ignored_kind", [(0.0, True), (1.0, False)])
def test_a_zero_coefficient_part_cannot_change_the_loss(alpha: float, ignored_kind: bool) -> None:
    logits, labels, is_feedback = random_batch(6)
    logits = logits.float()
    before = joint_loss(logits, labels, is_feedback, alpha)
    changed = logits.clone()
    rows = is_feedback == ignored_kind
    changed[rows] = torch.randn_like(changed[rows]) * 50
    assert torch.equal(joint_loss(changed, labels, is_feedback, alpha), before)
    # Not even an overflowing part leaks in as 0 * inf = NaN.
    changed[rows] = float("inf")
    assert torch.equal(joint_loss(changed, labels, is_feedback, alpha), before)

    finite = logits.clone().requires_grad_(True)
    joint_loss(finite, labels, is_feedback, alpha).backward()
    assert bool((finite.grad[rows] == 0).all())
    assert bool((finite.grad[~rows] != 0).any())


def test_the_ignored_part_is_still_reported_for_logging() -> None:
    logits, labels, is_feedback = random_batch(8)
    parts = joint_loss_parts(logits.float().requires_grad_(True), labels, is_feedback, 0.0)
    assert parts.feedback_loss.item() == pytest.approx(
        reference_loss(logits, labels, is_feedback, 1.0), abs=1e-6
    )
    assert parts.loss.requires_grad
    assert not parts.feedback_loss.requires_grad


@pytest.mark.parametrize("only_feedback", [True, False])
def test_a_batch_of_one_kind_keeps_its_coefficient(only_feedback: bool) -> None:
    logits, labels, _ = random_batch(9)
    is_feedback = torch.full((labels.shape[0],), only_feedback)
    mean = reference_loss(logits, labels, is_feedback, 1.0 if only_feedback else 0.0)
    parts = joint_loss_parts(logits.float(), labels, is_feedback, 0.25)
    coefficient = 0.25 if only_feedback else 0.75
    assert parts.loss.item() == pytest.approx(coefficient * mean, abs=1e-6)
    missing = parts.rationale_tokens if only_feedback else parts.feedback_tokens
    assert missing.item() == 0


def test_an_all_masked_batch_gives_zero_with_a_zero_gradient() -> None:
    logits, labels, is_feedback = random_batch(10)
    labels = torch.full_like(labels, IGNORE_INDEX)
    logits = logits.float().requires_grad_(True)
    loss = joint_loss(logits, labels, is_feedback, 0.5)
    assert loss.item() == 0.0
    loss.backward()
    assert bool((logits.grad == 0).all())


def test_only_the_first_label_is_never_a_target() -> None:
    logits, labels, is_feedback = random_batch(11)
    changed = labels.clone()
    changed[:, 0] = (changed[:, 0] + 1) % logits.shape[-1]
    assert torch.equal(
        joint_loss(logits.float(), changed, is_feedback, 0.5),
        joint_loss(logits.float(), labels, is_feedback, 0.5),
    )


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_accumulated_micro_batches_sum_to_the_full_batch_loss(alpha: float) -> None:
    logits, labels, is_feedback = random_batch(12, batch=8)
    logits = logits.float()
    slices = [slice(0, 3), slice(3, 4), slice(4, 8)]
    totals = [count_completion_tokens(labels[s], is_feedback[s]) for s in slices]
    num_feedback = sum(t[0] for t in totals)
    num_rationale = sum(t[1] for t in totals)
    accumulated = sum(
        joint_loss(
            logits[s],
            labels[s],
            is_feedback[s],
            alpha,
            num_feedback_tokens=num_feedback,
            num_rationale_tokens=num_rationale,
        )
        for s in slices
    )
    expected = reference_loss(logits.double(), labels, is_feedback, alpha)
    assert accumulated.item() == pytest.approx(expected, abs=1e-6)


def test_count_completion_tokens_counts_shifted_labels_per_kind() -> None:
    labels = torch.tensor([[5, 1, 2, IGNORE_INDEX], [IGNORE_INDEX, 3, IGNORE_INDEX, 4]])
    feedback, rationale = count_completion_tokens(labels, torch.tensor([True, False]))
    assert (feedback.item(), rationale.item()) == (2, 2)


@pytest.mark.parametrize(
    "change, name",
    [
        (lambda a: {**a, "logits": a["logits"][0]}, "logits"),
        (lambda a: {**a, "logits": a["logits"].long()}, "logits"),
        (lambda a: {**a, "labels": a["labels"].float()}, "labels"),
        (lambda a: {**a, "labels": a["labels"][:, :-1]}, "labels"),
        (lambda a: {**a, "is_feedback": a["is_feedback"].long()}, "is_feedback"),
        (lambda a: {**a, "is_feedback": a["is_feedback"][:-1]}, "is_feedback"),
        (lambda a: {**a, "alpha": 1.5}, "alpha"),
        (lambda a: {**a, "alpha": math.nan}, "alpha"),
        (lambda a: {**a, "alpha": True}, "alpha"),
        (lambda a: {**a, "num_feedback_tokens": -1}, "num_feedback_tokens"),
        (lambda a: {**a, "num_rationale_tokens": torch.ones(2)}, "num_rationale_tokens"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(change, name: str) -> None:
    logits, labels, is_feedback = random_batch(13)
    arguments = {
        "logits": logits.float(),
        "labels": labels,
        "is_feedback": is_feedback,
        "alpha": 0.5,
    }
    with pytest.raises(ValueError, match=name):
        joint_loss(**change(arguments))


def test_one_kind_batch_matches_the_transformers_causal_lm_loss() -> None:
    """The shift convention is that of a transformers causal LM's own loss."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    _, labels, _ = random_batch(14, batch=3, length=10, vocab=50)
    input_ids = labels.clamp(min=0)
    with torch.no_grad():
        outputs = model(input_ids=input_ids, labels=labels)
    everything_feedback = torch.ones(3, dtype=torch.bool)
    ours = joint_loss(outputs.logits, labels, everything_feedback, 1.0)
    assert ours.item() == pytest.approx(outputs.loss.item(), abs=1e-6)
    half = joint_loss(outputs.logits, labels, everything_feedback, 0.5)
    assert half.item() == pytest.approx(0.5 * outputs.loss.item(), abs=1e-6)


def test_importing_the_package_loads_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fairspec.training as t; "
        "print(all(hasattr(t, n) for n in t.__all__), 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["True", "False"]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_per_token_kinds_give_the_loss_of_the_rows_they_came_from(alpha: float) -> None:
    """Two rows packed into one ([B, T] kinds) score exactly as the two rows apart."""
    logits, labels, is_feedback = random_batch(11, batch=2, length=7)
    is_feedback = torch.tensor([True, False])
    packed_logits = torch.cat([logits[0], logits[1]])[None]
    packed_labels = torch.cat([labels[0], labels[1]])[None]
    packed_kinds = torch.cat([torch.ones(7, dtype=torch.bool), torch.zeros(7, dtype=torch.bool)])[None]
    packed_labels[0, 7] = IGNORE_INDEX  # a packed row starts its second example with a prompt token
    apart_labels = labels.clone()
    apart_labels[1, 0] = IGNORE_INDEX
    apart = joint_loss_parts(logits.float(), apart_labels, is_feedback, alpha)
    packed = joint_loss_parts(packed_logits.float(), packed_labels, packed_kinds, alpha)
    assert packed.loss.item() == pytest.approx(apart.loss.item(), abs=1e-6)
    assert packed.feedback_tokens.item() == apart.feedback_tokens.item()
    assert count_completion_tokens(packed_labels, packed_kinds)[1].item() == apart.rationale_tokens.item()


def test_kinds_of_the_wrong_shape_are_refused() -> None:
    logits, labels, _ = random_batch(1, batch=3, length=5)
    with pytest.raises(ValueError, match=r"one per token"):
        joint_loss(logits.float(), labels, torch.zeros(3, 4, dtype=torch.bool), 0.5)
