"""Seeded teachers: two fresh runs of the quickstart (new output folders, same machine) write
byte-identical teach and review outputs, because every call samples with a seed derived from
the spec's seed and the call's key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_runs import TinyRun, tiny_spec

OUTPUTS = ("teach/rationales.jsonl", "teach/feedback.jsonl", "review/reviews.jsonl")

pytestmark = pytest.mark.slow


def quickstart(folder: Path) -> Path:
    """A fresh run of the tiny quickstart (``tiny_runs.tiny_spec``) in ``folder``, up to review."""
    spec = tiny_spec(folder)
    assert "limit: {train: 4, test: 3}" in spec.read_text()
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "run", "spec.yaml", "--variant", "main",
                           "--until", "review"],
                          cwd=folder, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL,
                          env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "runs" / "quickstart"


def test_two_fresh_quickstart_runs_write_the_same_teach_and_review_bytes(quickstart_run: TinyRun,
                                                                        tmp_path: Path) -> None:
    # the first fresh run is the one shared by the session (tests/conftest.py), in its own folder
    first, second = quickstart_run.run_dir, quickstart(tmp_path / "two")
    assert first.parent.parent != second.parent.parent
    mistakes = (first / "exam" / "mistakes.jsonl").read_text().count("\n")
    assert mistakes >= 2  # something was taught and reviewed
    for name in OUTPUTS:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # (that another seed samples another reply: tests/providers/test_hf.py)
