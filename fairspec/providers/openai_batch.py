"""The OpenAI Batch API (``/v1/files`` + ``/v1/batches``) through the official ``openai`` SDK.

A batch is a JSONL file of chat-completion requests, one per line with its
``custom_id``, uploaded with ``purpose="batch"`` and run with ``completion_window="24h"``;
fairspec tags it with ``metadata={"fairspec_batch": <ledger id>}`` so a run killed right
after creating it finds it again (:meth:`OpenAIBatchAPI.find`). Results come back in an
output file (answered lines) and an error file (failed lines; ``batch_expired`` for the
lines a batch did not reach before its window closed), both streamed line by line.

Works with any host that serves these endpoints (the tests run a local one); the request
body of each line is exactly the online provider's (``OpenAIProvider._prepare``), so an
answer is the same call, at batch prices.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai

from fairspec.providers.batch_api import RETRYABLE_STATUSES, BatchAPI, BatchLine, LineResult, RemoteStatus
from fairspec.providers.errors import FatalProviderError
from fairspec.providers.limits import TransientFailure
from fairspec.providers.openai import OpenAIProvider, parse_completion, read_reply

ENDPOINT = "/v1/chat/completions"
METADATA_KEY = "fairspec_batch"
#: OpenAI's own words for a batch that will change no more
FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})
#: lines read before they are handed on (and stored)
CHUNK = 200


class OpenAIBatchAPI(BatchAPI):
    """Batches of an :class:`OpenAIProvider` teacher (its client, body and error mapping)."""

    provider: OpenAIProvider

    def __init__(self, provider: OpenAIProvider) -> None:
        super().__init__(provider)

    def _line(self, line: BatchLine) -> bytes:
        return json.dumps({"custom_id": line.custom_id, "method": "POST", "url": ENDPOINT,
                           "body": self.provider._prepare(line.request)},
                          ensure_ascii=False).encode("utf-8") + b"\n"

    def line_bytes(self, line: BatchLine) -> int:
        return len(self._line(line))

    async def _call(self, coroutine: Any) -> Any:
        try:
            return await coroutine
        except openai.APIError as exc:
            raise self.provider._failure(exc) from None

    async def create(self, batch_id: str, lines: Sequence[BatchLine]) -> tuple[str, str]:
        client = self.provider._sdk()
        data = b"".join(self._line(line) for line in lines)
        try:
            uploaded = await self._call(client.files.create(
                file=(f"{batch_id}.jsonl", data, "application/jsonl"), purpose="batch"))
            batch = await self._call(client.batches.create(
                input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h",
                metadata={METADATA_KEY: batch_id}))
        except FatalProviderError as exc:
            if exc.status in (404, 405):  # an OpenAI-compatible host without batch endpoints
                raise self.fatal(
                    f"{self.provider.base_url or 'the API'} has no batch endpoints "
                    f"(/files, /batches answered HTTP {exc.status})",
                    hint="set batch: false for this teacher, or point base_url at a host "
                    "that serves the OpenAI Batch API") from None
            raise
        return batch.id, batch.status

    async def find(self, batch_id: str) -> tuple[str, str] | None:
        client = self.provider._sdk()
        try:
            async for batch in client.batches.list(limit=100):
                if (batch.metadata or {}).get(METADATA_KEY) == batch_id:
                    return batch.id, batch.status
        except openai.APIError as exc:
            raise self.provider._failure(exc) from None
        return None

    async def status(self, remote_id: str) -> RemoteStatus:
        batch = await self._call(self.provider._sdk().batches.retrieve(remote_id))
        counts = batch.request_counts
        errors = [e.message or e.code or "" for e in (batch.errors.data or [])] \
            if batch.errors is not None else []
        return RemoteStatus(
            state=batch.status, finished=batch.status in FINISHED,
            rejected=batch.status == "failed",
            total=counts.total if counts else None, completed=counts.completed if counts else None,
            failed=counts.failed if counts else None,
            detail="; ".join(e for e in errors if e)[:500] or None,
            handles={"output": batch.output_file_id, "error": batch.error_file_id})

    async def results(self, remote_id: str, status: RemoteStatus,
                      custom_ids: Sequence[str]) -> AsyncIterator[list[LineResult]]:
        handles = status.handles or {}
        for which in ("output", "error"):
            file_id = handles.get(which)
            if not file_id:
                continue
            chunk: list[LineResult] = []
            async for line in self._lines(file_id):
                chunk.append(read_line(line))
                if len(chunk) >= CHUNK:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

    async def _lines(self, file_id: str) -> AsyncIterator[str]:
        client = self.provider._sdk()
        try:
            async with client.files.with_streaming_response.content(file_id) as response:
                async for line in response.iter_lines():
                    if line.strip():
                        yield line
        except openai.APIError as exc:
            raise self.provider._failure(exc) from None


def read_line(text: str) -> LineResult:
    """One line of a batch's output or error file."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TransientFailure(f"a batch result line is not JSON ({exc}): {text[:120]!r}") from None
    custom_id = str(data.get("custom_id"))
    error = data.get("error")
    response = data.get("response") or {}
    if error:
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else str(error)
        return LineResult(custom_id, error=f"{code or 'error'}: {message or ''}".strip(),
                          expired=code == "batch_expired")
    status = int(response.get("status_code") or 0)
    body = response.get("body")
    if status == 200 and isinstance(body, dict):
        try:
            return LineResult(custom_id, reply=read_reply(parse_completion(json.dumps(body).encode())))
        except TransientFailure as exc:  # this line holds no usable answer: it alone goes again
            return LineResult(custom_id, error=str(exc), retryable=True)
    message = body.get("error", {}).get("message") if isinstance(body, dict) and \
        isinstance(body.get("error"), dict) else str(body)[:200]
    return LineResult(custom_id, error=f"HTTP {status}: {message}",
                      retryable=status in RETRYABLE_STATUSES)
