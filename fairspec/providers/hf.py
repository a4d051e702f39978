"""A local transformers model as a teacher: same chat interface, requests batched in-process.

Concurrent ``complete`` calls are queued and answered in batches (left-padded, one
``generate`` per batch in a worker thread), so the teach and review stages drive a
local teacher the way they drive an API. Teachers naming the same model folder share
one loaded copy. ``presence_penalty`` and ``frequency_penalty`` have no transformers
equivalent and are ignored.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from fairspec.dtypes import torch_dtype
from fairspec.providers.base import ChatProvider, ChatRequest, ChatResult, GenerationSettings, result_status

_MODELS: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()

def _load(path: str, dtype: str, device: str) -> tuple[Any, Any]:
    with _MODELS_LOCK:
        key = (path, dtype, device)
        if key not in _MODELS:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch_dtype(dtype)
            ).to(device)
            model.eval()
            _MODELS[key] = (tokenizer, model)
        return _MODELS[key]


class HfProvider(ChatProvider):
    """``provider: hf``: ``model`` is a local folder (resolve ``builtin:`` names before)."""

    kind = "hf"

    def __init__(self, *, name: str, model: str, model_path: str | None = None,
                 device: str = "cpu", dtype: str = "fp32", max_batch: int = 8) -> None:
        super().__init__(name=name, model=model, base_url=None)
        self.model_path = model_path or model
        self.device = device
        self.dtype = dtype
        self.max_batch = max_batch
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def complete(self, request: ChatRequest) -> ChatResult:
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._serve())
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((request, future, time.perf_counter()))
        return await future

    async def _serve(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            batch, rest = [first], []
            while len(batch) < self.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                (batch if item[0].settings == first[0].settings else rest).append(item)
            for item in rest:  # other settings wait for the next round
                self._queue.put_nowait(item)
            try:
                results = await asyncio.to_thread(self._generate, [r for r, _, _ in batch])
            except asyncio.CancelledError:  # closing: no call may wait forever
                for _, future, _ in batch + rest:
                    if not future.done():
                        future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 — every waiting call gets the error
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future, started), (text, finish, n_in, n_out) in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(ChatResult(
                        text=text, finish_reason=finish,
                        status=result_status(text, finish == "length"),
                        input_tokens=n_in, output_tokens=n_out,
                        latency_s=time.perf_counter() - started, attempts=1,
                    ))

    def _generate(self, requests: list[ChatRequest]) -> list[tuple[str, str, int, int]]:
        import torch

        tokenizer, model = _load(self.model_path, self.dtype, self.device)
        settings: GenerationSettings = requests[0].settings
        texts = [tokenizer.apply_chat_template([dict(m) for m in r.messages], tokenize=False,
                                               add_generation_prompt=True) for r in requests]
        encoded = tokenizer(texts, return_tensors="pt", padding=True,
                            add_special_tokens=False).to(self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": settings.max_tokens,
                                  "pad_token_id": tokenizer.pad_token_id}
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p,
                          top_k=0)
            if settings.seed is not None:
                torch.manual_seed(settings.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            output = model.generate(**encoded, **kwargs)
        prompt_len = encoded["input_ids"].shape[1]
        lengths = encoded["attention_mask"].sum(dim=1).tolist()
        results = []
        for row in range(len(requests)):
            ids = output[row, prompt_len:].tolist()
            ended = tokenizer.eos_token_id in ids
            if ended:
                ids = ids[: ids.index(tokenizer.eos_token_id)]
            else:
                ids = [t for t in ids if t != tokenizer.pad_token_id]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            results.append((text, "stop" if ended else "length", int(lengths[row]),
                            len(ids) + int(ended)))
        return results

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        while self._queue is not None and not self._queue.empty():
            _, future, _ = self._queue.get_nowait()
            if not future.done():
                future.cancel()
