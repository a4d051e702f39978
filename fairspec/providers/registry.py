"""The provider kinds a spec's ``provider:`` may name: one ``ProviderKind`` entry per kind.

Each entry says which Teacher options the kind takes, the key variable it reads when the
spec names none, and what it is (remote or local, needs a key, has a price). The spec
language checks teachers against these entries, the committee builds providers from them
and ``fairspec.providers.provider_class`` loads their classes.

Import-light on purpose: nothing here imports an SDK (openai, google-genai, torch) or a
provider module; a kind names its class by dotted path and ``ProviderKind.load`` imports
it when a provider is built.

Adding a provider: write its module (for an API, a ``RemoteProvider`` subclass that makes
the SDK call and maps its reply and errors) and add its entry to ``_KINDS`` below. A
new Teacher option (beyond those the kinds here take) is also a field in the spec schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

#: The API limits every remote kind takes: Teacher fields and constructor arguments of
#: these names. They change when a call is sent, never what it answers.
LIMITS: tuple[str, ...] = ("concurrency", "rpm", "tpm", "timeout_s", "max_retries")
#: Options the committee reads itself, never passed to a provider's constructor:
#: ``batch`` puts a batch queue in front of the provider (``fairspec.teachers.batch_queue``).
COMMITTEE_OPTIONS: tuple[str, ...] = ("batch",)


@dataclass(frozen=True)
class KeyRule:
    """A kind whose spec must name its key variable (``api_key_env``) unless the option
    ``unless`` is set; ``message`` is the spec finding when neither is."""

    unless: str
    message: str


@dataclass(frozen=True)
class ProviderKind:
    """One provider kind.

    ``class_path`` is ``"module:Class"`` (None: no live provider; ``replay`` answers from
    its file). ``options`` are the optional Teacher fields, among those only some kinds
    take, that this one takes; a section option (``vertex: {project, location}``) reaches
    the constructor flattened (``vertex_project``, ``vertex_location``). A ``remote`` kind
    also takes the ``LIMITS``. ``key_env`` is the variable read when the spec names none.
    ``required`` pairs an option that must be set with an example value for the hint.
    """

    name: str
    class_path: str | None
    summary: str
    options: tuple[str, ...] = ()
    key_env: str | None = None
    key_rule: KeyRule | None = None
    remote: bool = False          # an API over the network: limits, retries, a key
    local: bool = False           # runs on this machine: its calls cost nothing
    priced: bool = False          # its calls cost money: a budget wants the teacher's price
    model_is_path: bool = False   # ``model`` is a local folder or a builtin: name
    logprobs: bool = True         # can return log-probabilities (``review.scoring: logprobs``)
    #: ``"module:Class"`` of its batch API (``batch: true``); ``no_batch``: why a kind has none
    batch_path: str | None = None
    no_batch: str | None = None
    required: tuple[tuple[str, str], ...] = ()

    @property
    def spec_options(self) -> tuple[str, ...]:
        """Every kind-specific Teacher field this kind reads: its options, then the limits."""
        return self.options + (LIMITS if self.remote else ())

    @property
    def live(self) -> bool:
        """Whether a provider object answers its calls (``replay`` has none)."""
        return self.class_path is not None

    def takes(self, option: str) -> bool:
        return option in self.spec_options

    def arguments(self, teacher: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor keywords from a teacher's plan settings: each of ``spec_options``
        that is set (a section flattened), ``api_key_env`` defaulting to ``key_env`` unless
        the key rule's option is set: an ``openai`` teacher with a ``base_url`` and no
        ``api_key_env`` sends no key (a keyless local server: vLLM, llama.cpp, Ollama).
        ``name``, ``model`` (and a local model's path) are the caller's to add; the
        ``COMMITTEE_OPTIONS`` are left out."""
        out: dict[str, Any] = {}
        keyless = self.key_rule is not None and teacher.get(self.key_rule.unless) is not None
        for option in self.spec_options:
            if option in COMMITTEE_OPTIONS:
                continue
            value = teacher.get(option)
            if option == "api_key_env" and not value:
                value = None if keyless else self.key_env
                if value is None:
                    out[option] = None  # named: no key, not the constructor's default
                    continue
            if value is None:
                continue
            if isinstance(value, Mapping):
                out.update({f"{option}_{key}": item for key, item in value.items()})
            else:
                out[option] = value
        return out

    def load_batch(self) -> type:
        """The class of its batch API (its module, and so its SDK, imported now)."""
        if self.batch_path is None:
            raise ValueError(f"provider kind {self.name!r} has no batch API: {self.no_batch}")
        module, _, name = self.batch_path.partition(":")
        return getattr(importlib.import_module(module), name)

    def load(self) -> type:
        """The provider class (its module, and so its SDK, imported now)."""
        if self.class_path is None:
            raise ValueError(f"provider kind {self.name!r} has no provider class "
                             f"(it answers from its {' / '.join(self.options) or 'file'})")
        module, _, name = self.class_path.partition(":")
        return getattr(importlib.import_module(module), name)


