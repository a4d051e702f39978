"""The report stage: one readable page per run (see :mod:`fairspec.report`)."""

from __future__ import annotations

from typing import Any

from fairspec.report import write_report
from fairspec.stages.context import StageContext


def run(ctx: StageContext) -> dict[str, Any]:
    ctx.prepare()
    pages = write_report(ctx.folder.parent, folder=ctx.folder, locate=ctx.input,
                         rounds=ctx.settings.get("rounds", 1))
    ctx.finish({})
    return {"report": str(pages[1])}
