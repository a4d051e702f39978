"""Completion-only tokenisation of training examples, and the collator that batches them.

An example is a prompt and a completion. The loss covers the completion only: prompt tokens are
labelled -100, and the completion is followed by the tokenizer's EOS token, labelled too, so the
student learns to stop. Padding is labelled -100 as well: it is never a target.

The prompt/completion boundary. The prompt is tokenised alone, then prompt + completion as one
text; when the full text's ids start with the prompt's ids, the completion is the rest of them (the
natural tokenisation of the text). When a token merges across the boundary, the completion is
tokenised on its own and appended instead, so the prompt ids are always exactly those the student
sees at inference, when it generates after the prompt.

Truncation, when prompt + completion + EOS exceed ``max_seq_length``: the prompt is kept whole and
the completion loses its tail (and its EOS: a cut completion must not teach the student to stop
there), as long as that leaves the completion at least ``min(its length, max_seq_length // 4)``
tokens. A longer prompt loses its head (its first tokens, the left side) down to that reserve,
since an example with (almost) no completion tokens would train nothing. ``truncated`` is then
True; count it to see how often the limit bites.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fairspec.training.loss import IGNORE_INDEX

if TYPE_CHECKING:
    import torch

__all__ = ["KINDS", "CompletionCollator", "encode_example"]

logger = logging.getLogger(__name__)

KINDS = ("feedback", "rationale")
"""The values of an example's ``kind`` field: eq. 6 (feedback) and eq. 5 (rationale)."""

COMPLETION_RESERVE_DIVISOR = 4
"""A truncated completion keeps at least 1/4 of the window (or all of itself, when shorter)."""


def _ids(tokenizer: Any, text: str, *, add_special_tokens: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def _leading_special_ids(tokenizer: Any) -> list[int]:
    """The ids the tokenizer puts before a text (a BOS, for some); trailing ones are dropped."""
    probe = "a"
    bare = _ids(tokenizer, probe, add_special_tokens=False)
    full = _ids(tokenizer, probe, add_special_tokens=True)
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start]
    return []


def _prompt_text(tokenizer: Any, prompt: str, use_chat_template: bool) -> str:
    if not use_chat_template:
        return prompt
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            "use_chat_template=True but the tokenizer has no chat template; "
            "set use_chat_template to false for this model"
        )
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    if not isinstance(text, str):
        raise ValueError(f"the chat template rendered {type(text).__name__}, expected str")
    return text


def _split_ids(
    tokenizer: Any, prompt_text: str, completion: str, prefix: list[int]
) -> tuple[list[int], list[int]]:
    """Token ids of the prompt and of the completion, with an exact boundary between them."""
    prompt_ids = prefix + _ids(tokenizer, prompt_text, add_special_tokens=False)
    full_ids = prefix + _ids(tokenizer, prompt_text + completion, add_special_tokens=False)
    if full_ids[: len(prompt_ids)] == prompt_ids:
        return prompt_ids, full_ids[len(prompt_ids) :]
    logger.debug("a token merges across the prompt/completion boundary; tokenising apart")
    return prompt_ids, _ids(tokenizer, completion, add_special_tokens=False)


