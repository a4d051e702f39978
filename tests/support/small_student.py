"""A smaller real student for the tests whose claims do not depend on what the model knows.

SmolLM2-135M-Instruct cut to its first ``LAYERS`` decoder layers: the builtin model's own
weights (embeddings, those layers, the final norm), config, tokenizer and chat template,
loaded by the same ``LlamaForCausalLM`` code, so a training or an exam through it runs every
line the 135M model runs. A training step costs about a quarter (the 49,152-word output
layer stays): the tests that kill, resume, replay, compare two trainings step by step or
launch several processes use it (``small_student`` in tests/conftest.py); the tests of what
the real model does (it learns, it generates, its memory, the quickstart) keep the 135M one.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

#: decoder layers kept of the 30 (two, so that layer-to-layer code still runs)
LAYERS = 2
NAME = f"smollm2-135m-instruct-first-{LAYERS}-layers"


def small_student(folder: Path, source: str) -> Path:
    """The cut model's folder under ``folder``, made on first use from ``source`` (the 135M
    model's folder), atomically: a rename at the end, so that parallel test workers that both
    make it keep one."""
    target = folder / NAME
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=folder))
    try:
        model = AutoModelForCausalLM.from_pretrained(source, num_hidden_layers=LAYERS, dtype="float32")
        assert model.config.num_hidden_layers == LAYERS and len(model.model.layers) == LAYERS
        model.save_pretrained(work)
        AutoTokenizer.from_pretrained(source).save_pretrained(work)
        try:
            work.rename(target)
        except OSError:  # another worker renamed its copy first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
