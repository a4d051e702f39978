"""Request shapes per model family: what each teacher API takes, refuses, renames, and how it thinks.

One table (``FAMILIES``) beside the provider registry says, for each family of models a
provider kind serves, which sampling parameters its API accepts, which it refuses with an
HTTP 400 (and which it merely ignores), the body field of the output budget
(``max_tokens`` or ``max_completion_tokens``), and its reasoning controls
(``reasoning_effort`` values, a thinking budget's range, thinking levels). The compiler
drops what a family never receives from a teacher's settings (so it is in no call key),
the spec rules report a value the API would refuse at its line (``problems``), and the
providers build their request bodies from it (``sampling``, ``output_budget``).

A model is matched by name (lower-case, a router's ``vendor/`` prefix dropped) against
each family of its vendor in order; a name no pattern knows gets the vendor's current
rules (its last family), except on an OpenAI-compatible host, where a model that is not
OpenAI's, Anthropic's or Google's gets ``compatible``: every parameter sent as the
paper did. Sources are the vendors' public API references, named per family.

Import-light on purpose (no SDK): the spec language reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

SAMPLING: tuple[str, ...] = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
#: Table 7's values: what a spec that sets nothing sends.
SAMPLING_DEFAULTS: Mapping[str, float] = {"temperature": 0.8, "top_p": 1.0,
                                          "presence_penalty": 0.0, "frequency_penalty": 0.0}
#: Where a key of the spec came from: the teacher's own ``generation``, the shared one, or
#: neither (the default).
Origin = Literal["teacher", "shared", "default"]
Thinking = Literal["effort", "budget", "level"]


@dataclass(frozen=True)
class Family:
    """One family of models and the request shape its API wants.

    ``sampling``: the parameters sent; ``refuses``: those the API answers with HTTP 400 at
    any value but its own default (an explicit one is a spec error); the rest of
    ``SAMPLING`` are ignored (never sent; an explicit one is a note). ``exclusive``: of
    these at most one is sent (the one the spec moved from its default). ``thinking``:
    how reasoning is steered (``effort``: ``reasoning_effort``; ``budget``/``level``: the
    ``thinking`` key, as tokens or a level; a family with ``levels`` takes both).
    ``thinks_by_default``: it spends output tokens on thoughts when the spec says nothing,
    so the output budget gets ``default_allowance`` on top of ``max_tokens``."""

    name: str
    vendor: Literal["openai", "anthropic", "gemini", "compatible"]
    patterns: tuple[str, ...]
    summary: str
    source: str
    sampling: tuple[str, ...] = SAMPLING
    refuses: tuple[str, ...] = ()
    exclusive: tuple[str, ...] = ()
    temperature_max: float = 2.0
    budget_field: str = "max_tokens"
    thinking: tuple[Thinking, ...] = ()
    efforts: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    budget_range: tuple[int, int] | None = None
    can_disable: bool = True
    thinks_by_default: bool = False
    default_allowance: int = 0
    #: tokens of thought allowed on top of the reply per effort or level
    allowances: Mapping[str, int] = field(default_factory=dict)
    seed: bool = True
    logprobs: bool = True

    def matches(self, model: str) -> bool:
        return any(fnmatchcase(model, pattern) for pattern in self.patterns)

    def thinks(self, settings: Mapping[str, Any]) -> bool:
        """Whether a request with ``settings`` thinks (a budget above 0, a level, an effort
        other than none, or a family that thinks unless told otherwise)."""
        if not self.thinking:
            return False
        thinking, effort = settings.get("thinking"), settings.get("reasoning_effort")
        if thinking is not None and not isinstance(thinking, bool):
            return thinking != 0
        if effort is not None and "effort" in self.thinking:
            return effort != "none"
        return self.thinks_by_default

    def sampling_sent(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        """The sampling parameters a request of this family carries: ``sampling``, and of
        the ``exclusive`` ones only the first moved from its default (else the first).
        Claude while thinking takes no temperature and a top_p of 0.95-1 only."""
        sent = self.sampling
        if self.vendor == "anthropic" and self.thinks(settings):
            top_p = settings.get("top_p", 1.0)
            return tuple(k for k in sent if k == "top_p" and 0.95 <= top_p < 1.0)
        if not self.exclusive:
            return sent
        moved = [k for k in self.exclusive
                 if k in settings and settings[k] != SAMPLING_DEFAULTS[k] and k != self.exclusive[0]]
        keep = moved[0] if moved else self.exclusive[0]
        return tuple(k for k in sent if k not in self.exclusive or k == keep)

    def allowance(self, settings: Mapping[str, Any]) -> int:
        """Tokens of thought the output budget holds on top of ``max_tokens``."""
        if not self.thinks(settings):
            return 0
        thinking, effort = settings.get("thinking"), settings.get("reasoning_effort")
        if isinstance(thinking, bool):
            thinking = None
        if isinstance(thinking, int):
            if thinking < 0:  # Gemini's -1: dynamic, up to the model's own cap
                return self.budget_range[1] if self.budget_range else self.default_allowance
            return thinking
        if isinstance(thinking, str) and thinking in self.allowances:
            return self.allowances[thinking]
        if isinstance(effort, str) and effort in self.allowances:
            return self.allowances[effort]
        return self.default_allowance if self.thinks_by_default else 0

    def output_budget(self, settings: Mapping[str, Any]) -> int:
        """The API's output budget for a reply of ``max_tokens`` visible tokens: thoughts
        count against it for every thinking family here, so they come on top."""
        return int(settings.get("max_tokens") or 512) + self.allowance(settings)


def _openai(name: str, patterns: tuple[str, ...], efforts: tuple[str, ...], summary: str,
            **more: Any) -> Family:
    """An OpenAI reasoning family: no sampling parameter but the defaults, the budget is
    ``max_completion_tokens`` (reasoning tokens included), ``reasoning_effort``."""
    return Family(
        name=name, vendor="openai", patterns=patterns, summary=summary,
        source="https://platform.openai.com/docs/guides/reasoning (parameters of reasoning "
               "models; max_completion_tokens includes reasoning tokens)",
        sampling=(), refuses=SAMPLING, budget_field="max_completion_tokens",
        thinking=("effort", "budget"), efforts=efforts, thinks_by_default=True,
        default_allowance=8192, logprobs=False,
        allowances={"none": 0, "minimal": 1024, "low": 4096, "medium": 8192, "high": 32768,
                    "xhigh": 65536}, **more)


FAMILIES: tuple[Family, ...] = (
    # OpenAI: chat models first, the reasoning families last (the current rules)
    Family(name="gpt-oss", vendor="openai", patterns=("gpt-oss*",),
           summary="gpt-oss open-weight reasoning models on a compatible host: every sampling "
                   "parameter, max_tokens, reasoning_effort low|medium|high",
           source="https://cookbook.openai.com/articles/gpt-oss/run-vllm (reasoning_effort "
                  "through the chat completions API)",
           thinking=("effort",), efforts=("low", "medium", "high"), thinks_by_default=True,
           default_allowance=4096, allowances={"low": 1024, "medium": 4096, "high": 16384}),
    Family(name="openai-chat", vendor="openai",
           patterns=("gpt-3.5*", "gpt-4", "gpt-4-*", "gpt-4o*", "gpt-4.1*", "chatgpt-*",
                     "gpt-5-chat*", "gpt-5.*-chat*"),
           summary="OpenAI chat models: every sampling parameter, max_tokens",
           source="https://platform.openai.com/docs/api-reference/chat/create"),
    _openai("openai-o-series", ("o1*", "o3*", "o4*"), ("low", "medium", "high"),
            "OpenAI o-series reasoning models: reasoning_effort low|medium|high"),
    _openai("openai-gpt-5", ("gpt-5", "gpt-5-*"), ("minimal", "low", "medium", "high"),
            "GPT-5 reasoning models: reasoning_effort minimal|low|medium|high"),
    _openai("openai-gpt-5.x", ("gpt-5.*", "gpt-6*", "o5*"), ("none", "low", "medium", "high", "xhigh"),
            "GPT-5.1 and later: reasoning_effort none|low|medium|high|xhigh"),
    # Anthropic (provider anthropic, or its OpenAI-compatible endpoint)
    Family(name="claude-3", vendor="anthropic",
           patterns=("claude-3-haiku*", "claude-3-sonnet*", "claude-3-opus*", "claude-3-5-*",
                     "claude-instant*", "claude-2*"),
           summary="Claude 3 and 3.5: temperature (0-1) and top_p, no thinking",
           source="https://docs.anthropic.com/en/api/messages (temperature 0.0-1.0)",
           sampling=("temperature", "top_p"), temperature_max=1.0, seed=False, logprobs=False),
    Family(name="claude-4", vendor="anthropic",
           patterns=("claude-3-7-*", "claude-sonnet-4-2*", "claude-opus-4-2*", "claude-sonnet-4-0*",
                     "claude-opus-4-0*", "claude-sonnet-4", "claude-opus-4"),
           summary="Claude 3.7 and 4.0: temperature (0-1) and top_p, extended thinking",
           source="https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking "
                  "(budget_tokens >= 1024 and < max_tokens; thinking is incompatible with "
                  "temperature changes; top_p 0.95-1)",
           sampling=("temperature", "top_p"), temperature_max=1.0, thinking=("budget",),
           budget_range=(1024, 128000), seed=False, logprobs=False),
    Family(name="claude-4.5", vendor="anthropic", patterns=("claude-*",),
           summary="Claude Opus 4.1, the 4.5 models and later: temperature or top_p (not "
                   "both), extended thinking",
           source="https://docs.anthropic.com/en/docs/about-claude/models/migrating-to-claude-4 "
                  "(temperature and top_p cannot both be specified) and "
                  "https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking",
           sampling=("temperature", "top_p"), exclusive=("temperature", "top_p"),
           temperature_max=1.0, thinking=("budget",), budget_range=(1024, 128000),
           seed=False, logprobs=False),
    # Gemini: no thinking, then the thinking generations, Gemini 3 last (the current rules)
    Family(name="gemini-1-2.0", vendor="gemini",
           patterns=("gemini-1*", "gemini-pro*", "gemini-2.0*"),
           summary="Gemini 1.x and 2.0: no thinking",
           source="https://ai.google.dev/api/generate-content#generationconfig"),
    Family(name="gemini-2.5-pro", vendor="gemini", patterns=("gemini-2.5-pro*",),
           summary="Gemini 2.5 Pro: thinks always (budget 128-32768, -1 dynamic)",
           source="https://ai.google.dev/gemini-api/docs/thinking (thinking budgets; thought "
                  "tokens count against maxOutputTokens)",
           thinking=("budget",), budget_range=(128, 32768), can_disable=False,
           thinks_by_default=True, default_allowance=8192),
    Family(name="gemini-2.5-flash-lite", vendor="gemini", patterns=("gemini-2.5-flash-lite*",),
           summary="Gemini 2.5 Flash-Lite: thinking off by default (budget 512-24576, 0 off)",
           source="https://ai.google.dev/gemini-api/docs/thinking",
           thinking=("budget",), budget_range=(512, 24576)),
    Family(name="gemini-2.5-flash", vendor="gemini", patterns=("gemini-2.5-flash*", "gemini-2.5*"),
           summary="Gemini 2.5 Flash: thinks by default (budget 0-24576, 0 off, -1 dynamic)",
           source="https://ai.google.dev/gemini-api/docs/thinking",
           thinking=("budget",), budget_range=(1, 24576), thinks_by_default=True,
           default_allowance=8192),
    Family(name="gemini-3", vendor="gemini", patterns=("gemini-*",),
           summary="Gemini 3 and later: thinking levels (low|high; Flash also minimal|medium), "
                   "or a budget, not both",
           source="https://ai.google.dev/gemini-api/docs/gemini-3 (thinking_level; "
                  "thinking_budget kept for compatibility; both in one request is an error)",
           thinking=("level", "budget"), levels=("minimal", "low", "medium", "high"),
           budget_range=(128, 32768), can_disable=False, thinks_by_default=True,
           default_allowance=8192,
           allowances={"minimal": 1024, "low": 4096, "medium": 8192, "high": 16384}),
    Family(name="compatible", vendor="compatible", patterns=("*",),
           summary="another model on an OpenAI-compatible host: every sampling parameter, "
                   "max_tokens, anything else through generation.extra_body",
           source="https://platform.openai.com/docs/api-reference/chat/create"),
)

#: provider kind -> the vendors whose families it can serve, in order
_VENDORS: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai", "anthropic", "gemini", "compatible"),
    "anthropic": ("anthropic",),
    "gemini": ("gemini",),
}
_PREFIXES = {"openai": ("gpt-", "o1", "o3", "o4", "o5", "chatgpt-"), "anthropic": ("claude",),
             "gemini": ("gemini",)}


def family_named(name: str) -> Family:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise KeyError(f"no model family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")


def model_name(model: str) -> str:
    """The bare model name: lower-case, a router's ``vendor/`` prefix and Vertex's
    ``publishers/.../models/`` path dropped, an OpenAI fine-tune (``ft:BASE:org::id``)
    named by its base model."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    return name[3:].split(":", 1)[0] if name.startswith("ft:") else name


