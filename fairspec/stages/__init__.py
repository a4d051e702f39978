"""The stage kinds: one module each, registered by name, each ``run(ctx) -> stats``.

A stage is called with a :class:`~fairspec.stages.context.StageContext` only: its
compiled stage (settings, declared inputs and outputs), its folder, and the shared
services. Modules are imported when their stage runs, so ``fairspec run --until exam``
never loads the teacher SDKs and a plan without training never imports the trainer.
What each kind reads and writes is declared in :mod:`fairspec.plan.kinds`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from fairspec.stages.context import Services, StageContext

#: stage kind -> the module whose ``run(ctx)`` runs it
STAGES: dict[str, str] = {
    "exam": "fairspec.stages.exam",
    "teach": "fairspec.stages.teach",
    "review": "fairspec.stages.review",
    "build": "fairspec.stages.build",
    "train": "fairspec.stages.train",
    "evaluate": "fairspec.stages.evaluate",
    "report": "fairspec.stages.report",
}
#: (stage kind, implementation) -> the module of another implementation of that kind: the
#: same declared inputs and outputs, made another way
IMPLEMENTATIONS: dict[tuple[str, str], str] = {
    ("exam", "recorded"): "fairspec.stages.exam_recorded",
}


def stage_runner(kind: str, implementation: str | None = None
                 ) -> Callable[[StageContext], dict[str, Any]]:
    """The ``run`` function of a registered stage kind (or of one of its implementations)."""
    if kind not in STAGES:
        raise KeyError(f"no stage kind {kind!r}; registered: {', '.join(STAGES)}")
    if implementation is not None:
        if (kind, implementation) not in IMPLEMENTATIONS:
            raise KeyError(f"no implementation {implementation!r} of stage kind {kind!r}")
        return importlib.import_module(IMPLEMENTATIONS[(kind, implementation)]).run
    return importlib.import_module(STAGES[kind]).run


__all__ = ["IMPLEMENTATIONS", "STAGES", "Services", "StageContext", "stage_runner"]
