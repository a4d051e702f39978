"""Today's committee through ``fairspec run --until review``: an OpenAI reasoning model, a
Claude 4.5-class model and a thinking Gemini, each behind a strict local stand-in of its API
(tests/support/strict_*.py) that refuses what the real service refuses. No call may get a
400 or come back empty; the same spec with a sampling value on the reasoning model fails
validate at that line.

The exam is the FAIR authors' recorded SVAMP exam (6 mistakes, no model run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from recorded_runs import live_committee_spec
from strict_anthropic import StrictAnthropic
from strict_gemini import StrictGemini
from strict_openai import StrictOpenAI

from fairspec.artifacts import read_jsonl

pytestmark = pytest.mark.slow

KEY = "fairspec-marker-today-7d1e"
MISTAKES = 6


@pytest.fixture(scope="module")
def standins() -> Iterator[dict[str, object]]:
    servers = {"openai": StrictOpenAI(key=KEY), "gemini": StrictGemini(key=KEY),
               "anthropic": StrictAnthropic(key=KEY)}
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def committee(servers: dict, reasoner_generation: str = "{reasoning_effort: low}") -> str:
    out = (f'  - {{name: reasoner, provider: openai, model: o4-mini, base_url: "{servers["openai"].url}",\n'
           f"     api_key_env: TODAY_KEY, max_retries: 1, generation: {reasoner_generation},\n"
           "     price: {input_per_mtok: 1.1, output_per_mtok: 4.4, cached_input_per_mtok: 0.275}}\n"
           "  - {name: gem, provider: gemini, model: gemini-2.5-flash,\n"
           f'     base_url: "{servers["gemini"].url}",\n'
           "     api_key_env: TODAY_KEY, max_retries: 1,\n"
           "     price: {input_per_mtok: 0.3, output_per_mtok: 2.5, cached_input_per_mtok: 0.03}}\n")
    out += (f'  - {{name: claude, provider: anthropic, model: claude-sonnet-4-5, '
            f'base_url: "{servers["anthropic"].url}",\n'
            "     api_key_env: TODAY_KEY, max_retries: 1, generation: {thinking: 2048},\n"
            "     price: {input_per_mtok: 3.0, output_per_mtok: 15.0, cached_input_per_mtok: 0.3}}\n")
    return out


def write_spec(folder: Path, teachers: str) -> Path:
    return live_committee_spec(folder, "today", teachers, generation="generation: {max_tokens: 256}\n")


def fairspec(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fairspec.cli", *args], cwd=folder,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, "TODAY_KEY": KEY, "OMP_NUM_THREADS": "1"})


def test_todays_committee_runs_until_review_with_no_400_and_no_empty_reply(standins, tmp_path) -> None:
    spec = write_spec(tmp_path, committee(standins))
    done = fairspec(tmp_path, "run", str(spec), "--until", "review")
    assert done.returncode == 0, done.stderr[-4000:]
    for name, server in standins.items():
        statuses = [r.status for r in server.received]
        assert statuses and set(statuses) == {200}, (name, [r.body for r in server.received
                                                            if r.status != 200][:2])
    run = tmp_path / "runs" / "today"
    teachers = len(standins)
    rows = [*read_jsonl(run / "teach" / "rationales.jsonl"), *read_jsonl(run / "teach" / "feedback.jsonl")]
    assert len(rows) == 2 * MISTAKES * teachers
    assert all(r["text"].strip() for r in rows), [r for r in rows if not r["text"].strip()][:1]
    reviews = list(read_jsonl(run / "review" / "reviews.jsonl"))
    assert reviews and all(r["text"].strip() for r in reviews)
    # what the reasoning model was sent: its own shape, a seed per call, never a sampling value
    bodies = [r.body for r in standins["openai"].received]
    assert all("max_tokens" not in b and "temperature" not in b and "top_p" not in b for b in bodies)
    assert all(b["max_completion_tokens"] == 256 + 4096 and b["reasoning_effort"] == "low"
               for b in bodies)
    assert len({b["seed"] for b in bodies}) == len(bodies)
    thinking = [r.body["generationConfig"] for r in standins["gemini"].received]
    assert all(c["maxOutputTokens"] == 256 + 8192 for c in thinking)
    claude = [r.body for r in standins["anthropic"].received]
    assert claude and all(b["max_tokens"] == 256 + 2048 and b["thinking"]["budget_tokens"] == 2048
                          and "temperature" not in b and "top_p" not in b for b in claude)


def test_a_sampling_value_on_the_reasoning_model_fails_validate_at_its_line(standins, tmp_path) -> None:
    spec = write_spec(tmp_path, committee(standins, "{temperature: 0.3}"))
    done = fairspec(tmp_path, "validate", str(spec))
    assert done.returncode == 2
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1)
                if "generation: {temperature: 0.3}" in text)
    assert f"spec.yaml:{line}:" in done.stderr
    assert "teachers[0].generation.temperature" in done.stderr and "refuses temperature 0.3" in done.stderr


def test_a_reply_its_thoughts_used_up_is_recorded_cut_and_counted(standins, tmp_path) -> None:
    """A reasoning model that thinks past its allowance answers nothing (finish reason
    length): recorded as truncated, counted per teacher in the teach stage's stats."""
    standins["openai"].set_reasoning_tokens("o4-mini", low=256 + 4096)  # the whole budget
    try:
        spec = write_spec(tmp_path, committee(standins))
        done = fairspec(tmp_path, "run", str(spec), "--until", "teach")
    finally:
        standins["openai"].set_reasoning_tokens("o4-mini", low=64)
    assert done.returncode == 0, done.stderr[-4000:]
    stats = json.loads((tmp_path / "runs" / "today" / "teach" / "stats.json").read_text())
    assert stats["cut"] == {"reasoner": {"truncated": 2 * MISTAKES, "empty": 0,
                                         "finish_reasons": {"length": 2 * MISTAKES}}}
    assert stats["teachers"]["reasoner"]["reasoning_tokens"] == 2 * MISTAKES * (256 + 4096)
