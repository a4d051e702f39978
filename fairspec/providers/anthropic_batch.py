"""Anthropic's Message Batches API (``/v1/messages/batches``) through the official ``anthropic`` SDK.

A batch is created with every request inline (``client.messages.batches.create(requests=
[{custom_id, params}])``), ``params`` being exactly the online provider's Messages body
(``AnthropicProvider._prepare``: system prompt, sampling, thinking, cache breakpoints), so an
answer is the same call, at batch prices (half). A batch holds at most 100,000 requests and
256 MB (https://docs.anthropic.com/en/docs/build-with-claude/batch-processing); ``max_bytes``
keeps a margin under the latter. Results are streamed as JSONL
(``client.messages.batches.results``), one line per request, in no particular order, each
``succeeded``, ``errored``, ``expired`` (the 24-hour window closed first) or ``canceled``.

Finding a batch after a kill. Anthropic batches carry no metadata, so fairspec tags each
request instead: the ``custom_id`` sent is ``<ledger id>_<fairspec's custom_id>`` (custom ids
are 1-64 characters of ``[a-zA-Z0-9_-]``). :meth:`AnthropicBatchAPI.find` lists the newest
batches and adopts an ended one whose results carry that tag. A batch still in progress
shows no requests, so it cannot be recognised: ``find`` does not see it, and the queue sends
its calls again (this needs a kill in the moment between the API creating a batch and the
ledger keeping its id).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anthropic
import httpx2

from fairspec.providers.anthropic import AnthropicProvider, read_reply
from fairspec.providers.batch_api import BatchAPI, BatchLine, LineResult, RemoteStatus
from fairspec.providers.limits import TransientFailure

#: Anthropic's word for a batch that will change no more
ENDED = "ended"
#: error types of a failed request that a resubmission may cure
RETRYABLE_ERRORS = frozenset({"api_error", "overloaded_error", "rate_limit_error",
                              "timeout_error", "gateway_timeout_error"})
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: batches ``find`` looks through (the newest first)
FIND_LIMIT = 100
CHUNK = 200


def tagged_id(batch_id: str, custom_id: str) -> str:
    """The custom_id sent for line ``custom_id`` of ledger batch ``batch_id``."""
    if "_" in batch_id:
        raise ValueError(f"a batch id to tag custom_ids with has no '_', got {batch_id!r}")
    tagged = f"{batch_id}_{custom_id}"
    if not CUSTOM_ID.match(tagged):
        raise ValueError(f"custom_id {tagged!r} is not 1-64 characters of [a-zA-Z0-9_-] "
                         "(Anthropic's rule)")
    return tagged


def untagged_id(tagged: str) -> tuple[str, str]:
    """(ledger batch id, fairspec's custom_id) of a custom_id as sent."""
    batch_id, _, custom_id = tagged.partition("_")
    return batch_id, custom_id


class AnthropicBatchAPI(BatchAPI):
    """Batches of an :class:`AnthropicProvider` teacher (its client, body and error mapping)."""

    provider: AnthropicProvider
    max_requests = 100_000
    max_bytes = 240 * 2**20

    def __init__(self, provider: AnthropicProvider) -> None:
        super().__init__(provider)

    def _request(self, batch_id: str, line: BatchLine) -> dict[str, Any]:
        return {"custom_id": tagged_id(batch_id, line.custom_id),
                "params": self.provider._prepare(line.request)}

    def line_bytes(self, line: BatchLine) -> int:
        return len(json.dumps(self._request("fsb-0000000000000000", line), ensure_ascii=False)
                   .encode("utf-8")) + 2

    @property
    def _batches(self) -> Any:
        return self.provider._sdk().messages.batches

    async def _call(self, coroutine: Any) -> Any:
        try:
            return await coroutine
        except anthropic.APIError as exc:
            raise self.provider.failure(exc) from None
        except anthropic.AnthropicError as exc:  # e.g. results asked before the batch ended
            raise TransientFailure(f"{type(exc).__name__}: {self.provider._scrub(str(exc))}") \
                from None

    async def create(self, batch_id: str, lines: Sequence[BatchLine]) -> tuple[str, str]:
        batch = await self._call(self._batches.create(
            requests=[self._request(batch_id, line) for line in lines]))
        return batch.id, batch.processing_status

    async def find(self, batch_id: str) -> tuple[str, str] | None:
        seen = 0
        try:
            async for batch in self._batches.list(limit=FIND_LIMIT):
                seen += 1
                if seen > FIND_LIMIT:
                    break
                if batch.processing_status != ENDED or not batch.results_url:
                    continue  # its requests cannot be seen before it ends
                if await self._first_tag(batch.id) == batch_id:
                    return batch.id, batch.processing_status
        except anthropic.APIError as exc:
            raise self.provider.failure(exc) from None
        return None

    async def _first_tag(self, remote_id: str) -> str | None:
        """The ledger id the first result line of an ended batch is tagged with (None when
        its results cannot be read: archived, or another client's batch)."""
        try:
            decoder = await self._batches.results(remote_id)
        except anthropic.APIStatusError:
            return None
        except anthropic.APIError:
            raise
        except anthropic.AnthropicError:  # the SDK found no results_url
            return None
        try:
            async for item in decoder:
                return untagged_id(str(item.custom_id))[0]
        finally:
            await decoder.close()
        return None

    async def status(self, remote_id: str) -> RemoteStatus:
        batch = await self._call(self._batches.retrieve(remote_id))
        counts = batch.request_counts
        total = (counts.processing + counts.succeeded + counts.errored + counts.canceled
                 + counts.expired) if counts is not None else None
        return RemoteStatus(
            state=batch.processing_status, finished=batch.processing_status == ENDED,
            total=total, completed=counts.succeeded if counts is not None else None,
            failed=counts.errored if counts is not None else None,
            handles={"results_url": batch.results_url})

    async def results(self, remote_id: str, status: RemoteStatus,
                      custom_ids: Sequence[str]) -> AsyncIterator[list[LineResult]]:
        decoder = await self._call(self._batches.results(remote_id))
        chunk: list[LineResult] = []
        try:
            async for item in decoder:
                chunk.append(read_result(item))
                if len(chunk) >= CHUNK:
                    yield chunk
                    chunk = []
        except anthropic.APIError as exc:
            raise self.provider.failure(exc) from None
        except ValueError as exc:  # a line that is not JSON: read the results again later
            raise TransientFailure(f"a batch result line is not JSON ({exc})") from None
        except httpx2.TransportError as exc:  # the stream broke off
            raise self.provider._connection_error(f"{type(exc).__name__}: {exc}") from None
        finally:
            await decoder.close()
        if chunk:
            yield chunk


def read_result(item: Any) -> LineResult:
    """One line of a batch's results: an answer, a failed request (retryable when the
    error is the service's, not the request's), or one the batch did not reach."""
    _, custom_id = untagged_id(str(item.custom_id))
    result = item.result
    kind = getattr(result, "type", None)
    if kind == "succeeded":
        return LineResult(custom_id, reply=read_reply(result.message))
    if kind == "errored":
        error = getattr(getattr(result, "error", None), "error", None)
        error_type = str(getattr(error, "type", None) or "error")
        message = str(getattr(error, "message", None) or "")
        return LineResult(custom_id, error=f"{error_type}: {message}".strip(),
                          retryable=error_type in RETRYABLE_ERRORS)
    if kind in ("expired", "canceled"):
        return LineResult(custom_id, error=f"{kind}: the batch ended before this request",
                          expired=True)
    return LineResult(custom_id, error=f"unknown result type {kind!r}")
