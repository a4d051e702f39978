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

The pipeline is run once per test run by the session fixture ``crash_runs``
(``kill_runs.crash_and_reference``; tests/reliability/test_rounds.py starts from it too);
this test asserts what it saw.
"""

from __future__ import annotations

import json

import pytest
from katan_runs import TEACHERS
from kill_runs import CONCURRENCY, CrashRuns

pytestmark = pytest.mark.slow

IN_FLIGHT_MAX = CONCURRENCY * len(TEACHERS)
SAME_FILES = ("exam/exam.jsonl", "exam/mistakes.jsonl", "teach/rationales.jsonl", "teach/feedback.jsonl",
              "review/reviews.jsonl", "review/accepted.jsonl", "build/preview.jsonl",
              "evaluate/predictions-base.jsonl", "evaluate/predictions-tuned.jsonl",
              "evaluate/metrics.json")


def test_kill_nine_in_every_stage_changes_no_output_and_pays_no_call_twice(crash_runs: CrashRuns):
    done = crash_runs
    crashed, reference, landed = done.crashed, done.reference, done.landed
    assert sum(landed) >= 3, f"too few kills landed inside their stage: {landed}"
    assert done.integrity == "ok"
    # an answer the server sent while the run was being killed may never have been stored:
    # at most the calls in flight at the two teacher-stage kills
    unstored = done.unstored
    assert 0 <= unstored <= 2 * IN_FLIGHT_MAX
    keys = done.keys
    answered = done.answered
    # the last run asked the server only for calls the store lacked: a stored call asked
    # again (a lost lookup, a key that changed between runs) makes answered larger
    assert answered - len(keys) == unstored
    # the store holds the calls the outputs were made from and no other: a call asked twice
    # under two keys, or an answer stored but not used, breaks it (two reviews of identical
    # echoed rationales are one call, so the outputs may name a key twice)
    assert set(keys) == set(done.output_keys)

    assert done.reference_answered == answered  # the reference asked nothing: same answers, same calls
    assert sorted(done.reference_keys) == sorted(keys)
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
