"""`fairspec run` as a child process to kill, and what its call store and outputs hold: one
copy for tests/reliability/test_crash.py and test_rounds.py."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from katan_runs import KEY_ENV, TEST_KEY

#: how long a child run may take to reach a stage (and twice that to finish)
WAIT_S = 240.0


def stored_keys(folder: Path) -> list[str]:
    """The keys of the calls the store under ``folder/runs`` holds (errors left out)."""
    try:
        with sqlite3.connect(folder / "runs" / "calls.sqlite") as db:
            return [k for (k,) in db.execute("select key from calls where status != 'error'")]
    except sqlite3.Error:
        return []


def output_keys(run_dir: Path) -> list[str]:
    """The call key of every rationale, feedback and review the run's outputs hold (of the
    round whose folder ``run_dir`` is: the run folder for round 1, ``round-2/`` for round 2)."""
    files = ("teach/rationales.jsonl", "teach/feedback.jsonl", "review/reviews.jsonl")
    return [json.loads(line)["key"] for name in files if (run_dir / name).exists()
            for line in (run_dir / name).read_text().splitlines() if line.strip()]


def start(folder: Path, spec: Path) -> subprocess.Popen:
    """``fairspec run spec`` in ``folder`` with the test key, its output in ``child.log``."""
    env = {**os.environ, KEY_ENV: TEST_KEY, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    log_file = (folder / "child.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "fairspec.cli", "run", str(spec)], cwd=folder,
                            env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)


def run_to_end(folder: Path, spec: Path, wait_s: float = WAIT_S) -> None:
    child = start(folder, spec)
    assert child.wait(timeout=wait_s * 2) == 0, (folder / "child.log").read_text()[-3000:]


def kill_when(folder: Path, spec: Path, ready: Callable[[], bool], stage_dir: Path,
              delay: tuple[float, float], what: str, wait_s: float = WAIT_S) -> bool:
    """Start the run, SIGKILL it a random ``delay`` after ``ready()`` holds; whether the kill
    landed before the stage in ``stage_dir`` finished (``what`` names it in failures)."""
    child = start(folder, spec)
    try:
        deadline = time.monotonic() + wait_s
        while not ready():
            assert child.poll() is None, (folder / "child.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"the run never reached {what}"
            time.sleep(0.02)
        time.sleep(random.uniform(*delay))
        landed = not (stage_dir / "manifest.json").exists()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=60)
    return landed


def copy_store(source: Path, target: Path) -> None:
    """``source/runs/calls.sqlite`` copied (consistently, by SQLite's backup) to ``target``."""
    (target / "runs").mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source / "runs" / "calls.sqlite") as a, \
            sqlite3.connect(target / "runs" / "calls.sqlite") as b:
        a.backup(b)
