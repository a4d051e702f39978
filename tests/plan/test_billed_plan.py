"""`fairspec plan`'s teachers table shows what cached input is billed at and the thinking a
call may spend (billed as output); its JSON gives each teacher's cached input price."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from katan_runs import spec_text, teacher_line

REPO = Path(__file__).resolve().parents[2]
URL = "http://127.0.0.1:9/v1"


@pytest.mark.slow
def test_the_plan_shows_cached_and_reasoning_columns_per_teacher(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(
        teacher_line("think", URL, model="o3-mini",  # a reasoning model: 8192 tokens by default
                     price="{input_per_mtok: 2.0, cached_input_per_mtok: 0.5, output_per_mtok: 8.0}")
        + teacher_line("chat", URL, model="gpt-4o", price="{input_per_mtok: 2.5, output_per_mtok: 10.0}")
        + "  - {name: local, provider: hf, model: builtin:smollm2-135m-instruct}\n"))
    shown = subprocess.run([sys.executable, "-m", "fairspec.cli", "plan", str(spec),
                            "--mistakes", "100"], capture_output=True, text=True, cwd=REPO,
                           env={"COLUMNS": "220", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert shown.returncode == 0, shown.stderr
    rows = {cells[0]: cells for line in shown.stdout.splitlines()
            if (cells := [c.strip() for c in re.split(r"[│┃]", line)[1:-1]])}
    header = rows["teacher"]
    cached, reasoning = header.index("cached in"), header.index("reasoning")
    assert header.index("in tokens") < cached < header.index("out tokens") < reasoning
    assert (rows["think"][cached], rows["think"][reasoning]) == ("$0.5/M", "up to 8,192/call")
    assert (rows["chat"][cached], rows["chat"][reasoning]) == ("$2.5/M (= input)", "none")
    assert (rows["local"][cached], rows["local"][reasoning]) == ("-", "none")
    # what thinking at its allowance would add: think's calls x 8192 tokens x $8/M, no other
    calls = int(rows["think"][header.index("calls")].replace(",", ""))
    line = next(line for line in shown.stdout.splitlines() if line.startswith("Thinking is billed"))
    assert f"think ${calls * 8192 * 8.0 / 1e6:,.2f}" in line and "chat" not in line
    data = json.loads(subprocess.run(
        [sys.executable, "-m", "fairspec.cli", "plan", str(spec), "--mistakes", "100", "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120).stdout)
    teachers = {t["name"]: t for t in data["runs"][0]["calls"]["teachers"]}
    assert {name: t["cached_input_per_mtok"] for name, t in teachers.items()} == \
        {"think": 0.5, "chat": 2.5, "local": None}
