"""`fairspec run` as a child process to kill, and what its call store and outputs hold: one
copy for tests/reliability/test_crash.py, test_rounds.py and test_train_resume.py; and the crash
pipeline (killed in every stage, then an uninterrupted reference) that test_crash.py asserts
and test_rounds.py starts its round 2 from (``crash_runs`` in tests/conftest.py, once per
test run)."""

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# ---- the crash pipeline: killed in every stage, then an uninterrupted reference ---------------

CONCURRENCY, TRAIN_ROWS = 2, 6


def write_crash_spec(folder: Path, url: str, model: str, *, rounds: str | None = None) -> Path:
    """The whole pipeline on 6 svamp-mini rows, student ``model`` (the small student of
    tests/support/small_student.py), teachers alpha, beta and gamma on ``url`` (test_crash.py);
    with ``rounds`` (a ``rounds:`` value) in several rounds (test_rounds.py), whose round 1 has
    the same stages, fingerprints included, as the single-round run."""
    from katan_runs import ECHOED_REVIEW, committee, spec_text, write_spec

    sections = {"rounds": rounds} if rounds is not None else {}
    return write_spec(folder, spec_text(
        committee(url, concurrency=CONCURRENCY, timeout_s=30), name="crash", seed=7,
        limit=f"{{train: {TRAIN_ROWS}, test: 3}}",
        student=f"{{model: {model}, exam: {{engine: hf, max_new_tokens: 32, batch_size: 2}}, "
                "hardware: {device: cpu, dtype: fp32}}",
        generation="{max_tokens: 48}",
        training="{epochs: 2, batch_size: 2, learning_rate: 1.0e-4, max_seq_length: 256}",
        evaluation="{decoding: greedy}", output_dir="runs",
        prompts=f"{{review: {ECHOED_REVIEW}}}", **sections))


def in_stage(run_dir: Path, stage: str, folder: Path) -> bool:
    """The stage has begun and is not finished; teacher stages also have a call stored."""
    stage_dir = run_dir / stage
    if not stage_dir.is_dir() or (stage_dir / "manifest.json").exists():
        return False
    if stage == "train":  # a checkpoint is saved (in the stage's work/ folder, where they survive)
        return any(any((stage_dir / sub).glob("checkpoint-*/trainer_state.json"))
                   for sub in ("work/checkpoints", "checkpoints"))
    if stage in ("teach", "review"):
        teach = run_dir / "teach"
        done_before = 0 if stage == "teach" else sum(
            len((teach / name).read_text().splitlines()) for name in ("rationales.jsonl", "feedback.jsonl"))
        return len(stored_keys(folder)) > done_before
    return True


def kill_inside(folder: Path, spec: Path, stage: str, delay: tuple[float, float]) -> bool:
    """Start the run, SIGKILL it a random moment after it is inside ``stage``; False if the
    stage ended before the kill landed."""
    run_dir = folder / "runs" / "crash"
    return kill_when(folder, spec, lambda: in_stage(run_dir, stage, folder), run_dir / stage,
                     delay, stage)


@dataclass(frozen=True)
class CrashRuns:
    """What :func:`crash_and_reference` did and saw, for test_crash.py to assert and
    test_rounds.py to start from (its round 1 is this pipeline, on the same server)."""

    model: str             #: the student (the small student's folder)
    crashed: Path          #: the killed run's folder (spec.yaml, runs/), finished by a rerun
    reference: Path        #: the uninterrupted run's folder, from a copy of the crashed store
    landed: list[bool]     #: whether each kill (exam, teach, review, train) landed in its stage
    integrity: str         #: SQLite's integrity_check of the store after the kills
    unstored: int          #: answers the server sent that the store lacks, after the kills
    answered: int          #: answers the server sent for the crashed run, finish included
    keys: list[str]        #: the crashed store's keys after the finish
    output_keys: list[str]  #: the keys the crashed run's outputs name
    reference_answered: int  #: answers the server sent once the reference had run
    reference_keys: list[str]  #: the reference store's keys


def crash_and_reference(folder: Path, server: Any, model: str) -> CrashRuns:
    """The crash pipeline in ``folder`` against ``server`` (llm-katan, 300 ms latency) with the
    student ``model``: four runs each SIGKILLed inside the next stage, a rerun to the end, then
    an uninterrupted reference run from a copy of the store. Server counts are this pipeline's
    own (the server may have answered other runs before)."""
    from katan_runs import requests_served

    crashed, reference = folder / "crashed", folder / "reference"
    crashed.mkdir()
    reference.mkdir()
    before = requests_served(server)
    spec = write_crash_spec(crashed, server.openai_url, model)
    landed = [kill_inside(crashed, spec, "exam", (1.0, 3.0)),
              kill_inside(crashed, spec, "teach", (0.0, 0.6)),
              kill_inside(crashed, spec, "review", (0.0, 0.6)),
              kill_inside(crashed, spec, "train", (0.0, 1.5))]
    with sqlite3.connect(crashed / "runs" / "calls.sqlite") as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    # an answer the server sent while the run was being killed may never have been stored
    time.sleep(1.0)  # past the server's latency: no answer to a killed run is still on its way
    unstored = requests_served(server) - before - len(stored_keys(crashed))
    run_to_end(crashed, spec)
    keys = stored_keys(crashed)
    answered = requests_served(server) - before
    outputs = output_keys(crashed / "runs" / "crash")
    copy_store(crashed, reference)
    run_to_end(reference, write_crash_spec(reference, server.openai_url, model))
    return CrashRuns(model, crashed, reference, landed, integrity, unstored, answered, keys, outputs,
                     requests_served(server) - before, stored_keys(reference))
