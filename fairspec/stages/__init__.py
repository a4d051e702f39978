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

from fairspec.plan.kinds import STAGE_KINDS
from fairspec.stages.context import Services, StageContext

#: (stage kind, implementation) -> the module of another implementation of that kind: the
#: same declared inputs and outputs, made another way
IMPLEMENTATIONS: dict[tuple[str, str], str] = {
    ("exam", "recorded"): "fairspec.stages.exam_recorded",
}


def stage_runner(kind: str, implementation: str | None = None
                 ) -> Callable[[StageContext], dict[str, Any]]:
    """The ``run`` function of a registered stage kind (or of one of its implementations)."""
    if kind not in STAGE_KINDS:  # each kind names its module (StageKind.module)
        raise KeyError(f"no stage kind {kind!r}; registered: {', '.join(STAGE_KINDS)}")
    if implementation is not None:
        if (kind, implementation) not in IMPLEMENTATIONS:
            raise KeyError(f"no implementation {implementation!r} of stage kind {kind!r}")
        return importlib.import_module(IMPLEMENTATIONS[(kind, implementation)]).run
    return importlib.import_module(STAGE_KINDS[kind].module).run


__all__ = ["IMPLEMENTATIONS", "Services", "StageContext", "stage_runner"]
