"""Stage fingerprints: sha256 of canonical JSON of what decides a stage's outputs.

What goes in: the stage's output-deciding settings, its template sources (as hashes),
its inputs' fingerprints and the fairspec version. What never goes in: API keys or the
names of their variables, batch sizes, concurrency, rate limits, timeouts, paths of the
output folder; none of them changes what a stage produces.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fairspec import __version__
from fairspec.secrets import find_key_like


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: the same data always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(stage: str, identity: Mapping[str, Any], inputs: Sequence[str] = ()) -> str:
    """The fingerprint of ``stage`` given what decides its outputs and its inputs' fingerprints."""
    text = canonical_json(
        {"stage": stage, "fairspec": __version__, "identity": identity, "inputs": list(inputs)}
    )
    if find_key_like(text):  # defence in depth: the spec loader already refuses key-like text
        raise ValueError(f"refusing to fingerprint {stage}: its settings contain key-like text")
    return sha256_text(text)
