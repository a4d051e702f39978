"""Gemini batch mode (the Gemini API's ``batchGenerateContent``) through ``google-genai``.

Requests go inline (``client.aio.batches.create(model=..., src=[InlinedRequest...])``),
each with ``metadata={"key": <custom_id>}`` and the online provider's own contents and
config (system instruction, sampling, stop sequences, log-probabilities), so an answer is
the same call, at batch prices. The job's ``display_name`` is fairspec's ledger id, which
finds it again after a kill (:meth:`GeminiBatchAPI.find`). Results come back inline
(``job.dest.inlined_responses``), matched by metadata, else by position.

Inline requests must stay under the API's request size (about 20 MB), so a batch here
holds at most ``max_bytes`` of requests; larger committees simply make more batches.
Vertex AI's batch prediction (Cloud Storage / BigQuery input) is not used: the spec
rejects ``batch: true`` with ``vertex:``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from google.genai import types

from fairspec.providers.batch_api import RETRYABLE_STATUSES, BatchAPI, BatchLine, LineResult, RemoteStatus
from fairspec.providers.gemini import GeminiProvider, read_reply

#: the job states after which nothing changes
FINISHED = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
                      "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
#: google.rpc codes a resubmission may cure: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
#: ABORTED, INTERNAL, UNAVAILABLE
RETRYABLE_RPC = frozenset({4, 8, 10, 13, 14})
DEADLINE_EXCEEDED = 4
CHUNK = 200


class GeminiBatchAPI(BatchAPI):
    """Batches of a :class:`GeminiProvider` teacher (its client, contents and config)."""

    provider: GeminiProvider
    max_bytes = 18 * 2**20

    def __init__(self, provider: GeminiProvider) -> None:
        super().__init__(provider)

    def _inline(self, line: BatchLine) -> types.InlinedRequest:
        contents, config = self.provider._prepare(line.request)
        return types.InlinedRequest(contents=contents, config=config,
                                    metadata={"key": line.custom_id})

    def line_bytes(self, line: BatchLine) -> int:
        return len(json.dumps(self._inline(line).model_dump(mode="json", exclude_none=True)))

    async def _call(self, coroutine: Any) -> Any:
        try:
            return await coroutine
        except Exception as exc:
            raise self.provider.failure(exc) from None

    @property
    def _batches(self) -> Any:
        return self.provider._client.aio.batches

    async def create(self, batch_id: str, lines: Sequence[BatchLine]) -> tuple[str, str]:
        job = await self._call(self._batches.create(
            model=self.provider.model, src=[self._inline(line) for line in lines],
            config={"display_name": batch_id}))
        return job.name, _state(job)

    async def find(self, batch_id: str) -> tuple[str, str] | None:
        try:
            async for job in await self._batches.list(config={"page_size": 100}):
                if job.display_name == batch_id:
                    return job.name, _state(job)
        except Exception as exc:
            raise self.provider.failure(exc) from None
        return None

    async def status(self, remote_id: str) -> RemoteStatus:
        job = await self._call(self._batches.get(name=remote_id))
        state = _state(job)
        responses = job.dest.inlined_responses if job.dest is not None else None
        detail = job.error.message if job.error is not None else None
        return RemoteStatus(state=state, finished=state in FINISHED,
                            rejected=state == "JOB_STATE_FAILED" and not responses,
                            total=None, completed=len(responses or []), detail=detail,
                            handles={"responses": responses or []})

    async def results(self, remote_id: str, status: RemoteStatus,
                      custom_ids: Sequence[str]) -> AsyncIterator[list[LineResult]]:
        responses = list((status.handles or {}).get("responses") or [])
        expired = status.state == "JOB_STATE_EXPIRED"
        chunk: list[LineResult] = []
        for position, item in enumerate(responses):
            custom_id = (item.metadata or {}).get("key")
            if custom_id is None and position < len(custom_ids):
                custom_id = custom_ids[position]
            chunk.append(read_response(str(custom_id), item, job_expired=expired))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def read_response(custom_id: str, item: types.InlinedResponse, *,
                  job_expired: bool = False) -> LineResult:
    """One inline response: an answer, or a per-request error (DEADLINE_EXCEEDED in an
    expired job: a request the job did not reach in time)."""
    if item.error is not None:
        code = item.error.code or 0
        return LineResult(custom_id, error=f"error {code}: {item.error.message or ''}".strip(),
                          retryable=code in RETRYABLE_RPC or code in RETRYABLE_STATUSES,
                          expired=job_expired and code == DEADLINE_EXCEEDED)
    if item.response is None:
        return LineResult(custom_id, error="no response and no error", expired=True)
    return LineResult(custom_id, reply=read_reply(item.response))


def _state(job: Any) -> str:
    state = job.state
    return str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")
