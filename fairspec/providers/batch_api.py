"""One interface to a provider's batch API (OpenAI Batch API, Gemini batch mode).

A :class:`BatchAPI` creates a batch from :class:`BatchLine` s (each a request and the
``custom_id`` its result comes back under), tells a batch's :class:`RemoteStatus`, and
reads its results as :class:`LineResult` s, chunk by chunk, so that a caller can store
each chunk before reading the next. Failures are the online providers' own:
``TransientFailure`` (try again later) and ``FatalProviderError`` (stop the teacher).

It knows nothing of the call store or the budget: ``fairspec.teachers.batch_queue``
decides what goes in a batch, keeps the ledger and stores the answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fairspec.providers.base import ChatRequest, ChatResult
from fairspec.providers.errors import FatalProviderError
from fairspec.providers.limits import RETRYABLE_STATUSES
from fairspec.providers.remote import RemoteProvider, Reply, chat_result

__all__ = ["RETRYABLE_STATUSES", "BatchAPI", "BatchLine", "LineResult", "RemoteStatus"]


@dataclass(frozen=True)
class BatchLine:
    custom_id: str
    request: ChatRequest


@dataclass(frozen=True)
class LineResult:
    """The result of one line: ``reply`` (answered), or ``error`` with whether resubmitting
    may help (``retryable``) and whether the batch ran out of time before it (``expired``)."""

    custom_id: str
    reply: Reply | None = None
    error: str | None = None
    retryable: bool = True
    expired: bool = False

    def result(self, request: ChatRequest, *, latency_s: float, attempts: int) -> ChatResult:
        assert self.reply is not None
        return chat_result(request, self.reply, latency_s=latency_s, attempts=attempts)


@dataclass(frozen=True)
class RemoteStatus:
    """A batch as the provider reports it: its own word for the state, whether it will
    change no more (``finished``), whether it was refused whole before running anything
    (``rejected``, with ``detail``), and its request counts when the provider gives them."""

    state: str
    finished: bool
    rejected: bool = False
    total: int | None = None
    completed: int | None = None
    failed: int | None = None
    detail: str | None = None
    #: provider-specific handles the results are read from (OpenAI's file ids)
    handles: Mapping[str, Any] | None = None


class BatchAPI(ABC):
    """A provider's batch endpoints, through its official SDK. ``provider`` is the online
    provider of the same teacher: its client, request form and error mapping are reused."""

    #: limits of one batch: requests, and bytes of its input
    max_requests: int = 50_000
    max_bytes: int = 190 * 2**20

    def __init__(self, provider: RemoteProvider) -> None:
        self.provider = provider
        self.name = provider.name

    @abstractmethod
    def line_bytes(self, line: BatchLine) -> int:
        """About how many bytes ``line`` adds to a batch's input (for ``max_bytes``)."""

    @abstractmethod
    async def create(self, batch_id: str, lines: Sequence[BatchLine]) -> tuple[str, str]:
        """Create a batch of ``lines`` tagged with fairspec's ``batch_id``; (remote id, state)."""

    @abstractmethod
    async def find(self, batch_id: str) -> tuple[str, str] | None:
        """The batch created for ``batch_id``, if the provider has one (a run killed between
        creating a batch and writing its id down finds it here); (remote id, state)."""

    @abstractmethod
    async def status(self, remote_id: str) -> RemoteStatus: ...

    @abstractmethod
    def results(self, remote_id: str, status: RemoteStatus,
                custom_ids: Sequence[str]) -> AsyncIterator[list[LineResult]]:
        """The finished batch's results in chunks; ``custom_ids`` are its lines in the order
        they were submitted (for an API that answers by position)."""

    async def aclose(self) -> None:
        await self.provider.aclose()

    def fatal(self, message: str, hint: str | None = None) -> FatalProviderError:
        return FatalProviderError(self.name, message, hint=hint)
