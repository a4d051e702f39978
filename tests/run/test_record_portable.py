"""A record names no absolute path: a local dataset's split files are copied into it, other
local paths are relative to it, and the exam engine and dtype are written as resolved, so
that the record's spec compiles to the same fingerprints wherever it is."""

from __future__ import annotations

import shutil

import yaml
from katan_runs import REPO, committee, spec_text

from fairspec.dsl import load_spec, load_spec_text
from fairspec.plan import Environment, compile_plan
from fairspec.run.record import record_spec

MINI = REPO / "fairspec" / "resources" / "data" / "svamp-mini"


def test_local_data_is_copied_and_the_record_compiles_the_same_anywhere(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(MINI, project / "mydata")
    (project / "student").mkdir()
    (project / "student" / "config.json").write_text("{}")
    text = spec_text(committee("http://127.0.0.1:9/v1"), student="{model: student}")
    text = text.replace("path: builtin:data/svamp-mini", "path: mydata")
    loaded = load_spec_text(text, base_dir=project)
    run = compile_plan(loaded, Environment()).runs[0]
    record = project / "runs" / "rec"
    record.mkdir(parents=True)
    data = record_spec(run, project, record)
    assert data["task"]["dataset"]["path"] == "data"
    assert sorted(p.name for p in (record / "data").iterdir()) == ["test.jsonl", "train.jsonl"]
    assert (record / "data" / "train.jsonl").read_bytes() == (MINI / "train.jsonl").read_bytes()
    assert data["student"]["model"] == "../../student"
    assert data["student"]["exam"]["engine"] == "hf"
    assert data["student"]["hardware"]["dtype"] == "fp32"
    assert str(tmp_path) not in yaml.safe_dump(data)
    (record / "spec.yaml").write_text(yaml.safe_dump(data))
    here = compile_plan(load_spec(record / "spec.yaml"), Environment()).runs[0]
    moved = tmp_path / "elsewhere" / "deep" / "rec"
    shutil.copytree(record, moved)
    there = compile_plan(load_spec(moved / "spec.yaml"), Environment(cuda_devices=8, vllm=True))
    for name in ("exam", "teach", "review", "build"):  # the GPU machine changes nothing
        assert there.runs[0].stage(name).fingerprint == here.stage(name).fingerprint, name


def test_the_record_of_a_chained_spec_is_flat_and_lists_the_chain(tmp_path):
    import hashlib
    import json

    from fairspec.run.record import write_record
    from fairspec.store import CallStore

    base = tmp_path / "lab" / "base.yaml"
    base.parent.mkdir()
    base.write_text(spec_text(committee("http://127.0.0.1:9/v1"), name="lab",
                              review="{threshold: 3.5}"))
    child = tmp_path / "mine" / "spec.yaml"
    child.parent.mkdir()
    child.write_text("extends: ../lab/base.yaml\nname: mine\ntraining: {alpha: 0.25}\n")
    loaded = load_spec(child)
    plan = compile_plan(loaded, Environment())
    with CallStore(tmp_path / "calls.sqlite") as store:
        record = write_record(plan.runs[0], plan, store)
    assert json.loads((record / "spec_files.json").read_text()) == [
        {"file": "spec.yaml", "sha256": hashlib.sha256(child.read_bytes()).hexdigest()},
        {"file": "../lab/base.yaml", "sha256": hashlib.sha256(base.read_bytes()).hexdigest()},
    ]
    text = (record / "spec.yaml").read_text()
    assert "# Merged from: spec.yaml extends ../lab/base.yaml" in text
    data = yaml.safe_load(text)
    assert "extends" not in data and data["review"]["threshold"] == 3.5
    assert data["training"]["alpha"] == 0.25
    # the record stands alone: without the bases it compiles to the same fingerprints
    before = compile_plan(load_spec(record / "spec.yaml"), Environment()).runs[0]
    shutil.rmtree(tmp_path / "lab")
    after = compile_plan(load_spec(record / "spec.yaml"), Environment()).runs[0]
    assert [s.fingerprint for s in after.stages] == [s.fingerprint for s in before.stages]
