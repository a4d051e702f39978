"""Every builtin spec's runs (each variant, sweep point and seed) compile to the fingerprints
recorded in ``fingerprints.json``: a refactor of the compiler must not change one, or every
user's finished stages would run (and be paid for) again.

The snapshot is taken with fairspec's version pinned (the version is part of every
fingerprint on purpose, so it is not what this checks), on a CPU-only machine and on one
with four GPUs and vLLM. A change to a stage's identity that is meant (a new setting that
changes what a stage computes) rewrites the snapshot:

    python tests/plan/test_fingerprint_snapshot.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("fingerprints.json")
ENVIRONMENTS = {"cpu": {"cuda_devices": 0, "vllm": False}, "4gpu-vllm": {"cuda_devices": 4, "vllm": True}}


def spec_files() -> list[Path]:
    return sorted([*(REPO / "specs").glob("*.yaml"), *(REPO / "specs").glob("*/*.yaml")])


def fingerprints() -> dict[str, str]:
    """``spec|environment|run|stage`` -> fingerprint, with the version pinned."""
    import fairspec.hashing as hashing
    from fairspec.dsl import load_spec
    from fairspec.plan import Environment, compile_plan

    pinned, hashing.__version__ = hashing.__version__, "snapshot"
    try:
        found = {}
        for path in spec_files():
            loaded = load_spec(path)
            for env_name, env in ENVIRONMENTS.items():
                for run in compile_plan(loaded, Environment(**env)).runs:
                    for stage in run.stages:
                        name = f"{path.relative_to(REPO / 'specs')}|{env_name}|{run.name}|{stage.name}"
                        found[name] = stage.fingerprint[:16]  # enough to tell a change
        return found
    finally:
        hashing.__version__ = pinned


def test_every_builtin_spec_keeps_its_fingerprints():
    expected = json.loads(SNAPSHOT.read_text())
    found = fingerprints()
    assert len(found) > 500  # every spec compiled, not an empty walk
    assert sorted(found) == sorted(expected), "runs or stages came or went: see the module docstring"
    changed = sorted(name for name in found if found[name] != expected[name])
    assert changed == [], f"{len(changed)} fingerprints changed, first: {changed[:5]}"
    import fairspec.hashing as hashing
    from fairspec import __version__

    assert hashing.__version__ == __version__  # the pin is put back


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    SNAPSHOT.write_text(json.dumps(fingerprints(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
elif __name__ == "__main__":
    pytest.main([__file__])
