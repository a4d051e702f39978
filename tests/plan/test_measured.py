"""Tests for fairspec.plan.measured: what the run folder and the call store measured, and
nothing (the priors stand) while a file it reads is missing or damaged, never more."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from katan_runs import svamp_mistakes

import fairspec.plan.measured as measured
from fairspec.artifacts import write_jsonl
from fairspec.dsl import load_spec
from fairspec.plan import Environment, compile_plan
from fairspec.plan.measured import measured_output_tokens
from fairspec.store import CallStore

REPO = Path(__file__).resolve().parents[2]


def finished_exam(tmp_path: Path, rows: list[dict]):
    """The quickstart's main run in ``tmp_path/run`` with a finished exam of ``rows``."""
    loaded = load_spec(REPO / "specs" / "quickstart.yaml")
    plan = compile_plan(loaded, Environment(cuda_devices=0, vllm=False))
    run = replace(plan.runs[0], run_dir=str(tmp_path / "run"))
    exam = tmp_path / "run" / "exam"
    write_jsonl(exam / "mistakes.jsonl", rows)
    (exam / "manifest.json").write_text(json.dumps({"fingerprint": run.stage("exam").fingerprint}))
    return loaded, run


def junk_line(path: Path) -> None:
    path.write_text("{not json\n" + path.read_text())


def no_fields(path: Path) -> None:
    write_jsonl(path, [{"index": 0, "output": "7", "gold_text": "8"}])


@pytest.mark.parametrize("damage", ["store", "junk line", "no fields"])
def test_a_damaged_store_or_exam_measures_nothing_and_says_why(tmp_path, caplog, damage):
    loaded, run = finished_exam(tmp_path, svamp_mistakes(2))
    store = tmp_path / "calls.sqlite"
    CallStore(store).close()
    mistakes = tmp_path / "run" / "exam" / "mistakes.jsonl"
    {"store": lambda: store.write_bytes(b"not a store" * 100),
     "junk line": lambda: junk_line(mistakes), "no fields": lambda: no_fields(mistakes)}[damage]()
    with caplog.at_level(logging.INFO, logger="fairspec.plan.measured"):
        assert measured_output_tokens(run, loaded.base_dir, store) == {}
    assert "no output lengths measured for quickstart" in caplog.text


def test_nothing_stored_yet_measures_nothing_and_an_unexpected_error_is_not_hidden(
        tmp_path, caplog, monkeypatch):
    loaded, run = finished_exam(tmp_path, svamp_mistakes(2))
    store = tmp_path / "calls.sqlite"
    CallStore(store).close()
    with caplog.at_level(logging.INFO, logger="fairspec.plan.measured"):
        assert measured_output_tokens(run, loaded.base_dir, store) == {}
    assert "no output lengths measured" not in caplog.text

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the lookup")

    monkeypatch.setattr(measured, "completed_calls", broken)
    measured._teacher_calls.cache_clear()
    with pytest.raises(RuntimeError, match="a bug in the lookup"):
        measured_output_tokens(run, loaded.base_dir, store)
