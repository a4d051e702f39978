"""The spending limit of a run (``budget.max_usd``, ``fairspec run --max-cost``).

What counts is what the teacher calls the run uses cost: calls paid now, and calls
reused from the call store (paid by an earlier, interrupted invocation), each call
once, as billed (cached input at its rate: :func:`call_usd`). Before a call is sent, its
worst case (:func:`reserve_usd`: a bound on the prompt's tokens no provider's count can
pass, plus the whole output budget, thinking included, at the teacher's price) is
reserved; when reserving would pass the limit the call is not sent and ``BudgetReached``
is raised. Calls already on their way finish and are
stored, so the run stops below the limit, and a rerun with a higher limit resumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict
from functools import lru_cache

from fairspec.errors import BudgetReached
from fairspec.providers import ChatRequest
from fairspec.providers.base import ChatResult
from fairspec.providers.families import family_for


def call_usd(price: Mapping[str, float] | None, input_tokens: int, output_tokens: int,
             cached_input_tokens: int = 0) -> float:
    """What a call cost as billed: its uncached input at ``input_per_mtok``, the
    ``cached_input_tokens`` of its input (read from the prompt cache) at
    ``cached_input_per_mtok`` (absent or None: the input price), and its output at
    ``output_per_mtok``. Reasoning and thought tokens are billed as output, and every
    provider counts them inside ``output_tokens`` (OpenAI's ``completion_tokens`` include
    ``reasoning_tokens``; Anthropic's ``output_tokens`` include thinking; the Gemini
    provider adds ``thoughts_token_count``), so they are not added again."""
    if price is None:
        return 0.0
    cached = min(max(cached_input_tokens, 0), input_tokens)
    cached_rate = price.get("cached_input_per_mtok")
    if cached_rate is None:
        cached_rate = price["input_per_mtok"]
    return ((input_tokens - cached) * price["input_per_mtok"] + cached * cached_rate
            + output_tokens * price["output_per_mtok"]) / 1e6


#: a teacher's family, looked up once per (provider kind, model) rather than once per call
_family = lru_cache(maxsize=256)(family_for)


def reserve_usd(price: Mapping[str, float] | None, request: ChatRequest, provider: str,
                model: str) -> float:
    """The most a call of ``request`` to ``provider``'s ``model`` can cost, never less than
    what it is billed: the prompt at :meth:`ChatRequest.max_input_tokens` (a bound no
    tokenizer's count passes), all of it at the uncached price, and the whole output
    budget the request gives the model (``Family.output_budget``: ``max_tokens`` and a
    thinking model's allowance on top; ``max_tokens`` for a kind with no family)."""
    if price is None:
        return 0.0
    return call_usd(price, request.max_input_tokens(), output_bound(request, provider, model))


def with_usage_bound(result: ChatResult, request: ChatRequest, provider: str,
                     model: str) -> ChatResult | None:
    """``result`` with a usage the budget can trust, or None when it already has one: a
    count the server left out or garbled (None since ``providers.base.token_count``)
    becomes the request's own bound (its prompt's bytes and margin; its whole output
    budget), so no reply makes a paid call cost less than nothing or nothing at all."""
    if result.input_tokens is not None and result.output_tokens is not None:
        return None
    return dataclasses.replace(
        result,
        input_tokens=result.input_tokens if result.input_tokens is not None
        else request.max_input_tokens(),
        output_tokens=result.output_tokens if result.output_tokens is not None
        else output_bound(request, provider, model))


def output_bound(request: ChatRequest, provider: str, model: str) -> int:
    """The most output tokens a call of ``request`` can be billed: ``max_tokens`` and a
    thinking model's allowance on top (``Family.output_budget``)."""
    family = _family(provider, model)
    return family.output_budget(asdict(request.settings)) if family is not None \
        else request.settings.max_tokens


class Budget:
    """Live spend against ``limit_usd`` (None: no limit, spend is still tracked). Used from
    the stages' one event loop: checks and updates never interleave."""

    def __init__(self, limit_usd: float | None) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = 0.0      # calls of this run: paid now or reused from the store
        self.paid_now_usd = 0.0   # of which paid by this invocation
        self.reserved_usd = 0.0   # worst case of the calls on their way
        self._counted: set[str] = set()

    def count_reused(self, key: str, usd: float) -> None:
        """A stored call the run uses (paid earlier): counted once per call key."""
        if key not in self._counted:
            self._counted.add(key)
            self.spent_usd += usd

    def reserve(self, usd: float, what: str) -> None:
        """Hold ``usd`` for a call about to be sent, or raise BudgetReached."""
        if self.limit_usd is not None and self.spent_usd + self.reserved_usd + usd > self.limit_usd:
            raise BudgetReached(
                f"budget reached: ${self.spent_usd:.4f} of ${self.limit_usd:.2f} spent and "
                f"${self.reserved_usd:.4f} held for the calls on their way; the next call "
                f"({what}, up to ${usd:.4f}) could pass it. Every completed call is "
                "saved: rerun with a higher budget.max_usd or --max-cost to go on")
        self.reserved_usd += usd

    def hold(self, usd: float) -> None:
        """Hold ``usd`` without checking the limit: the worst case of calls already on their
        way from an earlier invocation (a batch the provider is running), paid when they land."""
        self.reserved_usd += usd

    def release(self, usd: float) -> None:
        """A reservation whose call was not made after all (it goes again, or not at all)."""
        self.reserved_usd = max(0.0, self.reserved_usd - usd)

    def settle(self, key: str, reserved_usd: float, usd: float) -> None:
        """The call reserved with ``reserved_usd`` completed (or failed) costing ``usd``."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
        if key not in self._counted:
            self._counted.add(key)
            self.spent_usd += usd
            self.paid_now_usd += usd
