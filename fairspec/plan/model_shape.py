"""A student's shape (a Llama-style ``config.json``), for the memory plan: read from a local
folder, the hub cache (never the network) or fairspec's table of the paper's students."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairspec.dsl.rules import local_model_config
from fairspec.resources import BUILTIN_MODELS, builtin_model_alias


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only (Llama-style) model's sizes, read from its ``config.json``."""

    name: str
    source: str  # where the config came from: local folder, hub cache, builtin table
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    attention_bias: bool = False
    max_positions: int = 4096

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str, source: str) -> ModelShape:
        hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        return cls(
            name=name, source=source, hidden=hidden, layers=int(config["num_hidden_layers"]),
            heads=heads, kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate=int(config["intermediate_size"]), vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
            attention_bias=bool(config.get("attention_bias", False))
            or config.get("model_type") == "qwen2",  # Qwen2 has q/k/v biases, unsaid
            max_positions=int(config.get("max_position_embeddings") or 4096),
        )

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> dict[str, tuple[int, int]]:
        """Each linear of one layer: name -> (in features, out features)."""
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
                "o_proj": (self.q_dim, h), "gate_proj": (h, i), "up_proj": (h, i),
                "down_proj": (i, h)}

    @property
    def layer_parameters(self) -> int:
        bias = self.q_dim + 2 * self.kv_dim if self.attention_bias else 0
        return sum(a * b for a, b in self.linears().values()) + bias + 2 * self.hidden

    @property
    def embedding_parameters(self) -> int:
        return self.vocab * self.hidden

    @property
    def parameters(self) -> int:
        """Embedding + layers + final norm + lm_head (when not tied to the embedding)."""
        head = 0 if self.tied else self.embedding_parameters
        return self.embedding_parameters + self.layers * self.layer_parameters + self.hidden + head

    @property
    def largest_tensor(self) -> int:
        return max(self.embedding_parameters, *(a * b for a, b in self.linears().values()))

    def kv_bytes_per_token(self, element: int, tensor_parallel: int = 1) -> int:
        """K and V of every layer for one token on one GPU (heads split over the shards,
        replicated when there are fewer key/value heads than shards)."""
        heads = max(1, self.kv_heads // tensor_parallel)
        return 2 * self.layers * heads * self.head_dim * element

    def lora_parameters(self, r: int, targets: list[str] | str) -> int:
        linears = self.linears()
        names = list(linears) if targets == "all-linear" else [t for t in targets if t in linears]
        return self.layers * sum(r * (linears[n][0] + linears[n][1]) for n in names)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "parameters": self.parameters,
                "hidden_size": self.hidden, "num_hidden_layers": self.layers,
                "num_attention_heads": self.heads, "num_key_value_heads": self.kv_heads,
                "head_dim": self.head_dim, "intermediate_size": self.intermediate,
                "vocab_size": self.vocab, "tie_word_embeddings": self.tied}


def _llama(hidden: int, layers: int, heads: int, kv: int, inter: int, vocab: int,
           tied: bool = False, positions: int = 4096, **more: Any) -> dict[str, Any]:
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "intermediate_size": inter, "vocab_size": vocab,
            "tie_word_embeddings": tied, "max_position_embeddings": positions, **more}


#: The paper's students (and the builtin one) when their config.json is not on this machine:
#: the values of their hub config.json files.
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "meta-llama/llama-2-7b-hf": _llama(4096, 32, 32, 32, 11008, 32000),
    "meta-llama/llama-2-7b-chat-hf": _llama(4096, 32, 32, 32, 11008, 32000),
    "mistralai/mistral-7b-instruct-v0.2": _llama(4096, 32, 32, 8, 14336, 32000, positions=32768),
    "qwen/qwen2.5-1.5b-instruct": _llama(1536, 28, 12, 2, 8960, 151936, tied=True,
                                         positions=32768, model_type="qwen2"),
    "huggingfacetb/smollm2-135m-instruct": _llama(576, 30, 9, 3, 1536, 49152, tied=True,
                                                  positions=8192),
}


def model_shape(model: str, base_dir: Path) -> ModelShape | None:
    """The student's shape: its config.json here (a folder, a converted builtin), in the hub
    cache, or the builtin table; None when none of them knows it."""
    config = local_model_config(model, base_dir)
    alias = builtin_model_alias(model)
    if config is not None:
        return _shape(config, model, "builtin model" if alias else "local folder")
    hub_id = BUILTIN_MODELS[alias].hub_id if alias in BUILTIN_MODELS else None
    repo = hub_id or model
    if alias is None:
        cached = _hub_cached_config(repo)
        if cached is not None:
            return _shape(cached, model, "hub cache")
    known = KNOWN_MODELS.get((repo or "").lower())
    return _shape(known, model, "fairspec's table of the paper's students") if known else None


def _shape(config: dict[str, Any], name: str, source: str) -> ModelShape | None:
    try:
        return ModelShape.from_config(config.get("text_config", config), name, source)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _hub_cached_config(repo: str) -> dict[str, Any] | None:
    """config.json of ``repo`` when the hub cache holds it (never the network)."""
    if repo.startswith((".", "/", "~")) or repo.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    path = try_to_load_from_cache(repo, "config.json")
    if not isinstance(path, str):
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
