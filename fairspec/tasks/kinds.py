"""The registry of task kinds: everything fairspec knows about a kind, in one place.

A task kind (the spec's ``task.kind``) decides the answer extractor used when the spec
names none (and so how the gold answer is parsed and shown), which ``task.fields``
entries a spec must and may map, which builtin prompts and instruction templates it
gets when it leaves them null, and the typical field lengths the plan's estimate
assumes when it cannot read the data. The spec language builds its ``TaskKind`` from
:data:`TASK_KINDS`, so adding a kind here (plus its builtin prompt folder, when it
needs its own prompts) makes it valid in a spec.

Gold parsing and display are functions of the answer kind (``number``, ``boolean``,
``choice``, ``regex``; :mod:`fairspec.tasks.gold`), because a spec may override the
extractor: :meth:`TaskKindInfo.parse_gold` and :meth:`TaskKindInfo.gold_display` use
the kind's default extractor, or the one given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from fairspec.resources import builtin_task_template
from fairspec.tasks.extract import ANSWER_KINDS, Answer
from fairspec.tasks.gold import gold_display, parse_gold

#: ``task.fields`` entries every task kind needs: the question and the gold answer.
COMMON_FIELDS: tuple[str, ...] = ("question", "answer")


def _frozen(mapping: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class TaskKindInfo:
    """One task kind.

    Attributes:
        name: the spec's ``task.kind``.
        extractor: the answer extractor (one of :data:`fairspec.tasks.ANSWER_KINDS`) used
            when ``task.answer.extractor`` is null; it also parses the gold answer.
        prompt_folder: the builtin folder under ``prompts/`` and ``templates/`` whose
            ``<role>.j2`` the kind uses when the spec leaves a template null (a role
            the folder lacks falls back to the shared ``prompts/<role>.j2``).
        extra_fields: ``task.fields`` entries this kind needs beyond
            :data:`COMMON_FIELDS`: name -> what its column holds (for the hint).
        optional_fields: entries the kind's builtin templates read when mapped:
            name -> what its column holds.
        field_chars: typical characters per template field, for the plan's token
            estimate when the data cannot be read locally.
        description: one line, for documentation.
    """

    name: str
    extractor: str
    prompt_folder: str
    extra_fields: Mapping[str, str] = field(default_factory=dict)
    optional_fields: Mapping[str, str] = field(default_factory=dict)
    field_chars: Mapping[str, int] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if self.extractor not in ANSWER_KINDS:
            raise ValueError(f"task kind {self.name!r}: unknown extractor {self.extractor!r}; "
                             f"expected one of {', '.join(ANSWER_KINDS)}")
        for name in ("extra_fields", "optional_fields", "field_chars"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def __hash__(self) -> int:  # the mappings are not hashable; a kind is its name
        return hash(self.name)

    @property
    def required_fields(self) -> tuple[str, ...]:
        """Every ``task.fields`` entry a spec of this kind must map, in check order."""
        return COMMON_FIELDS + tuple(self.extra_fields)

    def parse_gold(self, value: object, options: Sequence[str] | None = None,
                   extractor: str | None = None) -> Answer:
        """The gold answer ``value`` read as ``extractor`` (default: the kind's) reads it."""
        return parse_gold(extractor or self.extractor, value, options)

    def gold_display(self, gold: Answer, options: Sequence[str] | None = None,
                     extractor: str | None = None) -> str:
        """A parsed gold answer as a prompt shows it (see :func:`fairspec.tasks.gold_display`)."""
        return gold_display(extractor or self.extractor, gold, options)

    def default_prompt(self, role: str) -> str:
        """The builtin prompt (``exam``, ``rationale``, ``feedback``, ``review``) for ``role``."""
        return builtin_task_template("prompts", self.prompt_folder, role)

    def default_training_template(self, role: str) -> str:
        """The builtin Appendix C instruction template (``rationale``, ``feedback``)."""
        return builtin_task_template("templates", self.prompt_folder, role)


_KINDS = (
    # the builtin prompts and templates are the paper's: GSM8K and SVAMP's for math,
    # StrategyQA's for boolean, LogiQA's for multiple choice
    TaskKindInfo(
        name="math",
        extractor="number",
        prompt_folder="math",
        field_chars={"question": 240},
        description="a word problem with a numeric answer (GSM8K, SVAMP)",
    ),
    TaskKindInfo(
        name="boolean",
        extractor="boolean",
        prompt_folder="strategyqa",
        field_chars={"question": 70},
        description="a yes/no question answered true or false (StrategyQA)",
    ),
    TaskKindInfo(
        name="multiple_choice",
        extractor="choice",
        prompt_folder="logiqa",
        extra_fields={"options": "the list of option texts"},
        optional_fields={"context": "the passage the question is about"},
        field_chars={"context": 550, "question": 80, "options": 400},
        description="a question with lettered options, one of them right (LogiQA)",
    ),
)

#: Task kind name -> its entry, in the order the spec language lists them.
TASK_KINDS: Mapping[str, TaskKindInfo] = MappingProxyType({kind.name: kind for kind in _KINDS})


def task_kind(name: str) -> TaskKindInfo:
    """The registry entry of task kind ``name``.

    Raises:
        ValueError: ``name`` is not a task kind (the message lists the known ones).
    """
    try:
        return TASK_KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown task kind {name!r}; expected one of {', '.join(TASK_KINDS)}"
        ) from None


def default_extractor(name: str) -> str:
    """The answer extractor task kind ``name`` uses when the spec names none."""
    return task_kind(name).extractor


def default_prompt(role: str, task_kind_name: str) -> str:
    """The builtin template used for a prompt role the spec leaves unset."""
    return task_kind(task_kind_name).default_prompt(role)


def default_training_template(role: str, task_kind_name: str) -> str:
    """The builtin Appendix C instruction template used when the spec leaves it unset."""
    return task_kind(task_kind_name).default_training_template(role)



def fields_summary() -> str:
    """The ``task.fields`` every kind needs, in words: ``question and answer (and options
    for multiple_choice)``."""
    extras = [f"and {' and '.join(kind.extra_fields)} for {kind.name}"
              for kind in TASK_KINDS.values() if kind.extra_fields]
    summary = " and ".join(COMMON_FIELDS)
    return f"{summary} ({'; '.join(extras)})" if extras else summary


def extractors_summary() -> str:
    """Each kind's default extractor, in words: ``number (math), boolean (boolean), ...``."""
    return ", ".join(f"{kind.extractor} ({kind.name})" for kind in TASK_KINDS.values())
