"""Keys never leave the environment: a full run with marker keys leaves them in no file and no
log line, even with --debug, and with trackers on (TensorBoard event files, an MLflow store)
(the log filter itself is tested in tests/test_secrets.py)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from katan_runs import ECHOED_REVIEW, spec_text, teacher_line, write_spec


def leaked(folder: Path, markers: list[str]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {m[:8]}..." for m in markers if m.encode() in data]
    return found


@pytest.mark.slow
def test_a_full_debug_run_with_marker_keys_leaves_them_nowhere(tmp_path, katan, small_student) -> None:
    openai_key = "sk-proj-" + secrets.token_hex(20)
    gemini_key = "AIza" + secrets.token_hex(18)
    teachers = (teacher_line("gpt", katan.openai_url, model="gpt-4o-x", key_env="LEAK_OPENAI")
                + teacher_line("gem", katan.gemini_url, provider="gemini", model="gemini-x",
                               key_env="LEAK_GEMINI"))
    spec = write_spec(tmp_path, spec_text(
        teachers, name="secrets", limit="{train: 3, test: 2}",
        student=f"{{model: {small_student}, exam: {{engine: hf, max_new_tokens: 16}}, "
                "hardware: {device: cpu}}",
        generation="{max_tokens: 24}", training="{epochs: 1, batch_size: 2, max_seq_length: 192, "
                 "report_to: [tensorboard, mlflow]}",
        evaluation="{decoding: greedy}", output_dir="runs",
        # llm-katan echoes the prompt: this one's echo states a score, so reviews accept
        prompts=f"{{review: {ECHOED_REVIEW}}}"))
    # the trackers write into tmp_path too: the Trainer's and fairspec's tracker files
    env = {**os.environ, "LEAK_OPENAI": openai_key, "LEAK_GEMINI": gemini_key,
           "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "run", str(spec), "--debug"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "secrets"
    assert (run_dir / "report" / "manifest.json").is_file() and (run_dir / "record" / "calls.jsonl").is_file()
    assert "DEBUG" in done.stderr  # the debug log really ran
    log = done.stdout + done.stderr
    assert openai_key not in log and gemini_key not in log
    tracker_files = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(tracker_files) == 2 and any((tmp_path / "mlruns").rglob("metrics/loss"))
    assert leaked(tmp_path, [openai_key, gemini_key]) == []
    # the same with the keys' variable names: plans and records name the variables only
    record_spec = (run_dir / "record" / "spec.yaml").read_text()
    assert "LEAK_OPENAI" in record_spec and openai_key not in record_spec
