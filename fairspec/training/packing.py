"""Whether a model honours packed rows, checked on the model itself before training uses them.

``CompletionCollator(pack=True)`` relies on the model reading restarting ``position_ids``
(with no attention mask and no KV cache: ``use_cache=False``) as separate sequences, which
transformers' own mask builder does for its sdpa, eager and flash attention. A model
with its own attention code may ignore them and let packed examples see each other,
which would train silently wrong. So one forward pass compares an example's logits alone
and packed behind another; packing is used only when they agree.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

TOLERANCE = 1e-2  # relative to the largest logit; leaking attention moves logits by units


def packing_is_exact(model: Any, vocab_size: int, *, block_mask: bool = False, length: int = 12) -> bool:
    """True when the model gives a packed example the logits it gives it alone (packed rows
    given as the model will get them in training: positions, and the block mask if asked)."""
    import torch

    from fairspec.training.tokenize import additive_mask, block_causal_mask

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(3, max(4, vocab_size - 1), (length,), generator=generator)
    second = torch.randint(3, max(4, vocab_size - 1), (length,), generator=generator)
    packed_ids = torch.cat([first, second])[None].to(device)
    positions = torch.cat([torch.arange(length), torch.arange(length)])[None].to(device)
    packed_inputs = {"input_ids": packed_ids, "position_ids": positions}
    if block_mask:
        dtype = next(model.parameters()).dtype
        packed_inputs["attention_mask"] = additive_mask(block_causal_mask(positions), dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            alone = model(input_ids=second[None].to(device), use_cache=False).logits[0].float()
            packed = model(**packed_inputs, use_cache=False).logits[0, length:].float()
    except (TypeError, ValueError, RuntimeError) as exc:
        log.info("packing disabled: the model does not take packed rows (%s)", exc)
        return False
    finally:
        model.train(was_training)
    gap = float((alone - packed).abs().max())
    if gap > TOLERANCE * max(1.0, float(alone.abs().max())):
        log.warning("packing disabled: this model lets packed examples attend to each other "
                    "(logit gap %.3g); training pads each example instead", gap)
        return False
    return True


def wants_block_mask(model: Any) -> bool:
    """Flash attention reads packed positions itself (varlen); every other implementation is
    faster with the block mask given."""
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None) or ""
    return not implementation.startswith("flash")
