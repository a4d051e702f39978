"""How training packs examples for the model's attention, checked on the model itself before
training uses it.

Two layouts of ``CompletionCollator(pack=True)``, chosen by the attention implementation the
model was loaded with (:func:`packed_collator`):

* flash attention (``flash_attention_2``, ``flash_attention_3``, a flash kernel): every example
  of the batch in one row (``flat``), sequence boundaries given as varlen arguments and
  restarting ``position_ids``, no mask, as transformers' ``DataCollatorWithFlattening``. Flash
  attention runs each example as its own sequence, in memory linear in the tokens. It reads
  restarting positions only in a batch of one row: several packed rows would attend across
  their examples.
* any other (sdpa, eager, flex): rows no longer than the longest example with the dense
  block-diagonal causal mask (``block_mask``), faster on CPUs than letting transformers build
  the same mask from the positions. Its memory is O(T^2) per row and a masked sdpa cannot use
  its flash kernel: flash attention is the one that packs for free.

A model with its own attention code may ignore either and let packed examples see each other,
which would train silently wrong. So one forward pass compares each example's logits alone and
packed as training packs it, on the model's device and under training's autocast; packing is
used only when they agree. Flash attention that cannot run yet (the model still on the CPU, as
FSDP and DeepSpeed leave it until training starts) is trusted: fairspec loads no remote code,
and transformers' flash path reads the flat batch's boundaries.
"""

from __future__ import annotations

import logging
from typing import Any

from fairspec.training.tokenize import CompletionCollator

log = logging.getLogger(__name__)

#: The largest logit gap allowed, relative to the largest logit: leaking attention moves the
#: logits by tenths of it (0.57 on the tiny model), rounding in fp32 and fp16 by far less than
#: 1e-2; bf16's (eps 2^-8) by 0.02-0.03, so a half dtype allows 25 of its eps (bf16: 0.098).
TOLERANCE = 1e-2
HALF_EPS_ALLOWED = 25


def attention_of(model: Any) -> str:
    """The attention implementation the model runs (``config._attn_implementation``)."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None) or ""


def reads_packed_positions(model: Any) -> bool:
    """Flash attention of any flavour (transformers' ``is_flash_attention_requested``: the
    name holds "flash"): it wants the flat layout and no mask."""
    return "flash" in attention_of(model)


def packed_collator(model: Any, pad_token_id: int) -> CompletionCollator:
    """The packing collator for this model's attention (module docstring)."""
    flash = reads_packed_positions(model)
    return CompletionCollator(pad_token_id, pack=True, flat=flash, block_mask=not flash)


def packing_is_exact(model: Any, vocab_size: int, collator: CompletionCollator | None = None, *,
                     autocast: Any = None, length: int = 12) -> bool:
    """True when the model gives each packed example the logits it gives it alone.

    Three examples (of 2, 1 and 1 ``length``: the rows layout puts the two short ones in one
    row behind a row of the long one) go through ``collator`` (default: packed rows with no
    mask), as the model gets them in training; ``autocast`` is the half dtype training computes
    in under mixed precision (flash attention takes no fp32 inputs), None for none.
    """
    import torch

    from fairspec.training.tokenize import additive_mask

    collator = collator or CompletionCollator(0, pack=True)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    examples = [torch.randint(3, max(4, vocab_size - 1), (size,), generator=generator)
                for size in (2 * length, length, length)]
    batch = collator([{"input_ids": ids.tolist(), "labels": ids.tolist(), "kind": "rationale"}
                      for ids in examples])
    inputs = {key: value.to(device) if isinstance(value, torch.Tensor) else value
              for key, value in batch.items() if key not in ("labels", "is_feedback")}
    mask = inputs.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.dim() == 4:
        inputs["attention_mask"] = additive_mask(mask, next(model.parameters()).dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            packed = model(**inputs, use_cache=False).logits.float()
            alone = [model(input_ids=ids[None].to(device), use_cache=False).logits[0].float()
                     for ids in examples]
    except (TypeError, ValueError, RuntimeError, ImportError) as exc:
        if reads_packed_positions(model) and device.type == "cpu":
            # FSDP and DeepSpeed move the model to its GPUs only as training starts; loaded
            # without remote code, it runs transformers' flash path, which reads the varlen
            # boundaries of the flat batch
            log.info("packing not checked: %s cannot run before the model is on its GPU (%s)",
                     attention_of(model), exc)
            return True
        log.info("packing disabled: the model does not take packed rows (%s)", exc)
        return False
    finally:
        model.train(was_training)
    ids = batch["input_ids"]
    gap = 0.0
    for example, logits in zip(examples, alone, strict=True):
        row, start = _place(ids, example)
        gap = max(gap, float((logits - packed[row, start : start + len(example)]).abs().max())
                  / max(1.0, float(logits.abs().max())))
    allowed = max(TOLERANCE, HALF_EPS_ALLOWED * torch.finfo(autocast).eps if autocast else 0.0)
    if gap > allowed:
        log.warning("packing disabled: with %s attention this model lets packed examples attend "
                    "to each other (relative logit gap %.3g); training pads each example instead",
                    attention_of(model) or "its", gap)
        return False
    return True


def _place(ids: Any, example: Any) -> tuple[int, int]:
    """Row and start of ``example`` in the packed ``ids`` (random tokens: found once)."""
    size = len(example)
    for row in range(ids.shape[0]):
        for start in range(ids.shape[1] - size + 1):
            if bool((ids[row, start : start + size] == example).all()):
                return row, start
    raise ValueError("a packed example is missing from its batch")
