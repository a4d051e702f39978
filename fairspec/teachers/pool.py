"""Runs many teacher requests concurrently with bounded memory: N workers per teacher."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from fairspec.providers import FatalProviderError
from fairspec.teachers.budget import BudgetReached

T = TypeVar("T")


async def run_per_teacher(
    jobs: Mapping[str, Iterable[T]],
    handle: Callable[[str, T], Awaitable[Any]],
    concurrency: Mapping[str, int],
) -> dict[str, FatalProviderError | BudgetReached]:
    """Run ``handle(teacher, job)`` for every job, ``concurrency[teacher]`` at a time.

    A teacher whose provider raises FatalProviderError (bad key, unknown model) stops at
    once; the others go on. A worker that meets the budget takes no new job; the calls
    already on their way finish and are stored. Returns those errors by teacher.
    """
    fatal: dict[str, FatalProviderError | BudgetReached] = {}

    async def worker(teacher: str, queue: asyncio.Queue) -> None:
        while teacher not in fatal:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await handle(teacher, job)
            except (FatalProviderError, BudgetReached) as exc:
                fatal.setdefault(teacher, exc)
                return

    tasks = []
    for teacher, items in jobs.items():
        queue: asyncio.Queue = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        for _ in range(max(1, min(concurrency.get(teacher, 1), queue.qsize()))):
            tasks.append(asyncio.create_task(worker(teacher, queue)))
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return fatal


def stop_for_budget(stopped: Mapping[str, Exception]) -> None:
    """Re-raise the budget stop, if that is why teachers stopped (it outranks other errors)."""
    for exc in stopped.values():
        if isinstance(exc, BudgetReached):
            raise exc
