"""A local transformers model as a teacher: same chat interface, requests batched in-process.

Concurrent ``complete`` calls are queued and answered in batches (left-padded, one
``generate`` per batch in a worker thread), so the teach and review stages drive a
local teacher the way they drive an API. Teachers naming the same model folder share
one loaded copy. ``presence_penalty`` and ``frequency_penalty`` have no transformers
equivalent and are ignored.

With ``score_logprobs`` (log-probability review scores), the reviewer's distribution over
the score tokens is read from the model's own logits, over the whole vocabulary, with one
batched forward pass after generation: at the token where the reply states its score, or,
when it states none, after the reply plus a score cue (``SCORE_CUE``: "Score: [").
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from typing import Any

from fairspec.dtypes import torch_dtype
from fairspec.engines.row_sampler import RowSampler
from fairspec.providers.base import ChatProvider, ChatRequest, ChatResult, GenerationSettings, result_status
from fairspec.review.logprobs import SCORE_CUE, TOP_LOGPROBS, distribution_at
from fairspec.review.score import score_span

_MODELS: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()
_DIGITS: dict[int, dict[str, list[int]]] = {}  # id(tokenizer) -> digit tokens (models stay loaded)

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
                (batch if _batchable(item[0], first[0]) else rest).append(item)
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
            for (_, future, started), (text, finish, n_in, n_out, reading) in zip(
                    batch, results, strict=True):
                if not future.done():
                    future.set_result(ChatResult(
                        text=text, finish_reason=finish,
                        status=result_status(text, finish == "length"),
                        input_tokens=n_in, output_tokens=n_out,
                        latency_s=time.perf_counter() - started, attempts=1,
                        score_logprobs=reading,
                    ))

    def _generate(self, requests: list[ChatRequest]) -> list[tuple[str, str, int, int, Any]]:
        import torch

        tokenizer, model = _load(self.model_path, self.dtype, self.device)
        settings: GenerationSettings = requests[0].settings
        texts = [tokenizer.apply_chat_template([dict(m) for m in r.messages], tokenize=False,
                                               add_generation_prompt=True) for r in requests]
        encoded = tokenizer(texts, return_tensors="pt", padding=True,
                            add_special_tokens=False).to(self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": settings.max_tokens,
                                  "pad_token_id": tokenizer.pad_token_id}
        seeds = [r.settings.seed for r in requests]
        if settings.temperature > 0 and all(seed is not None for seed in seeds):
            # each row samples with its own call's seed, whatever else shares its batch
            kwargs.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                          logits_processor=[RowSampler(seeds, settings.temperature, settings.top_p,
                                                       self.device)])
        elif settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p,
                          top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            output = model.generate(**encoded, **kwargs)
        prompt_len = encoded["input_ids"].shape[1]
        lengths = encoded["attention_mask"].sum(dim=1).tolist()
        results = []
        replies = []
        for row in range(len(requests)):
            ids = output[row, prompt_len:].tolist()
            ended = tokenizer.eos_token_id in ids
            if ended:
                ids = ids[: ids.index(tokenizer.eos_token_id)]
            else:
                ids = [t for t in ids if t != tokenizer.pad_token_id]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            replies.append(ids)
            results.append((text, "stop" if ended else "length", int(lengths[row]),
                            len(ids) + int(ended)))
        readings: list[Any] = [None] * len(requests)
        if settings.score_logprobs is not None:
            prompts = [encoded["input_ids"][row][encoded["attention_mask"][row].bool()].tolist()
                       for row in range(len(requests))]
            readings = read_scores(tokenizer, model, self.device, prompts, replies,
                                   [text for text, *_ in results], settings.score_logprobs)
        return [(*result, reading) for result, reading in zip(results, readings, strict=True)]

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


def _batchable(request: ChatRequest, first: ChatRequest) -> bool:
    """Whether ``request`` may share ``first``'s batch: the same settings but the seed
    (each row samples with its own)."""
    return replace(request.settings, seed=None) == replace(first.settings, seed=None)


def _digit_tokens(tokenizer: Any) -> dict[str, list[int]]:
    """Every vocabulary token that is one digit, whitespace aside, by its decoded text."""
    with _MODELS_LOCK:
        cached = _DIGITS.get(id(tokenizer))
        if cached is None:
            cached = {}
            for token_id in range(len(tokenizer)):
                text = tokenizer.decode([token_id])
                if len(text.strip()) == 1 and text.strip().isdigit():
                    cached.setdefault(text, []).append(token_id)
            _DIGITS[id(tokenizer)] = cached
        return cached


def _score_position(tokenizer: Any, ids: list[int], text: str,
                    score_range: tuple[int, int]) -> tuple[int, str, int] | None:
    """(token index, that token's text, the digit's place in it) where ``text`` (the decode
    of ``ids``) states its score; None when it states none."""
    span = score_span(text, score_range)
    if span is None:
        return None
    at = span[0]
    low, high = 0, len(ids)  # the first token whose prefix decodes past the digit
    while low < high:
        mid = (low + high) // 2
        if len(tokenizer.decode(ids[: mid + 1], skip_special_tokens=True)) > at:
            high = mid
        else:
            low = mid + 1
    if low >= len(ids):
        return None
    before = len(tokenizer.decode(ids[:low], skip_special_tokens=True))
    piece = tokenizer.decode(ids[: low + 1], skip_special_tokens=True)[before:]
    digit_at = at - before
    if not 0 <= digit_at < len(piece) or piece[digit_at] != text[at]:
        return None
    return low, piece, digit_at


def read_scores(tokenizer: Any, model: Any, device: str, prompts: list[list[int]],
                replies: list[list[int]], texts: list[str],
                score_range: tuple[int, int]) -> list[dict[str, Any] | None]:
    """Each reply's score distribution (``ScoreReading.to_json()``), read with one batched
    forward pass: the logits before the stated score's token, or after the reply plus
    ``SCORE_CUE`` when the reply states none."""
    import torch

    cue = tokenizer.encode(SCORE_CUE, add_special_tokens=False)
    sequences, places = [], []
    for prompt, ids, text in zip(prompts, replies, texts, strict=True):
        found = _score_position(tokenizer, ids, text, score_range)
        if found is not None:
            index, piece, digit_at = found
            sequences.append(prompt + ids[:index])
            places.append(("stated", piece, digit_at))
        else:
            sequences.append(prompt + ids + cue)
            places.append(("forced", None, 0))
    width = max(len(seq) for seq in sequences)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(seq)) + seq for seq in sequences], device=device)
    mask = torch.tensor([[0] * (width - len(seq)) + [1] * len(seq) for seq in sequences],
                        device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                       logits_to_keep=1).logits[:, -1, :].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    digits = _digit_tokens(tokenizer)
    readings: list[dict[str, Any] | None] = []
    for row, (how, piece, digit_at) in enumerate(places):
        top = torch.topk(logprobs[row], TOP_LOGPROBS)
        alternatives = [(tokenizer.decode([int(i)]), float(lp))
                        for lp, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
        alternatives += [(text, float(logprobs[row, token_id]))
                         for text, token_ids in digits.items() for token_id in token_ids]
        if how == "forced":  # the cue ends with "[": the next token is the score itself
            piece, digit_at = "0", 0
        reading = distribution_at(piece, digit_at, alternatives, score_range, how=how)
        readings.append(reading.to_json() if reading is not None else None)
    return readings
