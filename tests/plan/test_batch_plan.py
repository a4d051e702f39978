"""``batch: true`` in the spec: where it applies (and why not elsewhere), its prices in the
plan and the compiled teacher settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from katan_runs import spec_text, teacher_line

from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError
from fairspec.plan import Environment, compile_plan
from fairspec.plan.estimate import estimate_run

REPO = Path(__file__).resolve().parents[2]
URL = "http://127.0.0.1:9/v1"
PRICE = "{input_per_mtok: 2.0, output_per_mtok: 8.0}"


def committee(**gpt) -> str:
    return (teacher_line("gpt", URL, price=PRICE, **gpt)
            + teacher_line("gem", URL.replace("/v1", "/"), provider="gemini", price=PRICE))


def findings(text: str, tmp_path: Path) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, base_dir=tmp_path)
    return str(caught.value)


def test_batch_is_refused_where_no_batch_api_answers_with_the_reason(tmp_path):
    hf = "  - {name: local, provider: hf, model: builtin:smollm2-135m-instruct, batch: true}\n"
    text = findings(spec_text(committee() + hf), tmp_path)
    assert "batch: true does not apply to provider 'hf'" in text
    assert "already batches the requests" in text
    replay = "  - {name: old, provider: replay, model: m, replay_file: calls.jsonl, batch: true}\n"
    (tmp_path / "calls.jsonl").write_text("")
    assert "answers from its file" in findings(spec_text(committee() + replay), tmp_path)
    vertex = ("  - {name: vx, provider: gemini, model: g, vertex: {project: p}, batch: true, "
              f"price: {PRICE}}}\n")
    assert "Vertex AI's batch prediction" in findings(spec_text(committee() + vertex), tmp_path)


def test_batch_price_needs_batch(tmp_path):
    text = findings(spec_text(committee(batch_price=PRICE)), tmp_path)
    assert "batch_price applies only with batch: true" in text


def test_batch_teachers_are_priced_at_half_unless_set_and_the_plan_shows_both(tmp_path):
    explicit = "{input_per_mtok: 1.5, output_per_mtok: 1.5}"
    loaded = load_spec_text(spec_text(committee(batch="true")), base_dir=tmp_path)
    plan = compile_plan(loaded, Environment(cuda_devices=0, vllm=False))
    teach = {t["name"]: t for t in plan.runs[0].stage("teach").settings["teachers"]}
    assert teach["gpt"]["batch"] is True and teach["gem"]["batch"] is False
    assert teach["gpt"]["price"] == {"input_per_mtok": 1.0, "output_per_mtok": 4.0}
    assert teach["gpt"]["online_price"] == {"input_per_mtok": 2.0, "output_per_mtok": 8.0}
    assert teach["gem"]["price"] == teach["gem"]["online_price"]
    online = compile_plan(load_spec_text(spec_text(committee()), base_dir=tmp_path),
                          Environment(cuda_devices=0, vllm=False))
    # batch is how calls are sent, not what they answer: the same stages and call keys
    assert [s.fingerprint for s in online.runs[0].stages] == \
        [s.fingerprint for s in plan.runs[0].stages]

    est = {t.name: t for t in estimate_run(plan.runs[0], tmp_path,
                                           mistakes=100).teachers}
    assert est["gpt"].batch and est["gpt"].online_usd == pytest.approx(2 * est["gpt"].usd)
    assert not est["gem"].batch and est["gem"].online_usd is None
    set_price = load_spec_text(spec_text(committee(batch="true", batch_price=explicit)),
                               base_dir=tmp_path)
    priced = compile_plan(set_price, Environment(cuda_devices=0, vllm=False))
    assert priced.runs[0].stage("teach").settings["teachers"][0]["price"] == \
        {"input_per_mtok": 1.5, "output_per_mtok": 1.5}


@pytest.mark.slow
def test_fairspec_plan_prints_online_and_batch_cost_and_the_review_waves(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(committee(batch="true") + teacher_line("third", URL, price=PRICE)))
    shown = subprocess.run([sys.executable, "-m", "fairspec.cli", "plan", str(spec),
                            "--mistakes", "100"], capture_output=True, text=True, cwd=REPO,
                           env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "online USD" in out and "batch" in out and "online" in out
    assert "Batch mode (gpt)" in out and "waves" in out
    data = json.loads(subprocess.run(
        [sys.executable, "-m", "fairspec.cli", "plan", str(spec), "--mistakes", "100", "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120).stdout)
    teachers = {t["name"]: t for t in data["runs"][0]["calls"]["teachers"]}
    assert teachers["gpt"]["batch"] is True
    assert teachers["gpt"]["online_usd"] == pytest.approx(2 * teachers["gpt"]["usd"])