def encode_example(
    tokenizer: Any,
    prompt: str,
    completion: str,
    *,
    max_seq_length: int,
    use_chat_template: bool,
) -> dict[str, Any]:
    """Tokenise one prompt/completion pair so that the loss covers the completion and EOS only.

    Args:
        tokenizer: a transformers tokenizer with an EOS token.
        prompt: the instruction; with ``use_chat_template`` it becomes the user message and the
            template's generation prompt (the assistant header) follows it.
        completion: the target text (a rationale or a feedback); EOS is appended to it.
        max_seq_length: the most tokens the example may have, at least 2.
        use_chat_template: render the prompt with the tokenizer's chat template; otherwise the
            prompt text is used as is, after the tokenizer's own leading special tokens (BOS).

    Returns:
        ``{"input_ids": list[int], "attention_mask": list[int], "labels": list[int],
        "truncated": bool}``; ``labels`` is -100 over the prompt and equals ``input_ids`` over
        the completion. Truncation follows the rule in the module docstring.

    Raises:
        ValueError: a bad argument, or a tokenizer without EOS token (or chat template when one
            is asked for).
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
    if not isinstance(completion, str):
        raise ValueError(f"completion must be a str, got {type(completion).__name__}")
    if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int):
        raise ValueError(f"max_seq_length must be an int, got {max_seq_length!r}")
    if max_seq_length < 2:
        raise ValueError(f"max_seq_length must be at least 2, got {max_seq_length}")
    eos_id = getattr(tokenizer, "eos_token_id", None)
    if eos_id is None:
        raise ValueError("the tokenizer has no eos_token_id; the completion needs an EOS token")

    prompt_text = _prompt_text(tokenizer, prompt, use_chat_template)
    # A chat template writes its own BOS, if any, into the text.
    prefix = [] if use_chat_template else _leading_special_ids(tokenizer)
    prompt_ids, completion_ids = _split_ids(tokenizer, prompt_text, completion, prefix)
    completion_ids = completion_ids + [int(eos_id)]

    truncated = len(prompt_ids) + len(completion_ids) > max_seq_length
    if truncated:
        reserve = min(len(completion_ids), max_seq_length // COMPLETION_RESERVE_DIVISOR)
        completion_keep = max(max_seq_length - len(prompt_ids), reserve)
        prompt_keep = max_seq_length - completion_keep
        prompt_ids = prompt_ids[len(prompt_ids) - prompt_keep :]
        completion_ids = completion_ids[:completion_keep]

    input_ids = prompt_ids + completion_ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
        "truncated": truncated,
    }


@dataclass(frozen=True)
class CompletionCollator:
    """Batch encoded examples for ``joint_loss``: right-padded rows, or packed rows.

    Each feature needs ``input_ids``, ``labels`` and ``kind`` ("feedback" or "rationale");
    ``attention_mask`` defaults to all ones; other fields are ignored. Padding gets
    ``pad_token_id`` as input, attention 0 and label -100 (never a target, even where the pad
    token is the EOS token). The batch is ``{"input_ids", "attention_mask", "labels"}`` as
    ``[B, T]`` int64 tensors and ``is_feedback``, a ``[B]`` bool tensor.

    ``pack=True`` puts several examples in one row (first-fit decreasing, rows no longer than
    the longest example), so that the short rationale examples stop being padded to the
    length of the feedback examples. Each example keeps its own positions (``position_ids``
    restart at 0) and attends only to itself: with no ``attention_mask``, transformers reads
    the restarts as packed sequences and masks across them (sdpa, eager and flex attention;
    flash attention only in a batch of one row, see ``flat``). The row's tail padding is one
    more such sequence, labelled -100. An example's first token is labelled -100 too: nothing
    predicts it in a padded batch, and in a packed row the token before it belongs to another
    example. ``is_feedback`` is then ``[B, T]``, the kind of each token. The loss is that of
    the padded batch (same tokens, same positions, same attention), on fewer rows.
    ``block_mask=True`` also gives the block-diagonal causal mask as a ``[B, 1, T, T]`` bool
    ``attention_mask`` (pass it to the model through ``additive_mask``): on CPUs and sdpa it is
    faster than letting the model build it from the positions.

    ``flat=True`` (with ``pack``) is the layout of transformers' ``DataCollatorWithFlattening``,
    the one flash attention reads: every example of the batch in one ``[1, N]`` row, in the
    given order, with no padding (but the tail to ``pad_to_multiple_of``, its own sequence)
    and no mask, plus the varlen arguments ``cu_seq_lens_q``/``cu_seq_lens_k`` (``int32``
    sequence boundaries, the tail included) and ``max_length_q``/``max_length_k`` (ints), so
    flash attention runs each example as its own sequence in O(N) memory without reading the
    positions back in every layer. Flash attention given several rows with restarting
    positions ignores the restarts (transformers' ``_is_packed_sequence`` wants one row) and
    lets examples attend to each other: flash attention needs this layout.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    pack: bool = False
    block_mask: bool = False
    flat: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.pad_token_id, bool) or not isinstance(self.pad_token_id, int):
            raise ValueError(f"pad_token_id must be an int, got {self.pad_token_id!r}")
        if self.pad_token_id < 0:
            raise ValueError(f"pad_token_id must be >= 0, got {self.pad_token_id}")
        multiple = self.pad_to_multiple_of
        if multiple is not None and (
            isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1
        ):
            raise ValueError(f"pad_to_multiple_of must be a positive int or None, got {multiple!r}")
        if self.flat and not self.pack:
            raise ValueError("flat=True needs pack=True: a flat row is packed examples")
        if self.flat and self.block_mask:
            raise ValueError("flat=True takes no block_mask: flash attention reads the sequence "
                             "boundaries from cu_seq_lens and a mask would turn them off")

    def _length(self, longest: int) -> int:
        if self.pad_to_multiple_of is None:
            return longest
        return -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor | int]:
        import torch

        if not features:
            raise ValueError("features is empty: a batch needs at least one example")
        rows = [_feature_row(index, feature) for index, feature in enumerate(features)]
        if self.pack:
            return self._packed(rows)
        length = self._length(max(len(ids) for ids, _, _, _ in rows))
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        for row, (ids, mask, row_labels, _) in enumerate(rows):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = torch.tensor(mask, dtype=torch.long)
            labels[row, : len(ids)] = torch.tensor(row_labels, dtype=torch.long)
        is_feedback = torch.tensor([kind == "feedback" for _, _, _, kind in rows], dtype=torch.bool)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "is_feedback": is_feedback,
        }

    def _packed(
        self, rows: list[tuple[list[int], list[int], list[int], str]]
    ) -> dict[str, torch.Tensor | int]:
        import torch

        for index, (_, mask, _, _) in enumerate(rows):
            if 0 in mask:
                raise ValueError(f"features[{index}] has masked tokens: packing needs unpadded examples")
        if self.flat:
            bins = [list(range(len(rows)))]
            length = self._length(sum(len(ids) for ids, _, _, _ in rows))
        else:
            length = self._length(max(len(ids) for ids, _, _, _ in rows))
            bins = _first_fit_decreasing([len(ids) for ids, _, _, _ in rows], length)
        input_ids = torch.full((len(bins), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(bins), length), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((len(bins), length), dtype=torch.long)
        is_feedback = torch.zeros((len(bins), length), dtype=torch.bool)
        boundaries = [0]
        for row, members in enumerate(bins):
            start = 0
            for index in members:
                ids, _, row_labels, kind = rows[index]
                end = start + len(ids)
                input_ids[row, start:end] = torch.tensor(ids, dtype=torch.long)
                # the first token stays -100: the token before it is another example's
                labels[row, start + 1 : end] = torch.tensor(row_labels[1:], dtype=torch.long)
                position_ids[row, start:end] = torch.arange(len(ids))
                is_feedback[row, start:end] = kind == "feedback"
                start = end
                boundaries.append(end)
            position_ids[row, start:] = torch.arange(length - start)  # the padding: its own sequence
        batch: dict[str, torch.Tensor | int] = {
            "input_ids": input_ids,
            "position_ids": position_ids,
            "labels": labels,
            "is_feedback": is_feedback,
        }
        if self.block_mask:
            batch["attention_mask"] = block_causal_mask(position_ids)
        if self.flat:
            if boundaries[-1] < length:
                boundaries.append(length)
            cu_seq_lens = torch.tensor(boundaries, dtype=torch.int32)
            longest = int(torch.diff(cu_seq_lens).max())
            batch.update(cu_seq_lens_q=cu_seq_lens, cu_seq_lens_k=cu_seq_lens,
                         max_length_q=longest, max_length_k=longest)
        return batch


def _first_fit_decreasing(sizes: list[int], capacity: int) -> list[list[int]]:
    """The example indices of each packed row: longest first, each into the first row with room."""
    bins: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        slot = next((b for b, free in enumerate(room) if free >= sizes[index]), None)
        if slot is None:
            bins.append([])
            room.append(capacity)
            slot = len(bins) - 1
        bins[slot].append(index)
        room[slot] -= sizes[index]
    return bins


def block_causal_mask(position_ids: torch.Tensor) -> torch.Tensor:
    """``[R, 1, T, T]`` bool, True where a token may attend: earlier tokens of its own example
    (an example starts where ``position_ids`` restart)."""
    import torch

    starts = torch.diff(position_ids, prepend=position_ids[:, :1] - 1, dim=-1) != 1
    example = starts.cumsum(-1)
    length = position_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    return ((example[:, :, None] == example[:, None, :]) & causal)[:, None]


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool 4D mask as the additive float mask every attention implementation reads (0 where
    attended, the dtype's minimum elsewhere)."""
    import torch

    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def _as_list(value: Any) -> list[int]:
    return value.tolist() if hasattr(value, "tolist") else list(value)


def _feature_row(
    index: int, feature: Mapping[str, Any]
) -> tuple[list[int], list[int], list[int], str]:
    for key in ("input_ids", "labels", "kind"):
        if key not in feature:
            raise ValueError(f"features[{index}] has no {key!r} field")
    kind = feature["kind"]
    if kind not in KINDS:
        raise ValueError(f"features[{index}]['kind'] must be one of {KINDS}, got {kind!r}")
    ids = _as_list(feature["input_ids"])
    labels = _as_list(feature["labels"])
    mask = _as_list(feature["attention_mask"]) if "attention_mask" in feature else [1] * len(ids)
    if not ids:
        raise ValueError(f"features[{index}]['input_ids'] is empty")
    if len(labels) != len(ids) or len(mask) != len(ids):
        raise ValueError(
            f"features[{index}]: input_ids ({len(ids)}), attention_mask ({len(mask)}) and "
            f"labels ({len(labels)}) differ in length"
        )
    return ids, mask, labels, kind