def family_for(provider: str, model: str) -> Family | None:
    """The family a ``provider`` kind's ``model`` belongs to; None for a kind that sends no
    request body (hf, replay, recorded)."""
    vendors = _VENDORS.get(provider)
    if vendors is None:
        return None
    name = model_name(model)
    for vendor in vendors:
        own = [f for f in FAMILIES if f.vendor == vendor]
        if vendor == "compatible":
            return own[0]
        native = provider == vendor and provider != "openai"  # anthropic/gemini: their own models
        if not native and not name.startswith(_PREFIXES[vendor]):
            continue
        for family in own:
            if family.matches(name):
                return family
        return own[-1]  # an unknown model of a known vendor: the vendor's current rules
    return None


@dataclass(frozen=True)
class Problem:
    """A generation key a family's API would refuse (``error``) or ignore (``note``)."""

    key: str
    level: Literal["error", "note"]
    message: str
    hint: str


def problems(family: Family, model: str, settings: Mapping[str, Any],
             origin: Mapping[str, Origin]) -> list[Problem]:
    """What ``settings`` (the teacher's merged generation) would meet at ``family``'s API.

    A refused value set on the teacher itself is an error; set in the shared
    ``generation`` (and so meant for every teacher) it is a note that this teacher does
    not get it; a default is never reported (the family simply does not receive it)."""
    out: list[Problem] = []

    def report(key: str, refused: bool, message: str, hint: str) -> None:
        found = _unsent(key, refused, model, message, hint, origin)
        if found is not None:
            out.append(found)

    sent = family.sampling_sent(settings)
    claude_thinking = family.vendor == "anthropic" and family.thinks(settings)
    for key in SAMPLING:
        if key in sent or key not in settings:
            continue
        where = origin.get(key, "default")
        if where == "default" or where == "shared" and settings[key] == SAMPLING_DEFAULTS[key]:
            continue  # Table 7's value restated: the family just does not receive it
        if claude_thinking and key in family.sampling:
            refused = settings[key] != 1.0 if key == "temperature" else settings[key] < 0.95
            if refused:
                report(key, True, f"{model} while thinking refuses {key} {settings[key]!r} (only "
                       "temperature 1 and top_p 0.95-1 are compatible with extended thinking: "
                       "HTTP 400)", f"remove {key}, or turn thinking off (thinking: null)")
            continue
        if key in family.exclusive:
            if settings[key] == _api_default(family, key):
                continue
            kept = next(k for k in family.exclusive if k != key)
            if where == "teacher" and origin.get(kept) == "teacher":
                out.append(Problem(key, "error", f"{model} takes {' or '.join(family.exclusive)}, "
                                   "not both (HTTP 400: 'cannot both be specified for this model')",
                                   f"remove one of them ({family.source.split(' ')[0]})"))
            else:
                out.append(Problem(key, "note", f"not sent to {model}: it takes "
                                   f"{' or '.join(family.exclusive)}, not both, and gets {kept}",
                                   f"set {key} on the teacher alone to send it instead"))
            continue
        refused = key in family.refuses and settings[key] != _api_default(family, key)
        if refused:
            message = (f"{model} ({family.summary.split(':')[0]}) refuses {key} {settings[key]!r}: "
                       "only its default is accepted (HTTP 400 unsupported_value)")
        elif key in family.refuses:
            message = f"{model} takes no {key} but its default, so none is sent"
        else:
            message = f"{model} has no {key} parameter"
        report(key, refused, message,
               "remove it" + ("; steer the reasoning with reasoning_effort"
                              if "effort" in family.thinking else ""))
    temperature = settings.get("temperature")
    if "temperature" in sent and temperature is not None and temperature > family.temperature_max:
        out.append(Problem("temperature", "error",
                           f"{model} takes temperature 0-{family.temperature_max:g}, got {temperature}",
                           f"set temperature <= {family.temperature_max:g}"))
    out += _reasoning(family, model, settings, origin)
    return out


