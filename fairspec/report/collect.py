"""Everything a report shows, read from one run folder's stage outputs (no spec needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairspec.artifacts import read_jsonl

RUN_INFO = "run.json"  # written by the executor: name, spec, variant, overrides, description


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class RunSummary:
    run_dir: Path
    info: dict[str, Any]
    exam: dict[str, Any] | None = None
    teach: dict[str, Any] | None = None
    review: dict[str, Any] | None = None
    reviews: list[dict[str, Any]] = field(default_factory=list)
    build: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.info.get("name") or self.run_dir.name

    @property
    def overrides(self) -> dict[str, Any]:
        return self.info.get("overrides") or {}

    def accuracy(self, label: str) -> float | None:
        found = (self.metrics or {}).get(label)
        return None if not found else found.get("accuracy")

    def teacher_usage(self) -> dict[str, dict[str, Any]]:
        """Per teacher, teach and review together (paper Table 5)."""
        total: dict[str, dict[str, Any]] = {}
        for stage in (self.teach, self.review):
            for name, usage in ((stage or {}).get("teachers") or {}).items():
                into = total.setdefault(name, {"calls": 0, "made": 0, "reused": 0, "input_tokens": 0,
                                               "output_tokens": 0, "usd": 0.0, "retries": 0})
                into["calls"] += usage["calls"]
                into["made"] += usage["made"]
                into["reused"] += usage["cached"] + usage["replayed"]
                into["input_tokens"] += usage["input_tokens"]
                into["output_tokens"] += usage["output_tokens"]
                into["retries"] += usage.get("retries", 0)
                into["usd"] = None if into["usd"] is None or usage["usd"] is None \
                    else into["usd"] + usage["usd"]
        return total


#: Where a stage's artifact is: ``locate(stage, artifact) -> Path``.
Locate = Callable[[str, str], Path]


def collect(run_dir: Path, locate: Locate | None = None) -> RunSummary:
    """The run's summary, read from its stages' artifacts (``locate``: by default
    ``run_dir/<stage>/<artifact>``; the report stage passes its declared inputs)."""
    run_dir = Path(run_dir)
    at = locate or (lambda stage, artifact: run_dir / stage / artifact)
    return RunSummary(
        run_dir=run_dir,
        info=_load(run_dir / RUN_INFO) or {"name": run_dir.name},
        exam=_load(at("exam", "stats.json")),
        teach=_load(at("teach", "stats.json")),
        review=_load(at("review", "stats.json")),
        reviews=list(read_jsonl(at("review", "reviews.jsonl"))),
        build=_load(at("build", "stats.json")),
        train=_load(at("train", "stats.json")),
        metrics=_load(at("evaluate", "metrics.json")),
    )


def siblings(run_dir: Path) -> list[RunSummary]:
    """The runs of the same spec in the same output folder (variants, sweep points), by name."""
    run_dir = Path(run_dir)
    own = _load(run_dir / RUN_INFO) or {}
    spec = own.get("spec")
    if spec is None:
        return []
    found = []
    for info_file in sorted(run_dir.parent.glob(f"*/{RUN_INFO}")):
        info = _load(info_file) or {}
        if info.get("spec") == spec and info_file.parent != run_dir:
            found.append(collect(info_file.parent))
    return found
