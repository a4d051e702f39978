"""The tiny quickstart run that many tests only read: made once per test run, one copy.

``tests/conftest.py`` wraps :func:`finish` in the session-scoped ``quickstart_run`` fixture: the tiny
quickstart's main run through ``fairspec run`` in a child process, with trackers on, in a
fresh model cache (so the run converts the builtin GGUF itself, and its console shows
whether it did so quietly). Tests that only read the run folder, the record, the report, the
console or the call store inspect that one run instead of paying for their own pipeline.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STAGES = ("exam", "teach", "review", "build", "train", "evaluate", "report")


@dataclass(frozen=True)
class TinyRun:
    """A finished tiny quickstart: its ``folder`` (spec.yaml, runs/, cache/, mlruns/,
    console.txt) and its ``spec``."""

    folder: Path
    spec: Path

    @property
    def run_dir(self) -> Path:
        return self.folder / "runs" / "quickstart"

    @property
    def console(self) -> str:
        return (self.folder / "console.txt").read_text()


def tiny_spec(folder: Path) -> Path:
    """specs/quickstart.yaml shrunk to 4 exam and 3 test rows, short replies, trackers on, the
    eager attention kernel, review threshold 1 (every rationale kept, so train runs) and an
    ``alpha-one`` variant; written to ``folder/spec.yaml``, its runs in ``folder/runs``."""
    text = (REPO / "specs" / "quickstart.yaml").read_text()
    text = (text.replace("limit: {train: 16, test: 24}", "limit: {train: 4, test: 3}")
                .replace("max_new_tokens: 192", "max_new_tokens: 24")
                .replace("  max_tokens: 128", "  max_tokens: 24")
                .replace("output_dir: ../runs", f"output_dir: {folder / 'runs'}")
                .replace("max_seq_length: 384", "max_seq_length: 192")
                .replace("training:\n", "training:\n  report_to: [tensorboard, mlflow]\n"
                                        "  attn_implementation: eager\n")
                # with logprobs every review has a score (a forced one where the reply
                # states none); threshold 1 keeps every rationale so that train runs
                .replace("  scoring: logprobs\n  threshold: 2.2", "  scoring: logprobs\n  threshold: 1")
                .replace("    set: {review.enabled: false}\n",
                         "    set: {review.enabled: false}\n"
                         "  - name: alpha-one\n    set: {training.alpha: 1.0}\n"))
    assert "alpha-one" in text and "scoring: logprobs\n  threshold: 1" in text
    assert "report_to: [tensorboard, mlflow]" in text
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(text)
    return path


def fairspec(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m fairspec.cli ARGS`` in ``cwd``, no stdin, its output captured."""
    env = {**(env if env is not None else os.environ),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.run([sys.executable, "-m", "fairspec.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=1500, env=env, stdin=subprocess.DEVNULL)


def tracking_env(folder: Path) -> dict[str, str]:
    """An MLflow file store in the test's folder (MLflow 3.18 keeps it behind a flag)."""
    return {**os.environ, "MLFLOW_TRACKING_URI": (folder / "mlruns").as_uri(),
            "MLFLOW_ALLOW_FILE_STORE": "true"}


def stored_calls(runs: Path) -> int:
    with sqlite3.connect(runs / "calls.sqlite") as db:
        return db.execute("select count(*) from calls").fetchone()[0]


def finish(folder: Path) -> TinyRun:
    """The tiny quickstart's main run in ``folder``, in a fresh model cache (``folder/cache``):
    the run itself converts the builtin GGUF (and must do it quietly)."""
    spec = tiny_spec(folder)
    env = {**tracking_env(folder), "FAIRSPEC_CACHE": str(folder / "cache")}
    done = fairspec("run", str(spec), "--variant", "main", cwd=folder, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    (folder / "console.txt").write_text(done.stdout + done.stderr)
    return TinyRun(folder, spec)

