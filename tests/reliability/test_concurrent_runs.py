"""One run per output folder at a time: a second ``fairspec run`` of the same spec while the
first is asking its teachers stops with exit 2 naming the first (pid, host), before it asks
anything, so the server sees each call once; the lock is the kernel's, so a killed holder
leaves none behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile import SlowTeacher, recorded_exam_spec
from katan_runs import KEY_ENV, TEST_KEY, teacher_line
from strict_openai import StrictOpenAI

from fairspec.errors import OutputBusy
from fairspec.run.lock import HOLDER_NAME, hold_output

HOLD = """
import sys, time
from pathlib import Path
from fairspec.run.lock import hold_output
with hold_output(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def holding(folder: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_holder_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path):
    child = holding(tmp_path / "runs")
    try:
        with pytest.raises(OutputBusy) as busy, hold_output(tmp_path / "runs"):
            pass
        assert f"pid {child.pid} on " in str(busy.value) and "twice" in str(busy.value)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    # the kernel released the lock with the process: the next run takes it
    with hold_output(tmp_path / "runs"):
        held = json.loads((tmp_path / "runs" / HOLDER_NAME).read_text())
        assert held["pid"] == os.getpid()
    assert not (tmp_path / "runs" / HOLDER_NAME).exists()


@pytest.mark.slow
def test_two_runs_of_one_spec_at_once_ask_each_call_once(tmp_path):
    with StrictOpenAI(key=TEST_KEY) as server:
        server.reply = SlowTeacher(2.0)
        command = recorded_exam_spec(tmp_path, teacher_line("alpha", server.url, model="gpt-4o",
                                                            concurrency=1)
                                     + teacher_line("beta", server.url, model="gpt-4.1",
                                                    concurrency=1))
        env = {**os.environ, KEY_ENV: TEST_KEY}
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 120
            while not server.reply.asked:
                assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
                time.sleep(0.05)
            second = subprocess.run(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                                    capture_output=True, text=True, timeout=120)
            assert first.poll() is None  # the second run ended while the first still asked
            assert first.wait(timeout=120) == 0, first.stdout.read()
        finally:
            if first.poll() is None:
                first.kill()
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"pid {first.pid} on " in second.stderr and "in use by" in second.stderr
    assert "Traceback" not in second.stderr
    # 4 mistakes x 2 teachers x (rationale + feedback): each asked once, by the first run
    assert len(server.reply.asked) == 16 == len(set(server.reply.asked))
    third = subprocess.run(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "already done" in third.stdout
    assert len(server.reply.asked) == 16
