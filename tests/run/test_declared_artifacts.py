"""Every stage of the tiny pipeline writes exactly the outputs `fairspec plan --json` declares for
it and reads, in the run folder, only its declared inputs (checked on the real files it opens)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from fairspec.artifacts import read_manifest
from fairspec.dsl import load_spec
from fairspec.plan import compile_plan
from fairspec.plan.graph import Output
from fairspec.run import executor

REPO = Path(__file__).resolve().parents[2]
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

pytestmark = pytest.mark.slow


def tiny_spec(folder: Path, model: str) -> Path:
    """The quickstart, shrunk: 4 exam rows, 3 test rows, short replies, ``model`` (the small
    student) as student and teachers; review on in the main run and off in the variant, so
    that build has examples and train runs."""
    text = (REPO / "specs" / "quickstart.yaml").read_text()
    text = (text.replace("limit: {train: 16, test: 24}", "limit: {train: 4, test: 3}")
                .replace("model: builtin:smollm2-135m-instruct", f"model: {model}")
                .replace("max_new_tokens: 192", "max_new_tokens: 24")
                .replace("  max_tokens: 128", "  max_tokens: 24")
                .replace("max_seq_length: 384", "max_seq_length: 192")
                .replace("output_dir: ../runs", f"output_dir: {folder / 'runs'}"))
    assert "limit: {train: 4, test: 3}" in text and "name: no-review" in text
    path = folder / "spec.yaml"
    path.write_text(text)
    return path


class OpenRecorder:
    """An audit hook noting every file opened while a stage runs: (run, stage) -> paths."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.current: tuple[str, str] | None = None
        self.reads: dict[tuple[str, str], set[Path]] = defaultdict(set)
        self.writes: dict[tuple[str, str], set[Path]] = defaultdict(set)

    def __call__(self, event: str, args: tuple) -> None:
        if event != "open" or self.current is None:
            return
        path, mode, flags = (list(args) + [None, None])[:3]
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, str) or not os.path.abspath(path).startswith(self.root):
            return
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
        (self.writes if writing else self.reads)[self.current].add(Path(os.path.abspath(path)))


def _declared_json(spec: Path, cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "plan", str(spec), "--json"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, small_student):
    folder = tmp_path_factory.mktemp("declared")
    spec = tiny_spec(folder, small_student)
    loaded = load_spec(spec)
    plan = compile_plan(loaded)
    recorder = OpenRecorder(folder / "runs")
    sys.addaudithook(recorder)  # a hook cannot be removed: it records only while current is set
    real_runner = executor.stage_runner

    def recording_runner(kind, implementation=None):
        run_stage = real_runner(kind, implementation)

        def run(ctx):
            recorder.current = (ctx.run.name, ctx.stage.name)
            try:
                return run_stage(ctx)
            finally:
                recorder.current = None
        return run

    mp = pytest.MonkeyPatch()
    mp.setattr(executor, "stage_runner", recording_runner)
    mp.setenv("FAIRSPEC_STRICT_ARTIFACTS", "1")  # an undeclared file fails the stage
    try:
        outcomes = executor.execute(loaded, plan)
    finally:
        mp.undo()
    return folder, spec, plan, recorder, outcomes


def test_each_stage_wrote_exactly_what_plan_json_declares(pipeline):
    folder, spec, plan, _, outcomes = pipeline
    declared = _declared_json(spec, folder)
    ran = {(o.run, o.stage) for o in outcomes.outcomes if o.status == "ran"}
    assert ("quickstart.no-review", "train") in ran  # the variant trains: nothing is skipped
    checked = 0
    for run_json, run in zip(declared["runs"], plan.runs, strict=True):
        run_dir = Path(run.run_dir)
        for stage_json in run_json["stages"]:
            outputs = [Output(o["name"], o["required"]) for o in stage_json["outputs"]]
            manifest = read_manifest(run_dir / stage_json["name"])
            assert manifest is not None, (run.name, stage_json["name"])
            entries = sorted(p.name + ("/" if p.is_dir() else "")
                             for p in (run_dir / stage_json["name"]).iterdir()
                             if not p.name.startswith(".") and p.name not in ("manifest.json", "work"))
            assert all(any(o.matches(e) for o in outputs) for e in entries), (run.name, entries)
            assert all(any(o.matches(e) for e in entries) for o in outputs if o.required)
            assert sorted(manifest["outputs"]) == entries, (run.name, stage_json["name"])
            checked += 1
    assert checked == 14
    main = json.loads((Path(plan.runs[0].run_dir) / "train" / "manifest.json").read_text())
    assert main["outputs"] == ["train_args.json", "stats.json"] or "model/" in main["outputs"]


def test_each_stage_read_only_declared_inputs_and_wrote_only_its_folder(pipeline):
    folder, _, plan, recorder, outcomes = pipeline
    runs = {run.name: run for run in plan.runs}
    cache = Path(plan.output_dir) / "cache"
    checked = 0
    for outcome in outcomes.outcomes:
        if outcome.status != "ran":
            continue
        run, key = runs[outcome.run], (outcome.run, outcome.stage)
        stage = run.stage(outcome.stage)
        own = Path(run.run_dir) / stage.name
        allowed = [Path(run.run_dir) / i.stage / i.artifact.rstrip("/") for i in stage.inputs]
        shared = [cache] if stage.kind == "evaluate" else []
        amended = [Path(run.run_dir) / i.stage / i.artifact for i in stage.amends]
        for path in recorder.writes[key]:
            if any(path == a or (path.parent == a.parent and path.name.startswith(f".{a.name}."))
                   for a in amended):
                continue  # a declared rewrite (the tuned model's card), through a temp file
            assert _inside(path, own) or any(_inside(path, c) for c in shared), (key, path)
        for path in recorder.reads[key]:
            if _inside(path, own) or any(_inside(path, c) for c in shared) \
                    or path == Path(run.run_dir) / "run.json":
                continue
            if stage.kind == "report" and path.parent.parent.parent == Path(plan.output_dir):
                # the main run's comparison reads its siblings' same declared artifacts
                path = Path(run.run_dir) / path.parent.name / path.name
            assert any(_inside(path, a) for a in allowed), (key, path)
        checked += 1
    assert checked >= 10
    teach = recorder.reads[("quickstart", "teach")]
    assert Path(runs["quickstart"].run_dir) / "exam" / "mistakes.jsonl" in teach
    evaluate = recorder.reads[("quickstart.no-review", "evaluate")]
    model = Path(runs["quickstart.no-review"].run_dir) / "train" / "model"
    assert any(_inside(p, model) for p in evaluate)  # the tuned weights came through ctx.input


def test_undeclared_input_or_output_is_an_error(pipeline):
    from fairspec.errors import StageContractError
    from fairspec.stages import Services, StageContext

    _, _, plan, _, _ = pipeline
    run = plan.runs[0]
    ctx = StageContext(run.stage("build"), run, Services(base_dir=Path(plan.base_dir),
                                                          cache_dir=Path(plan.output_dir) / "cache"))
    assert ctx.input("review", "accepted.jsonl").name == "accepted.jsonl"
    with pytest.raises(StageContractError, match="reads review/reviews.jsonl"):
        ctx.input("review", "reviews.jsonl")
    with pytest.raises(StageContractError, match="writes model.bin"):
        ctx.output("model.bin")
    (ctx.folder / "stray.txt").write_text("x")
    strict = StageContext(run.stage("build"), run, ctx.services, strict=True)
    with pytest.raises(StageContractError, match="undeclared stray.txt"):
        strict.finish({})
    (ctx.folder / "stray.txt").unlink()
