"""Everything a report shows, read from one run folder's stage outputs (no spec needed)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairspec.artifacts import read_jsonl, upgrade_run_info, upgrade_stats
from fairspec.dsl.variants import FIXED_KEYS
from fairspec.plan.kinds import stage_name

RUN_INFO = "run.json"  # written by the executor: name, spec, variant, overrides, description


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """The run folder's ``run.json`` in the current layout, whichever fairspec wrote it."""
    return upgrade_run_info(_load(Path(run_dir) / RUN_INFO), Path(run_dir).name)


def resolved_settings(info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The run's resolved settings as dotted keys (``training.epochs``), from its ``run.json``
    (the executor writes the spec there, every default written out, before any stage runs),
    without the keys no variant can change (name, description, ...); templates are named
    by their references. None: a run.json from before fairspec wrote them."""
    spec = (info or {}).get("settings")
    if not isinstance(spec, Mapping):
        return None
    return _flatten({k: v for k, v in spec.items() if k not in FIXED_KEYS})


@dataclass
class RoundSummary:
    """One round's stage outputs (round 1's are the run's own)."""

    round: int
    exam: dict[str, Any] | None = None
    teach: dict[str, Any] | None = None
    review: dict[str, Any] | None = None
    build: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None


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
    settings: dict[str, Any] | None = None  # resolved, from run.json (None: not recorded there)
    #: every round, round 1 first; one entry for a run of one round
    rounds: list[RoundSummary] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.info.get("name") or self.run_dir.name

    @property
    def overrides(self) -> dict[str, Any]:
        return self.info.get("overrides") or {}

    @property
    def final_metrics(self) -> dict[str, Any] | None:
        """The evaluation of the student the run ends with (its last round's)."""
        return self.rounds[-1].metrics if len(self.rounds) > 1 else self.metrics

    def accuracy(self, label: str) -> float | None:
        found = (self.final_metrics or {}).get(label)
        return None if not found else found.get("accuracy")

    @property
    def samples(self) -> int | None:
        """The samples the teachers taught: the student's mistakes (teach stats, else the exam's)."""
        found = (self.teach or {}).get("mistakes")
        if found is None:
            found = (self.exam or {}).get("wrong")
        return found if isinstance(found, int) else None

    def tokens_per_sample(self) -> dict[str, dict[str, Any]]:
        """Paper Table 5, per teacher: the tokens (input + output) of its calls the run used
        (paid now, stored or replayed), divided by the samples taught (the mistakes).

        ``standard``: the teach stage alone (its rationale and feedback for every mistake), what
        the run uses without peer review (the review does not change the teach stage);
        ``review``: the reviews this teacher wrote; ``peer_review``: the two together (None when
        the run did not review); ``review_usd``: the reviews' cost per sample (None: unknown
        price or no review). Empty when nothing was taught."""
        samples = self.samples
        taught = (self.teach or {}).get("teachers") or {}
        if not samples or not taught:
            return {}
        reviewed = bool((self.review or {}).get("enabled"))
        reviews = (self.review or {}).get("teachers") or {}
        out = {}
        for name in list(taught) + [n for n in reviews if n not in taught]:
            teach = _tokens(taught.get(name))
            review = _tokens(reviews.get(name))
            usd = reviews[name].get("usd") if name in reviews else 0.0  # None: price unknown
            out[name] = {
                "samples": samples,
                "teach_tokens": teach, "review_tokens": review if reviewed else None,
                "standard": teach / samples,
                "review": review / samples if reviewed else None,
                "peer_review": (teach + review) / samples if reviewed else None,
                "review_usd": usd / samples if reviewed and usd is not None else None,
            }
        return out

    def teacher_usage(self) -> dict[str, dict[str, Any]]:
        """Per teacher, teach and review stages together: calls, tokens (with the cached
        input and the reasoning among them), dollars as billed."""
        total: dict[str, dict[str, Any]] = {}
        for stage in (self.teach, self.review):
            for name, usage in ((stage or {}).get("teachers") or {}).items():
                into = total.setdefault(name, {"calls": 0, "made": 0, "reused": 0, "input_tokens": 0,
                                               "output_tokens": 0, "cached_input_tokens": 0,
                                               "reasoning_tokens": 0, "usd": 0.0, "retries": 0})
                into["calls"] += usage["calls"]
                into["made"] += usage["made"]
                into["reused"] += usage["cached"] + usage["replayed"]
                into["input_tokens"] += usage["input_tokens"]
                into["output_tokens"] += usage["output_tokens"]
                # of those, read from the prompt cache / spent thinking (absent before 0.3)
                into["cached_input_tokens"] += usage.get("cached_input_tokens") or 0
                into["reasoning_tokens"] += usage.get("reasoning_tokens") or 0
                into["retries"] += usage.get("retries", 0)
                into["usd"] = None if into["usd"] is None or usage["usd"] is None \
                    else into["usd"] + usage["usd"]
                if "batch" in usage:  # asked through the provider's batch API
                    into["batches"] = into.get("batches", 0) + usage["batch"]["batches"] \
                        + usage["batch"].get("followed", 0)
        return total


def _tokens(usage: Mapping[str, Any] | None) -> int:
    return int((usage or {}).get("input_tokens") or 0) + int((usage or {}).get("output_tokens") or 0)


#: Where a stage's artifact is: ``locate(stage, artifact) -> Path``.
Locate = Callable[[str, str], Path]


def run_locator(run_dir: Path) -> Locate:
    """Artifacts in a run folder's own stage folders (``run_dir/<stage>/<artifact>``)."""
    return lambda stage, artifact: Path(run_dir) / stage / artifact


def collect(run_dir: Path, locate: Locate | None = None, rounds: int | None = None) -> RunSummary:
    """The run's summary, read from its stages' artifacts (``locate``: by default
    ``run_dir/<stage>/<artifact>``; the report stage passes its declared inputs, and the
    number of ``rounds`` its plan has: by default, the round folders the run folder holds)."""
    run_dir = Path(run_dir)
    at = locate or run_locator(run_dir)
    summaries = [RoundSummary(k, **{  # stats of any earlier layout, read in the current one
        FIELDS.get(kind, kind): upgrade_stats(_load(at(stage_name(kind, k), file)))
        for kind, file in STATS.items()}) for k in range(1, (rounds or round_count(run_dir)) + 1)]
    first = summaries[0]
    info = read_run_info(run_dir)
    return RunSummary(
        run_dir=run_dir,
        info=info,
        exam=first.exam, teach=first.teach, review=first.review,
        reviews=list(read_jsonl(at("review", "reviews.jsonl"))),
        build=first.build, train=first.train, metrics=first.metrics,
        settings=resolved_settings(info),
        rounds=summaries,
    )


#: the summary file of each stage kind a round has
STATS = {"exam": "stats.json", "teach": "stats.json", "review": "stats.json",
         "build": "stats.json", "train": "stats.json", "evaluate": "metrics.json"}
FIELDS = {"evaluate": "metrics"}


def round_count(run_dir: Path) -> int:
    """How many rounds the run folder holds (its ``round-k/`` folders, and round 1)."""
    return 1 + sum(1 for p in run_dir.glob("round-*/") if p.is_dir())


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