def _unsent(key: str, refused: bool, model: str, message: str, hint: str,
            origin: Mapping[str, Origin]) -> Problem | None:
    """A key the request will not carry: an error where the teacher set a value its API
    refuses, a note where the shared generation set it (or the API merely ignores it),
    nothing for a default."""
    where = origin.get(key, "default")
    if where == "default":
        return None
    if refused and where == "teacher":
        return Problem(key, "error", message, hint)
    return Problem(key, "note", f"not sent to {model}: {message}", hint)


def _api_default(family: Family, key: str) -> float:
    """A value that changes nothing at the API: what OpenAI's reasoning models accept, what
    Claude's exclusive pair leaves alone."""
    return {"temperature": 1.0, "top_p": 1.0}.get(key, 0.0)


def _reasoning(family: Family, model: str, settings: Mapping[str, Any],
               origin: Mapping[str, Origin]) -> list[Problem]:
    out: list[Problem] = []
    effort, thinking = settings.get("reasoning_effort"), settings.get("thinking")

    def unknown(key: str, message: str, hint: str) -> None:
        found = _unsent(key, True, model, message, hint, origin)
        if found is not None:
            out.append(found)

    if effort is not None:
        if "effort" not in family.thinking:
            unknown("reasoning_effort", f"{model} ({family.name}) takes no reasoning_effort",
                    "remove it" + ("; use thinking (a budget in tokens or a level)"
                                   if family.thinking else ""))
        elif effort not in family.efforts:
            out.append(Problem("reasoning_effort", "error",
                               f"{model} takes reasoning_effort {' | '.join(family.efforts)}, "
                               f"not {effort!r} (HTTP 400)", f"one of {', '.join(family.efforts)}"))
    if thinking is None:
        return out
    if not family.thinking:
        unknown("thinking", f"{model} ({family.name}) does not think", "remove thinking")
        return out
    if family.thinking == ("effort",):
        unknown("thinking", f"{model} ({family.name}) is steered by reasoning_effort, not by "
                "a thinking budget", f"reasoning_effort: {' | '.join(family.efforts)}")
        return out
    if isinstance(thinking, str):
        if "level" not in family.thinking:
            out.append(Problem("thinking", "error",
                               f"{model} takes a thinking budget in tokens, not a level "
                               f"({thinking!r})", "thinking: <tokens>, e.g. 2048"))
        elif thinking not in family.levels:
            out.append(Problem("thinking", "error", f"{model} takes thinking levels "
                               f"{' | '.join(family.levels)}, not {thinking!r}",
                               f"one of {', '.join(family.levels)}"))
        return out
    if family.vendor == "openai":  # no thinking parameter: the tokens of reasoning allowed
        if thinking < 0:
            out.append(Problem("thinking", "error", f"thinking for {model} is the reasoning "
                               f"tokens allowed on top of max_tokens, got {thinking}",
                               "a number of tokens >= 0"))
        return out
    if thinking == 0:
        if not family.can_disable:
            out.append(Problem("thinking", "error", f"{model} cannot turn thinking off "
                               "(HTTP 400 for a budget of 0)",
                               f"a budget of {family.budget_range[0]} or more"
                               if family.budget_range else "remove thinking"))
        return out
    if thinking == -1 and family.vendor == "gemini":
        return out
    low, high = family.budget_range or (1, 1 << 30)
    if not low <= thinking <= high:
        out.append(Problem("thinking", "error", f"{model} takes a thinking budget of "
                           f"{low}-{high} tokens, got {thinking}",
                           f"set thinking between {low} and {high}"
                           + (" (0: off; -1: dynamic)" if family.vendor == "gemini" else "")))
    return out


def shaped(family: Family | None, settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` without what ``family``'s API never receives: the sampling parameters
    it does not take, and the reasoning keys when unset (so a call's key holds only what
    shapes its request)."""
    out = dict(settings)
    if family is not None:
        sent = family.sampling_sent(settings)
        for key in SAMPLING:
            if key not in sent:
                out.pop(key, None)
    for key in ("reasoning_effort", "thinking"):
        if out.get(key) is None:
            out.pop(key, None)
    if not out.get("extra_body"):
        out.pop("extra_body", None)
    return out
