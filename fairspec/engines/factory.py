"""Makes the engine a plan chose (hf, vllm, or replicas of either)."""

from __future__ import annotations

from pathlib import Path

from fairspec.engines.base import Engine
from fairspec.engines.single import make_single_engine


def make_engine(name: str, model_path: str, *, dtype: str, device: str, batch_size: int,
                use_chat_template: bool, vllm_settings: dict | None = None,
                replicas: int = 1, per_replica: int = 1, log_dir: Path | None = None) -> Engine:
    """The engine a plan chose for the exam or the evaluation; ``replicas`` > 1: that many
    copies side by side, each in its own process on ``per_replica`` devices
    (:class:`~fairspec.engines.replicas.ReplicatedEngine`, their logs in ``log_dir``)."""
    if replicas > 1:
        from fairspec.engines.replicas import ReplicatedEngine

        options = {"dtype": dtype, "device": device, "batch_size": batch_size,
                   "use_chat_template": use_chat_template, "vllm_settings": vllm_settings}
        return ReplicatedEngine(name, model_path, replicas=replicas, per_replica=per_replica,
                                device=device, options=options, log_dir=log_dir)
    return make_single_engine(name, model_path, dtype=dtype, device=device,
                              batch_size=batch_size, use_chat_template=use_chat_template,
                              vllm_settings=vllm_settings)
