"""Sampling each row of a batch with its own seed, whatever else shares the batch.

``transformers``' ``generate`` draws every row of a batch from one global generator, so a
row's sample depends on the batch it lands in (its size, its order, the other rows'
lengths). :class:`RowSampler` is a logits processor that draws each row's next token from
the row's own ``torch.Generator`` (after temperature, top-k and top-p, the order of the
Trainer's warpers) and leaves only that token possible: ``generate``'s own draw then takes
it. A row's reply so depends on its seed and its prompt only. The student's engine and the
hf teacher provider both use it.
"""

from __future__ import annotations

from typing import Any


class RowSampler:
    """A logits processor: row ``i`` samples with ``torch.Generator().manual_seed(seeds[i])``."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device: str,
                 top_k: int = 0) -> None:
        import torch

        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.float() / self.temperature
        if 0 < self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[..., -1, None]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            ordered, order = probs.sort(dim=-1, descending=True)
            outside = ordered.cumsum(dim=-1) - ordered > self.top_p  # the first token always stays
            ordered = ordered.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, ordered)
        chosen = torch.cat([torch.multinomial(probs[row], 1, generator=generator)
                            for row, generator in enumerate(self.generators)])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, chosen[:, None], 0.0)
