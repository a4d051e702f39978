"""What this machine offers the plan (GPUs, vLLM), detected once and passed to the compiler."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Environment:
    """The facts the compiler resolves ``auto`` settings against."""

    cuda_devices: int = 0
    vllm: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"cuda_devices": self.cuda_devices, "vllm": self.vllm}


def detect_environment() -> Environment:
    """Count CUDA devices (through torch, when installed) and check that vLLM imports."""
    vllm = importlib.util.find_spec("vllm") is not None
    devices = 0
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) != "" and importlib.util.find_spec("torch"):
        try:
            import torch

            devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except Exception:  # a broken CUDA install must not stop a plan  # noqa: BLE001
            devices = 0
    return Environment(cuda_devices=devices, vllm=vllm)
