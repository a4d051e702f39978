"""Spec rules for what each teacher's API takes: request shapes per model family, at the key that sets them.

A value the teacher's API would refuse with an HTTP 400 is an error at the line that sets
it (``teachers[i].generation.temperature``); a shared ``generation`` value a teacher does
not receive, or a key its API ignores, is a note: ``fairspec validate`` prints it and the
spec stays valid. The families and their sources are in :mod:`fairspec.providers.families`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fairspec.dsl.schema import Spec
from fairspec.dsl.source import FieldPath
from fairspec.providers.families import Origin, family_for, problems
from fairspec.providers.registry import provider_kind

#: The provider kinds whose request body ``extra_body`` is added to.
EXTRA_BODY_KINDS = ("openai", "anthropic")
#: Request fields fairspec itself fills: ``extra_body`` may not replace them.
MANAGED_FIELDS = frozenset({"model", "messages", "system", "max_tokens", "max_completion_tokens",
                            "temperature", "top_p", "presence_penalty", "frequency_penalty", "seed",
                            "stop", "stop_sequences", "logprobs", "top_logprobs",
                            "reasoning_effort", "thinking", "n", "stream"})


@dataclass(frozen=True)
class GenerationFinding:
    path: FieldPath
    level: Literal["error", "note"]
    message: str
    hint: str | None = None


def generation_findings(spec: Spec) -> list[GenerationFinding]:
    """Every teacher's merged generation settings checked against its model family."""
    out: list[GenerationFinding] = []
    shared = spec.generation.model_dump()
    shared_set = spec.generation.model_fields_set
    for where, teacher in spec.callers():  # the teachers, then the jurors declared in review.jury
        own = teacher.generation.model_dump(exclude_none=True) if teacher.generation else {}
        settings = {**shared, **own}
        origin: dict[str, Origin] = {
            key: "teacher" if key in own else "shared" if key in shared_set else "default"
            for key in settings}

        def at(key: str, where: FieldPath = where, origin: dict[str, Origin] = origin) -> FieldPath:
            if origin.get(key) == "teacher":
                return (*where, "generation", key)
            return ("generation", key) if origin.get(key) == "shared" else (*where, "model")

        out += _extra_body(teacher, settings, at)
        family = family_for(teacher.provider, teacher.model)
        if family is None:
            if provider_kind(teacher.provider).live:
                for key in ("reasoning_effort", "thinking"):
                    if settings.get(key) is not None and origin[key] != "default":
                        out.append(GenerationFinding(
                            at(key), "error" if origin[key] == "teacher" else "note",
                            f"{key} does not apply to provider {teacher.provider!r} "
                            f"(teacher {teacher.name})", "remove it"))
            continue
        for found in problems(family, teacher.model, settings, origin):
            out.append(GenerationFinding(at(found.key), found.level,
                                         f"teacher {teacher.name}: {found.message}", found.hint))
    return out


def _extra_body(teacher: Any, settings: dict[str, Any], at: Any) -> list[GenerationFinding]:
    body = settings.get("extra_body") or {}
    if not body:
        return []
    if teacher.provider not in EXTRA_BODY_KINDS:
        return [GenerationFinding(at("extra_body"), "error",
                                  f"extra_body does not apply to provider {teacher.provider!r} "
                                  f"(teacher {teacher.name})",
                                  f"extra_body is added to the request of provider "
                                  f"{' or '.join(EXTRA_BODY_KINDS)}; remove it")]
    managed = sorted(set(body) & MANAGED_FIELDS)
    if managed:
        return [GenerationFinding(at("extra_body"), "error",
                                  f"extra_body sets {', '.join(managed)}, which fairspec fills "
                                  f"from the spec (teacher {teacher.name})",
                                  "set them with their generation keys instead")]
    return []