_KINDS = (
    ProviderKind(
        "openai", "fairspec.providers.openai:OpenAIProvider",
        "any OpenAI-compatible chat completions API (OpenAI, DeepInfra, vLLM, ...)",
        options=("base_url", "api_key_env", "batch"), key_env="OPENAI_API_KEY",
        key_rule=KeyRule("base_url", "the OpenAI API needs api_key_env"),
        remote=True, priced=True, batch_path="fairspec.providers.openai_batch:OpenAIBatchAPI",
    ),
    ProviderKind(
        "gemini", "fairspec.providers.gemini:GeminiProvider",
        "Google's Gemini API, or Vertex AI with vertex: {project, location}",
        options=("base_url", "api_key_env", "vertex", "batch"), key_env="GEMINI_API_KEY",
        key_rule=KeyRule("vertex", "the Gemini API needs api_key_env (or vertex:)"),
        remote=True, priced=True, batch_path="fairspec.providers.gemini_batch:GeminiBatchAPI",
    ),
    ProviderKind(
        "anthropic", "fairspec.providers.anthropic:AnthropicProvider",
        "Anthropic's Messages API (Claude), Message Batches with batch: true",
        options=("base_url", "api_key_env", "batch"), key_env="ANTHROPIC_API_KEY",
        remote=True, priced=True, logprobs=False,  # the Messages API returns no log-probabilities
        batch_path="fairspec.providers.anthropic_batch:AnthropicBatchAPI",
    ),
    ProviderKind(
        "hf", "fairspec.providers.hf:HfProvider", "a local transformers model",
        local=True, model_is_path=True,
        no_batch="a local model already batches the requests it is given on its device",
    ),
    ProviderKind(
        "replay", None, "answers from an exported call file (replay_file)",
        options=("replay_file",),
        required=(("replay_file", "runs/<name>/record/calls.jsonl"),),
        no_batch="it answers from its file: no call is sent",
    ),
    ProviderKind(
        "recorded", None,
        "answers recorded outside fairspec (rationales, feedback, review scores), looked up "
        "by question in the files of recorded: (a live model for the rest with fallback:)",
        options=("recorded", "base_url", "api_key_env"), logprobs=False,
        required=(("recorded", "{rationale: {path: FILE, column: COLUMN}, feedback: {...}}"),),
        no_batch="it answers from recorded files (its fallback's calls are sent online)",
    ),
)

#: Every provider kind by name, in the order the spec documents them.
KINDS: Mapping[str, ProviderKind] = MappingProxyType({kind.name: kind for kind in _KINDS})


def provider_names() -> tuple[str, ...]:
    """The words a spec's ``provider:`` may take."""
    return tuple(KINDS)


def find_kind(name: str) -> ProviderKind | None:
    return KINDS.get(name)


def provider_kind(name: str) -> ProviderKind:
    """The kind called ``name``; ValueError naming the known kinds otherwise."""
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown provider kind {name!r}; known: {sorted(KINDS)}")
    return kind


def kind_options() -> tuple[str, ...]:
    """The optional Teacher fields only some kinds take (each once, in declaration order)."""
    return tuple(dict.fromkeys(option for kind in _KINDS for option in kind.options))


def kinds_taking(option: str) -> tuple[str, ...]:
    """The names of the kinds that take ``option``."""
    return tuple(kind.name for kind in _KINDS if kind.takes(option))
