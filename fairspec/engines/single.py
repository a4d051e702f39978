"""One hf or vLLM engine in this process."""

from __future__ import annotations

from fairspec.engines.base import Engine


def make_single_engine(name: str, model_path: str, *, dtype: str, device: str, batch_size: int,
                       use_chat_template: bool, vllm_settings: dict | None = None) -> Engine:
    """One engine in this process (a replica process makes its engine with this)."""
    if name == "hf":
        from fairspec.engines.hf import HfEngine

        return HfEngine(model_path, dtype=dtype, device=device, batch_size=batch_size,
                        use_chat_template=use_chat_template)
    if name == "vllm":
        from fairspec.engines.vllm import VllmEngine

        settings = dict(vllm_settings or {})
        settings.pop("data_parallel_size", None)  # replicas are make_engine's
        return VllmEngine(model_path, dtype=settings.pop("dtype", "float32"),
                          tensor_parallel_size=settings.pop("tensor_parallel_size", 1),
                          seed=settings.pop("seed", 0), use_chat_template=use_chat_template,
                          **settings)
    raise ValueError(f"unknown engine {name!r}; use 'hf' or 'vllm'")
