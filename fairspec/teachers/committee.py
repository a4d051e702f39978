"""Builds the teacher committee of a stage: one TeacherCaller per teacher of the plan."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fairspec.plan.stage_settings import TeacherSettings
from fairspec.providers import ChatProvider, provider_class
from fairspec.providers.registry import provider_kind
from fairspec.resources import resolve_path
from fairspec.store import AnyProviderReplay, CallStore, load_replay
from fairspec.store.recorded_answers import ROLES, RecordedColumn, RecordedTable, RecordedTeacher
from fairspec.store.replay import Replay
from fairspec.teachers.batch_queue import BatchQueue
from fairspec.teachers.budget import Budget
from fairspec.teachers.caller import TeacherCaller
from fairspec.weights import resolve_model

Teacher = TeacherSettings | Mapping[str, Any]


def teacher_settings(teacher: Teacher) -> TeacherSettings:
    """A teacher's plan settings, typed (a plan's mapping is read)."""
    return TeacherSettings.from_mapping(teacher) if isinstance(teacher, Mapping) else teacher


def make_provider(teacher: Teacher, base_dir: Path) -> ChatProvider:
    """The live provider for one teacher's plan settings (reads its key variable now): the
    options its kind takes (``ProviderKind.arguments``), a local model resolved to a folder."""
    teacher = teacher_settings(teacher)
    kind = provider_kind(teacher.provider)
    options = kind.arguments(teacher.to_mapping())
    if kind.model_is_path:
        options["model_path"] = resolve_model(teacher.model, base_dir)
    if kind.local:  # where the plan put it (the student's device and dtype)
        options.update({key: value for key, value in (("device", teacher.device),
                                                      ("dtype", teacher.dtype)) if value})
    return provider_class(kind.name)(name=teacher.name, model=teacher.model, **options)


def key_values(teacher: Teacher) -> list[str | None]:
    """The value of the key variable a teacher's provider reads (its ``api_key_env``, or its
    kind's default; a recorded teacher's live fallback's too), as this process has it."""
    teacher = teacher_settings(teacher)
    names = [teacher.provider] + ([teacher.recorded.get("fallback")] if teacher.recorded else [])
    values: list[str | None] = []
    for name in filter(None, names):
        variable = provider_kind(name).arguments(teacher.to_mapping()).get("api_key_env")
        values.append(os.environ.get(variable) if variable else None)
    return values


def recorded_teacher(teacher: TeacherSettings, base_dir: Path) -> RecordedTeacher:
    """A recorded teacher's answers: its plan settings' ``recorded`` block, files opened."""
    block = teacher.recorded or {}
    tables: dict[str, RecordedTable] = {}
    columns = {}
    for role in ROLES:
        source = block.get(role)
        if source is None:
            continue
        path = resolve_path(source["path"], base_dir)
        if str(path) not in tables:
            tables[str(path)] = RecordedTable(path, match=block["match"],
                                              question_column=block["question_column"],
                                              index_column=block["index_column"])
        columns[role] = RecordedColumn(tables[str(path)], source["column"], source.get("item"))
    return RecordedTeacher(teacher.name, columns, block.get("names"))


def make_committee(teachers: Sequence[Teacher], store: CallStore, base_dir: Path, *,
                   replay: Replay | None = None, budget: Budget | None = None,
                   batch_state: Path | None = None) -> dict[str, TeacherCaller]:
    """name -> caller; with ``replay`` set no provider is built and no key is read. A batch
    teacher (``batch: true``) gets a :class:`BatchQueue` in front of its provider, which
    writes its batches' states to ``batch_state``."""
    callers = {}
    for teacher in map(teacher_settings, teachers):
        provider, own_replay, recorded, fallback = None, None, None, None
        kind = provider_kind(teacher.provider)
        store.protect(key_values(teacher))  # a reply that echoes the key never stores it
        if kind.takes("replay_file"):  # answers from that file
            own_replay = AnyProviderReplay(load_replay(resolve_path(teacher.replay_file or "", base_dir)))
        elif kind.takes("recorded"):  # answers from its files, and a live model for the rest
            recorded = recorded_teacher(teacher, base_dir)
            fallback = (teacher.recorded or {}).get("fallback")
            if fallback is not None and replay is None:
                provider = make_provider(replace(teacher, provider=fallback), base_dir)
        elif replay is None:
            provider = make_provider(teacher, base_dir)
        callers[teacher.name] = TeacherCaller(
            name=teacher.name, provider_kind=teacher.provider, base_url=teacher.base_url,
            model=teacher.model, settings=teacher.generation, store=store, provider=provider,
            replay=replay, any_provider_replay=own_replay, price=teacher.price,
            budget=budget, recorded=recorded, fallback=fallback,
        )
        if teacher.batch and provider is not None:
            callers[teacher.name].batch = batch_queue(
                callers[teacher.name], teacher, store, budget, batch_state)
    return callers


def batch_queue(caller: TeacherCaller, teacher: TeacherSettings, store: CallStore,
                budget: Budget | None, state_file: Path | None) -> BatchQueue:
    """The batch queue of a batch teacher: its kind's batch API around its provider; each
    change of a batch refreshes the caller's progress line."""
    api = provider_kind(teacher.provider).load_batch()(caller.provider)

    def changed() -> None:
        if caller.on_answer is not None:
            caller.on_answer(caller)

    return BatchQueue(teacher=teacher.name, api=api, store=store, price=teacher.price,
                      budget=budget, max_retries=teacher.max_retries,
                      state_file=state_file, on_change=changed)


def workers(teacher: Teacher) -> int:
    """How many of a teacher's requests a stage keeps on their way: an eighth more than its
    ``concurrency``, or for a batch teacher as many as one batch holds (they wait in the
    batch, not on a socket).

    The provider's limiter keeps ``concurrency`` requests on the wire, never more; the
    extra workers have their request waiting at the limiter while others wait for their
    answers to be stored (a group commit takes milliseconds, on a busy 2-core machine up to
    ~15 ms), so the wire stays full. Below a concurrency of 8 there are none."""
    teacher = teacher_settings(teacher)
    if teacher.batch:
        return BATCH_WORKERS
    return teacher.concurrency + teacher.concurrency // 8


#: requests a stage gives a batch teacher at once (OpenAI's limit for one batch)
BATCH_WORKERS = 50_000


def committee_usage(callers: Mapping[str, TeacherCaller]) -> dict[str, dict[str, Any]]:
    """What each teacher cost in a stage (``TeacherUsage``), and for a batch teacher what
    its batches did (``batch``: created, followed, resubmitted, failed and expired lines)."""
    usage = {name: caller.usage.to_dict() for name, caller in callers.items()}
    for name, caller in callers.items():
        if caller.batch is not None:
            usage[name]["batch"] = dict(caller.batch.counts)
    return usage


async def close_committee(callers: Mapping[str, TeacherCaller]) -> None:
    for caller in callers.values():
        if caller.batch is not None:
            await caller.batch.aclose()  # closes its provider too
        elif caller.provider is not None:
            await caller.provider.aclose()
