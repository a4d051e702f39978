"""Batched transformers generation: left-padded, length-sorted batches, streamed per batch."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from fairspec.dtypes import torch_dtype
from fairspec.engines.base import Completion, Sampling, chat_prompt
from fairspec.engines.row_sampler import RowSampler

log = logging.getLogger(__name__)


class HfEngine:
    """The student through ``transformers``: used where vLLM is absent (and on CPUs).

    Prompts are sorted by token length so each batch pads little; the row at position
    ``i`` samples with its own generator seeded ``sampling.seed + i``
    (:class:`~fairspec.engines.row_sampler.RowSampler`, as vLLM seeds row ``i``), so its
    answer depends on its prompt and seed only: not on ``batch_size``, the rows batched
    with it, the replica count or a resume.
    """

    name = "hf"

    def __init__(self, model_path: str, *, dtype: str = "fp32", device: str = "cpu",
                 batch_size: int = 16, use_chat_template: bool = True) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device
        self.batch_size = batch_size
        self.use_chat_template = use_chat_template
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=torch_dtype(dtype)
        ).to(device)
        self.model.eval()

    def generate(self, prompts: Sequence[str], sampling: Sampling) -> Iterator[Completion]:
        import torch

        texts = [chat_prompt(self.tokenizer, p, self.use_chat_template) for p in prompts]
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: (-lengths[i], i))
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            encoded = self.tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
            kwargs = {"max_new_tokens": sampling.max_new_tokens, "do_sample": sampling.do_sample,
                      "pad_token_id": self.tokenizer.pad_token_id}
            if sampling.do_sample:  # each row draws from its own seed; generate takes it
                kwargs.update(temperature=1.0, top_p=1.0, top_k=0, logits_processor=[RowSampler(
                    [sampling.seed + i for i in batch], sampling.temperature, sampling.top_p,
                    self.device, top_k=sampling.top_k)])
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                output = self.model.generate(**encoded, **kwargs)
            new_tokens = output[:, encoded["input_ids"].shape[1]:]
            for row, position in enumerate(batch):
                ids = new_tokens[row].tolist()
                ended = eos in ids
                if ended:
                    ids = ids[: ids.index(eos)]
                else:
                    ids = [t for t in ids if t != self.tokenizer.pad_token_id]
                yield Completion(
                    position=position,
                    text=self.tokenizer.decode(ids, skip_special_tokens=True),
                    finish_reason="stop" if ended else "length",
                    prompt_tokens=lengths[position],
                    output_tokens=len(ids) + (1 if ended else 0),
                )

    def close(self) -> None:
        del self.model
