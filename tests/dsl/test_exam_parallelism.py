"""The exam's parallel layout at validate: hf runs ``data_parallel`` replicas of one device
each, and a ``tensor_parallel`` it would ignore is an error at that key's line."""

from __future__ import annotations

import pytest
from katan_runs import committee, spec_text, write_spec

from fairspec.dsl import load_spec
from fairspec.errors import SpecError

STUDENT = """
  model: builtin:smollm2-135m-instruct
  exam: {{engine: {engine}}}
  hardware:
    device: cuda
    gpus: 4
    tensor_parallel: {tp}
    data_parallel: {dp}"""


def spec(tmp_path, engine: str, tp: int, dp: int):
    return write_spec(tmp_path, spec_text(committee("http://127.0.0.1:9/v1"),
                                          student=STUDENT.format(engine=engine, tp=tp, dp=dp)))


def test_tensor_parallel_with_the_hf_engine_is_an_error_at_its_line(tmp_path):
    path = spec(tmp_path, "hf", 2, 1)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    found = [p for p in caught.value.problems if p.path == "student.hardware.tensor_parallel"]
    assert len(found) == 1, "\n".join(p.format() for p in caught.value.problems)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if "tensor_parallel:" in text)
    assert found[0].line == line
    assert "the exam engine is hf" in found[0].message and "engine: vllm" in found[0].hint


@pytest.mark.parametrize(("engine", "tp", "dp"), [("hf", 1, 4), ("vllm", 3, 1), ("auto", 1, 4)])
def test_layouts_an_engine_can_run_are_accepted(tmp_path, engine, tp, dp):
    assert load_spec(spec(tmp_path, engine, tp, dp)).spec.student.hardware.data_parallel == dp
