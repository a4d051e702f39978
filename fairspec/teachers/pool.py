"""Runs many teacher requests concurrently with bounded memory: N workers per teacher,
taking their jobs from a generator."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence, Sized
from typing import Any, TypeVar

from fairspec.errors import StoreWriteFailed
from fairspec.providers import FatalProviderError
from fairspec.teachers.budget import BudgetReached
from fairspec.teachers.caller import TeacherCaller

T = TypeVar("T")


async def run_per_teacher(
    jobs: Mapping[str, Iterable[T]],
    handle: Callable[[str, T], Awaitable[Any]],
    concurrency: Mapping[str, int],
    sizes: Mapping[str, int] | None = None,
) -> dict[str, FatalProviderError | BudgetReached]:
    """Run ``handle(teacher, job)`` for every job, ``concurrency[teacher]`` at a time.

    A teacher's jobs may be a generator: its workers take them one by one as they go, so
    they are never all in memory (``sizes``, where known, caps the workers started).
    A teacher whose provider raises FatalProviderError (bad key, unknown model) stops at
    once; the others go on. A worker that meets the budget takes no new job; the calls
    already on their way finish and are stored. Returns those errors by teacher.
    """
    fatal: dict[str, FatalProviderError | BudgetReached] = {}
    done = object()

    async def worker(teacher: str, todo: Iterator[T]) -> None:
        while teacher not in fatal:
            job = next(todo, done)  # one thread: workers of a teacher share its iterator
            if job is done:
                return
            try:
                await handle(teacher, job)  # type: ignore[arg-type]
            except (FatalProviderError, BudgetReached) as exc:
                fatal.setdefault(teacher, exc)
                return
            except StoreWriteFailed as exc:  # no teacher takes a new job: nothing could be saved
                for name in jobs:
                    fatal.setdefault(name, exc)
                return

    tasks = []
    for teacher, items in jobs.items():
        size = (sizes or {}).get(teacher, len(items) if isinstance(items, Sized) else None)
        workers = max(1, concurrency.get(teacher, 1))
        if size is not None:
            workers = max(1, min(workers, size))
        todo = iter(items)
        for _ in range(workers):
            tasks.append(asyncio.create_task(worker(teacher, todo)))
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return fatal


def looked_up(callers: TeacherCaller | Sequence[TeacherCaller], jobs: Iterable[T],
              request: Callable[[T], tuple[Sequence[Mapping[str, Any]], int]],
              chunk: int = 256) -> Iterator[T]:
    """``jobs`` as they are, the store asked for ``chunk`` of them at a time in one query
    per caller (:meth:`TeacherCaller.prefetch`): a stage's reads for reuse cost one query
    per chunk, not one per call, and the event loop does not trade the GIL with the store's
    writer for each."""
    callers = [callers] if isinstance(callers, TeacherCaller) else list(callers)
    todo = iter(jobs)
    while group := list(itertools.islice(todo, chunk)):
        requests = [request(job) for job in group]
        for caller in callers:
            caller.prefetch(requests)
        yield from group


def stop_for_budget(stopped: Mapping[str, Exception]) -> None:
    """Re-raise a store that could not save answered calls, or the budget stop, if that is
    why teachers stopped (they outrank a teacher's own errors)."""
    for kind in (StoreWriteFailed, BudgetReached):
        for exc in stopped.values():
            if isinstance(exc, kind):
                raise exc
