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

from fairspec.artifacts import write_jsonl

REPO = Path(__file__).resolve().parents[2]


def write_spec(folder: Path, url: str) -> Path:
    teachers = "\n".join(
        f"  - {{name: {n}, provider: openai, model: gpt-{n}, base_url: \"{url}\", api_key_env: KATAN_KEY,"
        f" concurrency: 2}}" for n in ("a", "b", "c"))
    spec = folder / "spec.yaml"
    spec.write_text(f"""
fairspec: 1
name: interrupt
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini, limit: {{train: 8}}}}
  fields: {{question: question_concat, answer: Answer}}
student: {{model: builtin:smollm2-135m-instruct, hardware: {{device: cpu}}}}
teachers:
{teachers}
output_dir: runs
""")
    rows = [json.loads(line) for line in
            (REPO / "fairspec/resources/data/svamp-mini/train.jsonl").read_text().splitlines()[:8]]
    write_jsonl(folder / "runs" / "interrupt" / "exam" / "mistakes.jsonl", [
        {"index": i, "fields": {"question": r["question_concat"]}, "gold": r["Answer"],
         "gold_text": f"{r['Answer']:g}", "output": "The answer is 7.", "prediction": 7.0,
         "correct": False} for i, r in enumerate(rows)])
    return spec


def stored(folder: Path) -> int:
    try:
        with sqlite3.connect(folder / "runs" / "calls.sqlite") as db:
            return db.execute("select count(*) from calls where status != 'error'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_ctrl_c_stops_cleanly_and_the_rerun_finishes(tmp_path, start_katan):
    server = start_katan("--latency-ms", "250")
    spec = write_spec(tmp_path, server.openai_url)
    env = {**os.environ, "KATAN_KEY": "sk-test-not-a-real-key-000000"}
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
