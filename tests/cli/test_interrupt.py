"""Ctrl-C during `fairspec run`: a clean stop (exit 130, one line saying what is saved, no
traceback), every completed teacher call kept, and a rerun that finishes the stage."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from katan_runs import KEY_ENV, TEST_KEY, committee, spec_text, svamp_mistakes, write_mistakes, write_spec

pytestmark = pytest.mark.slow  # kills or interrupts child processes


def write_interrupt_spec(folder: Path, url: str) -> Path:
    """Teachers a, b and c on ``url``; 8 svamp-mini mistakes in the run folder ``runs/interrupt``."""
    spec = write_spec(folder, spec_text(committee(url, ("a", "b", "c"), concurrency=2), name="interrupt",
                                        limit="{train: 8}", output_dir="runs"))
    write_mistakes(folder / "runs" / "interrupt", svamp_mistakes(8))
    return spec


def stored(folder: Path) -> int:
    try:
        with sqlite3.connect(folder / "runs" / "calls.sqlite") as db:
            return db.execute("select count(*) from calls where status != 'error'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_ctrl_c_stops_cleanly_and_the_rerun_finishes(tmp_path, start_katan):
    server = start_katan("--latency-ms", "250")
    spec = write_interrupt_spec(tmp_path, server.openai_url)
    env = {**os.environ, KEY_ENV: TEST_KEY}
    command = [sys.executable, "-m", "fairspec.cli", "run", str(spec), "--only", "teach"]
    child = subprocess.Popen(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while stored(tmp_path) < 6 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, "the stage ended before it could be interrupted"
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, out + err
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("interrupted:"))
    saved = stored(tmp_path)
    assert f"{saved} teacher call(s) saved" in line and "0/7 stages complete" in line
    assert 6 <= saved < 8 * 3 * 2
    again = subprocess.run(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert stored(tmp_path) == 8 * 3 * 2
    teach = json.loads((tmp_path / "runs" / "interrupt" / "teach" / "stats.json").read_text())
    assert teach["calls_made"] == 8 * 3 * 2 - saved  # the saved calls were not asked again
