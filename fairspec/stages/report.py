"""The report stage: one readable page per run (see :mod:`fairspec.report`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fairspec.artifacts import write_manifest
from fairspec.plan.graph import RunPlan
from fairspec.report import write_report


def run_report(run: RunPlan, folder: Path) -> dict[str, Any]:
    started = time.time()
    pages = write_report(Path(run.run_dir))
    outputs = sorted(p.name for p in folder.iterdir() if p.suffix in (".md", ".html", ".png"))
    write_manifest(folder, stage="report", fingerprint=run.stage("report").fingerprint, inputs={},
                   outputs=outputs, counts={}, started=started)
    return {"report": str(pages[1])}
