"""The spec's dtype words (bf16, fp16, fp32) and their torch names: one table for every engine."""

from __future__ import annotations

from typing import Any

#: spec word -> the torch (and vLLM) dtype name
DTYPE_NAMES: dict[str, str] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def dtype_name(dtype: str) -> str:
    """``bf16`` -> ``bfloat16``; a full name (``float32``) is returned as is."""
    if dtype in DTYPE_NAMES.values():
        return dtype
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join([*DTYPE_NAMES, *DTYPE_NAMES.values()])}")
    return DTYPE_NAMES[dtype]


def torch_dtype(dtype: str) -> Any:
    """The ``torch.dtype`` for a spec word or a full name (imports torch)."""
    import torch

    return getattr(torch, dtype_name(dtype))
